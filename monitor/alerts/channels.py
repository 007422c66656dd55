"""Alert channels: settings (config keys "alerts" and "channels"), schedules, secrets in URLs, built-in channels.

Pure parsing and validation, plus the two demo/audit apprise plugins `console://` and `jsonl:///path`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhdw]?)\s*$")
_DAILY = re.compile(r"^\s*daily\s+(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$", re.I)
_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")
TEMPLATE_KINDS = ("title", "alert", "digest")


def parse_duration(value: Any) -> float:
    """Seconds from 90, "90s", "500ms", "15m", "2h", "1d", "1w"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 1h, 1d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {value!r}")
    return seconds


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
            return cls(interval=parse_duration(spec))
        except ValueError:
            raise ValueError(f"digest must be a duration (1h) or 'daily HH:MM Zone/Name', got {spec!r}") from None

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


class ChannelSettings(BaseModel):
    """One named channel: apprise URLs that receive the same message (config key "channels.<name>")."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)  # a rule may name a tag instead of a channel
    # None: what each service prefers; json: the alert as a JSON document, the body of a json:// / jsons:// webhook
    format: Literal["text", "markdown", "html", "json"] | None = None
    throttle: str | None = None  # "10m": at most one message per rule per window; the rest counted
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

    @field_validator("throttle")
    @classmethod
    def _throttle(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is not None:
            DigestSchedule.parse(value)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None:
            QuietHours.parse(value)
        return value

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(TEMPLATE_KINDS))
        if unknown:
            raise ValueError(f"unknown template kind(s) {unknown}; use {list(TEMPLATE_KINDS)}")
        return value

    def throttle_seconds(self) -> float | None:
        return parse_duration(self.throttle) if self.throttle else None

    def digest_schedule(self) -> DigestSchedule | None:
        return DigestSchedule.parse(self.digest) if self.digest else None

    def quiet(self) -> QuietHours | None:
        return QuietHours.parse(self.quiet_hours) if self.quiet_hours else None


class AlertSettings(BaseModel):
    """Delivery settings (config key "alerts")."""

    model_config = ConfigDict(extra="forbid")

    default_channels: list[str] = Field(default_factory=lambda: ["console", "audit"])
    retry_attempts: int = Field(6, ge=1, le=100)  # sends per (alert, channel) before the dead-letter stream
    retry_base: float = Field(2.0, gt=0)  # first retry after about this many seconds, then doubling
    retry_max_delay: float = Field(300.0, gt=0)
    retry_max_age: float = Field(86400.0, gt=0)  # give up on an alert this old even with attempts left
    templates_dir: str | None = None  # files here override the built-in templates of the same name
    send_timeout: float = Field(30.0, gt=0)  # total deadline of one URL's send (its child is killed)
    poll_interval: float = Field(1.0, gt=0)  # how often each channel looks for due sends
    claim_idle: float = Field(60.0, gt=0)  # outbox messages of a dead deliverer are taken over after this
    history_retention: float = Field(90 * 86400.0, gt=0)  # alert records and (rule, story) keys expire after this


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


def resolve_channel_names(names: list[str] | tuple[str, ...], channels: Mapping[str, ChannelSettings]) -> list[str]:
    """Channel names for what a rule lists: a channel's own name, or a tag that several channels carry.

    Unknown names are returned as they are; the deliverer records them as failed, never drops them silently.
    """
    out: list[str] = []
    for name in names:
        found = [name] if name in channels else [c for c, s in channels.items() if name in s.tags]
        for channel in found or [name]:
            if channel not in out:
                out.append(channel)
    return out


CREDENTIAL_FOLDER_ID = "monitor"  # deploy/monitor.service: LoadCredential=monitor:/etc/monitor/credentials
_SECRET = re.compile(r"\{file:([^}]+)\}|\{credential:([^}]+)\}|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_secrets(url: str, *, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Substitute {file:/path}, {credential:name} ($CREDENTIALS_DIRECTORY/name, or .../monitor_name as systemd names
    the files of a folder loaded with LoadCredential=monitor:/folder) and ${ENV} in an apprise URL.

    File contents are stripped of surrounding whitespace. Errors name `where` and the file or variable, never the
    resolved value. Called once at start-up (and on reload): nothing reads the environment later.
    """
    env = os.environ if environ is None else environ

    def one(match: re.Match[str]) -> str:
        path, credential, var = match.groups()
        if var:
            if var not in env:
                raise ConfigError(f"{where}: environment variable {var} is not set")
            return env[var]
        if credential:
            base = env.get("CREDENTIALS_DIRECTORY")
            if not base:
                raise ConfigError(f"{where}: {{credential:{credential}}} needs $CREDENTIALS_DIRECTORY "
                                  "(systemd LoadCredential=; outside systemd set it to the credentials folder)")
            path = str(Path(base) / credential)
            if not os.path.exists(path):  # the shipped units load a folder: its file X arrives as monitor_X
                folder_form = Path(base) / f"{CREDENTIAL_FOLDER_ID}_{credential}"
                path = str(folder_form) if folder_form.exists() else path
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read secret file {path}: {getattr(exc, 'strerror', None) or exc}"
                              ) from None

    return _SECRET.sub(one, url)


def resolve_channel_urls(channels: Mapping[str, ChannelSettings], *, environ: Mapping[str, str] | None = None,
                         source: str = "") -> dict[str, list[str]]:
    """Every channel's URLs with secrets substituted; all problems reported at once as one ConfigError.
    `source` (the configuration file) starts every problem line, so it names where the URL was written."""
    out: dict[str, list[str]] = {}
    problems: list[str] = []
    prefix = f"{source}: " if source and source != "(defaults)" else ""
    for name, settings in channels.items():
        out[name] = []
        for i, url in enumerate(settings.urls):
            try:
                out[name].append(resolve_secrets(url, where=f"{prefix}channels.{name}.urls[{i}]", environ=environ))
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(f"{len(problems)} channel secret(s) could not be resolved", problems)
    return out


# ---- built-in apprise plugins: console:// and jsonl:///path ----

_registered = False
_write_lock = threading.Lock()


def _console(body: str, title: str, *args: Any, **kwargs: Any) -> bool:
    text = f"{title}\n{body}\n" if title else f"{body}\n"
    with _write_lock:
        sys.stdout.write(text)
        sys.stdout.flush()
    return True


def _jsonl(body: str, title: str, *args: Any, meta: dict[str, Any] | None = None, **kwargs: Any) -> bool:
    path = jsonl_path(meta or {})
    try:
        record = json.loads(body)
    except ValueError:
        record = {"title": title, "body": body}
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _write_lock, path.open("a", encoding="utf-8") as fh:
        fh.write(line)
    return True


def jsonl_path(meta: Mapping[str, Any]) -> Path:
    """The file of a jsonl:// URL from apprise's parsed `meta`. Paths are always absolute: apprise reads
    jsonl:///var/lib/monitor/alerts.jsonl as host "var" + path "/lib/monitor/alerts.jsonl", so both are joined."""
    host, path = str(meta.get("host") or ""), str(meta.get("fullpath") or "")
    if not host and path in ("", "/"):
        raise ValueError("jsonl:// needs a file path, e.g. jsonl:///var/lib/monitor/alerts.jsonl")
    return Path("/" + host + path) if host else Path(path)


def register_plugins() -> None:
    """Register console:// and jsonl:// with apprise (once per process)."""
    global _registered
    if _registered:
        return
    from apprise.decorators import notify

    notify(on="console", name="Monitor console")(_console)
    notify(on="jsonl", name="Monitor JSON lines")(_jsonl)
    _registered = True
