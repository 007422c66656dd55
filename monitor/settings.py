"""Every settings model of monitor.yaml, and the one duration type: a leaf module (stdlib, pydantic, errors only).

config.py reads and validates the file against these (the root document, `Config`, lives there with the loader);
each stage imports the section it needs from here, so reading the configuration loads no stage.

Every time setting is a `Duration`: seconds, given as a number or with a unit ("500ms", "90s", "2m", "1h", "7d",
"1w"). `tests/unit/test_settings.py` walks every model and checks each time setting accepts "2m".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhdw]?)\s*$")
_DAILY = re.compile(r"^\s*daily\s+(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$", re.I)
_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")
TEMPLATE_KINDS = ("title", "alert", "digest")


def parse_duration(value: Any) -> float:
    """Seconds from 90, 2.5, "90", "500ms", "90s", "15m", "2h", "7d", "1w". Never negative."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 2h, 7d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 0:
        raise ValueError(f"not a duration: {value!r} (a duration is not negative)")
    return seconds


# The one type of every time setting; a field that must not be zero adds Field(gt=0).
Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- redis, sources, workers, pipeline, service, log ----

class RedisSettings(_Model):
    url: str | None = None  # unset: embedded redis-server under data_dir
    prefix: str = "monitor:"
    connect_timeout: Duration = 30.0  # at start: how long to wait for Redis to answer before giving up


class FeedSource(_Model):
    url: str
    id: str | None = None
    name: str = ""
    interval: Duration | None = None
    tags: list[str] = []
    headers: dict[str, str] = {}
    channels: list[str] = []
    robots: bool | None = None  # None: as fetch.robots; false: this source's pages are fetched whatever robots.txt says
    # auto: the entry's own full text when the feed carries it, else the page, and the feed's text if the page
    # fails; always: the page (a failure is retried, then dead-lettered); never: the feed's text only
    fetch_page: Literal["auto", "always", "never"] = "auto"

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"feed url must be http:// or https://, got {url!r}")
        return url


class DirectorySource(_Model):
    path: str
    id: str | None = None
    name: str = ""
    interval: Duration | None = None
    patterns: list[str] = ["*.txt", "*.md", "*.html", "*.htm"]
    tags: list[str] = []
    channels: list[str] = []


class SourceSettings(_Model):
    interval: Duration = 900.0
    jitter: float = Field(0.1, ge=0, le=0.5)  # +-10% spreads polls of feeds added together
    max_backoff: Duration = 86400.0
    feeds: list[FeedSource] = []
    directories: list[DirectorySource] = []
    opml: str | None = None  # an OPML feed list (relative to this file) whose feeds join `feeds`, re-read on reload


class WorkerSettings(_Model):
    processes: int = Field(2, ge=1, le=64)
    parse_timeout: Duration = 10.0
    memory_limit_mb: int = Field(512, ge=0)  # a worker growing more than this over its start is replaced; 0: off
    # load the date parser's locales before the workers fork (shared, warm): ~45 MB in the main process; only a page
    # without a date htmldate's fast search finds, of a feed entry without a date, needs them
    preload_date_parser: bool = False
    # fork every worker, the replacements too, from a zygote forked at start-up (monitor/zygote.py); false: from the
    # main process at the moment of each fork
    zygote: bool = True
    # build jusText's all-language stop words (trafilatura's second fallback) before the workers fork: ~1.5 MB
    preload_fallback_stoplist: bool = True


class PipelineSettings(_Model):
    tick: Duration = 1.0  # how often an instance claims the feeds due before its next look (each polled on time)
    claim_batch: int = 50
    lease: Duration = 300.0  # a claimed feed returns to the pool after this if its instance died
    feed_concurrency: int = 32
    page_concurrency: int = 16
    max_deliveries: int = 5  # a stream message delivered more often goes to the dead-letter stream
    claim_idle: Duration = 120.0  # pending messages of a silent consumer are taken over after this
    burst_backoff: Duration = 0.25  # run --once: wait before retrying a failed entry in the same run, doubled each time
    articles_failing_after: int = Field(3, ge=0)  # this many page failures in a row: the source is unhealthy; 0 off
    seen_retention: Duration = 90 * 86400.0


class ServiceSettings(_Model):
    listen: str | None = "127.0.0.1:9308"  # /metrics and /healthz; null turns it off
    consumer: str | None = None  # stream consumer name; default host-pid
    shutdown_grace: Duration = 20.0
    feed_failing_alert_after: Duration = 86400.0
    operator_channel: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str | None) -> str | None:
        if listen is None:
            return None
        port = listen.rpartition(":")[2]
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be host:port with a port 1-65535, got {listen!r} (monitor@.service: the "
                             "instance name is the port, e.g. monitor@9301)")
        return listen


class LogSettings(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


# ---- fetch (net.py), extract, dedup, archive, rules ----

class FetchSettings(_Model):
    """How the fetcher talks to the web (config key `fetch`)."""

    timeout: Duration = Field(20.0, gt=0)  # total deadline per request, redirects and slow-drip bodies included
    connect_timeout: Duration = Field(10.0, gt=0)
    max_bytes: int = Field(10_000_000, gt=0)  # cap on the decompressed body (gzip bombs)
    max_redirects: int = Field(5, ge=0)
    per_host: int = Field(4, ge=1)  # concurrent requests per host, across all instances sharing the Redis
    # a Retry-After (or a 429) holds back every request to its host, for every instance, for at most this long
    max_retry_after: Duration = Field(3600.0, gt=0)
    total_connections: int = Field(100, ge=1)
    user_agent: str = "monitor/0.1 (news monitor; +https://github.com/monitor-news/monitor)"
    allow_private_addresses: bool = False  # SSRF guard; tests set True to reach 127.0.0.1
    robots: bool = True  # page fetches honour robots.txt (a source may say `robots: false`)


class ExtractSettings(_Model):
    """Config key "extract"."""

    timeout: Duration = Field(30.0, gt=0)  # deadline per page in the worker process
    min_chars: int = 200  # less text than this -> NoArticle
    # longer texts are cut in the worker: story assignment (MinHash) and rule matching run in the event loop
    max_text_chars: int = Field(200_000, ge=1000)


# Query parameters that say how a reader arrived, not what they read (dedup.tracking_params; docs/operations.md).
# Each rule is NAME or NAME=VALUE, both case-insensitive shell patterns; a NAME=VALUE rule drops the parameter only
# with such a value: `ref`, `src`, `source` and `partner` name a page on some sites, but `ref=rss` never does.
DEFAULT_TRACKING_PARAMS: tuple[str, ...] = (
    "utm_*", "pk_*", "mtm_*", "hmb_*", "__twitter*",
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid",
    "_ga", "_gl", "ref_src", "ref_url", "cmpid", "ocid", "smid", "sr_share", "ns_mchannel", "ns_source",
    "ns_campaign", "ns_linkname", "ns_fee", "at_medium", "at_campaign", "at_custom1", "wt_mc", "wt.mc_id",
    "mkt_tok", "trk", "spm", "share", "rss", "feed",
    "xtor", "emc", "cmp", "mwrsm",  # AT Internet (Le Monde, Le Parisien), NYT, Guardian, Macworld campaigns
    "partner=*rss*", "ref=*rss*", "src=*rss*", "source=*rss*", "ref=feed*", "src=feed*", "source=feed*",
)
# The item "defaults" in dedup.tracking_params stands for the list above, so a configuration can extend it.
TRACKING_DEFAULTS_ITEM = "defaults"


class StorySettings(_Model):
    """Config key "dedup"."""

    threshold: float = Field(0.5, gt=0.0, le=1.0)  # overlap of the shorter text's shingles that joins a story
    num_perm: int = Field(128, ge=16, le=1024)  # MinHash permutations; changing it orphans stored signatures
    shingle_words: int = Field(5, ge=1, le=20)
    retention_days: float = Field(30, gt=0)  # in days, as its name says (not a Duration: a number means days)
    # query parameters dropped from entry URLs (NAME or NAME=VALUE shell patterns); "defaults" = the built-in list
    tracking_params: tuple[str, ...] = DEFAULT_TRACKING_PARAMS

    @field_validator("tracking_params")
    @classmethod
    def _expand_tracking(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for pattern in patterns:
            if pattern.strip() == TRACKING_DEFAULTS_ITEM:
                out += DEFAULT_TRACKING_PARAMS
            elif not pattern.strip() or pattern.startswith("=") or pattern != pattern.strip():
                raise ValueError(f"{pattern!r}: a rule is NAME or NAME=VALUE (shell patterns, e.g. utm_* or ref=*rss*)")
            else:
                out.append(pattern)
        return tuple(dict.fromkeys(out))


class ArchiveSettings(_Model):
    """Config key "archive"."""

    retention_days: float = Field(30, gt=0)  # in days, as its name says (not a Duration: a number means days)
    max_text_chars: int = Field(200_000, ge=1000)  # longer texts are cut: the archive is for rules, not reading


class RuleSettings(_Model):
    """Config key `rules` in monitor.yaml."""

    path: str = "rules"  # folder of rule YAML files; gazetteers in <path>/entities
    watch: bool = True  # reload on file changes (SIGHUP reloads either way)


# ---- alerts and channels: the settings, and the schedules they name ----

def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None


def _clock(hour: str, minute: str) -> tuple[int, int]:
    h, m = int(hour), int(minute)
    if h > 23 or m > 59:
        raise ValueError(f"not a time of day: {hour}:{minute}")
    return h, m


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    """Either every `interval` seconds after the first held item, or daily at hour:minute in `zone`."""

    interval: float | None = None
    hour: int = 0
    minute: int = 0
    zone: str = "UTC"

    @classmethod
    def parse(cls, spec: str) -> DigestSchedule:
        daily = _DAILY.match(spec)
        if daily:
            hour, minute = _clock(daily.group(1), daily.group(2))
            _zone(daily.group(3))
            return cls(hour=hour, minute=minute, zone=daily.group(3) or "UTC")
        try:
            interval = parse_duration(spec)
        except ValueError:
            interval = 0.0
        if interval <= 0:
            raise ValueError(f"digest must be a duration (1h) or 'daily HH:MM Zone/Name', got {spec!r}")
        return cls(interval=interval)

    def next_due(self, after: float) -> float:
        """The first send time strictly after `after` (epoch seconds)."""
        if self.interval is not None:
            return after + self.interval
        zone = _zone(self.zone)
        local = datetime.fromtimestamp(after, zone)
        due = local.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if due.timestamp() <= after:
            due = (local + timedelta(days=1)).replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        return due.timestamp()


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily span (may cross midnight) in `zone` during which messages are held and later sent as a digest."""

    start: tuple[int, int]
    end: tuple[int, int]
    zone: str = "UTC"

    @classmethod
    def parse(cls, spec: str) -> QuietHours:
        match = _QUIET.match(spec)
        if not match:
            raise ValueError(f"quiet_hours must look like '22:00-07:00 Europe/Berlin', got {spec!r}")
        _zone(match.group(5))
        return cls(start=_clock(match.group(1), match.group(2)), end=_clock(match.group(3), match.group(4)),
                   zone=match.group(5) or "UTC")

    def end_if_quiet(self, now: float) -> float | None:
        """When `now` lies in quiet hours: the epoch time they end; else None."""
        local = datetime.fromtimestamp(now, _zone(self.zone))
        minutes = local.hour * 60 + local.minute
        start, end = self.start[0] * 60 + self.start[1], self.end[0] * 60 + self.end[1]
        if start == end:
            return None
        inside = start <= minutes < end if start < end else (minutes >= start or minutes < end)
        if not inside:
            return None
        end_day = local if (start < end or minutes < end) else local + timedelta(days=1)
        return end_day.replace(hour=self.end[0], minute=self.end[1], second=0, microsecond=0).timestamp()


class ChannelSettings(_Model):
    """One named channel: apprise URLs that receive the same message (config key "channels.<name>")."""

    urls: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)  # a rule may name a tag instead of a channel
    # None: what each service prefers; json: the alert as a JSON document, the body of a json:// / jsons:// webhook
    format: Literal["text", "markdown", "html", "json"] | None = None
    throttle: Duration | None = Field(None, gt=0)  # "10m": at most one message per rule per window; the rest counted
    digest: str | None = None  # "1h" or "daily 08:00 Europe/Berlin": collect, then send one message
    quiet_hours: str | None = None  # "22:00-07:00 Europe/Berlin": hold, then send as a digest
    templates: dict[str, str] = Field(default_factory=dict)  # kind (title|alert|digest) -> template file name

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if "://" not in url:
                # never echo the URL: it may hold a secret
                raise ValueError("each url must be an apprise URL such as json://host/path (scheme:// missing)")
        return urls

    @model_validator(mode="after")
    def _json_needs_webhooks(self) -> "ChannelSettings":
        if self.format == "json":
            other = sorted({u.split("://", 1)[0] for u in self.urls} - {"json", "jsons"})
            if other:
                raise ValueError(f"format: json sends the alert as the body of a webhook: use json:// or jsons:// "
                                 f"URLs, not {', '.join(s + '://' for s in other)}")
        return self

    @field_validator("digest", "quiet_hours")
    @classmethod
    def _schedule(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A digest schedule or quiet hours, parsed once here so that a typo is an error when the config loads."""
        if value is not None:
            (DigestSchedule if info.field_name == "digest" else QuietHours).parse(value)
        return value

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(TEMPLATE_KINDS))
        if unknown:
            raise ValueError(f"unknown template kind(s) {unknown}; use {list(TEMPLATE_KINDS)}")
        return value

    def throttle_seconds(self) -> float | None:
        return self.throttle or None

    def digest_schedule(self) -> DigestSchedule | None:
        return DigestSchedule.parse(self.digest) if self.digest else None

    def quiet(self) -> QuietHours | None:
        return QuietHours.parse(self.quiet_hours) if self.quiet_hours else None


class AlertSettings(_Model):
    """Delivery settings (config key "alerts")."""

    default_channels: list[str] = Field(default_factory=lambda: ["console", "audit"])
    retry_attempts: int = Field(6, ge=1, le=100)  # sends per (alert, channel) before the dead-letter stream
    retry_base: Duration = Field(2.0, gt=0)  # first retry after about this long, then doubling
    retry_max_delay: Duration = Field(300.0, gt=0)
    retry_max_age: Duration = Field(86400.0, gt=0)  # give up on an alert this old even with attempts left
    templates_dir: str | None = None  # files here override the built-in templates of the same name
    send_timeout: Duration = Field(30.0, gt=0)  # total deadline of one URL's send (its child is killed)
    poll_interval: Duration = Field(1.0, gt=0)  # how often each channel looks for due sends
    claim_idle: Duration = Field(60.0, gt=0)  # outbox messages of a dead deliverer are taken over after this
    history_retention: Duration = Field(90 * 86400.0, gt=0)  # alert records and (rule, story) keys expire after this


def with_builtin_channels(channels: Mapping[str, ChannelSettings], data_dir: str) -> dict[str, ChannelSettings]:
    """The configured channels plus `console` and `audit` (JSON lines in data_dir/alerts.jsonl) unless redefined."""
    builtin = {
        "console": ChannelSettings(urls=["console://"], format="text"),
        "audit": ChannelSettings(urls=[f"jsonl://{Path(data_dir).resolve() / 'alerts.jsonl'}"]),
    }
    return {**builtin, **channels}


def channel_names(channels: Mapping[str, ChannelSettings], data_dir: str) -> set[str]:
    """What a rule or alerts.default_channels may name: every channel (built-in ones too) and every tag."""
    every = with_builtin_channels(channels, data_dir)
    return set(every) | {tag for settings in every.values() for tag in settings.tags}
