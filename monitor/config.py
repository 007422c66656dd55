"""monitor.yaml: pydantic models, validation with file:line errors (all at once), MONITOR_* overrides.

The configuration is read and validated once at start-up (and on SIGHUP); nothing reads the environment after that.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from .alerts.channels import AlertSettings, ChannelSettings, channel_names
from .archive import ArchiveSettings
from .dedup import StorySettings
from .errors import ConfigError
from .extract import ExtractSettings
from .models import Feed
from .net import FetchSettings
from .rules import RuleSettings
from .sources.opml import CANNOT_READ, read_opml
from .yamlsafe import did_you_mean, parse_yaml_text

log = logging.getLogger(__name__)

ENV_PREFIX = "MONITOR_"
# MONITOR_* variables that are not setting overrides: the configuration file, the test corpus (tests/conftest.py)
NOT_SETTINGS = ("MONITOR_CONFIG", "MONITOR_CORPUS")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from 90, "90", "90s", "15m", "2h", "7d", "1w"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 2h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class PipelineSettings(_Model):
    tick: Duration = 5.0  # how often an instance looks for due feeds
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


class Config(_Model):
    data_dir: str = "data"
    redis: RedisSettings = RedisSettings()
    sources: SourceSettings = SourceSettings()
    fetch: FetchSettings = FetchSettings()
    extract: ExtractSettings = ExtractSettings()
    dedup: StorySettings = StorySettings()
    archive: ArchiveSettings = ArchiveSettings()
    rules: RuleSettings = RuleSettings()
    alerts: AlertSettings = AlertSettings()
    channels: dict[str, ChannelSettings] = {}
    workers: WorkerSettings = WorkerSettings()
    pipeline: PipelineSettings = PipelineSettings()
    service: ServiceSettings = ServiceSettings()
    log: LogSettings = LogSettings()

    # where the file was, for messages; not a setting
    source_path: str = Field("", exclude=True)
    _listed: tuple[FeedSource, ...] = PrivateAttr(default=())  # the feeds of sources.opml, read by load_config

    def consumer_name(self) -> str:
        return self.service.consumer or f"{socket.gethostname()}-{os.getpid()}"

    def feeds(self) -> list[Feed]:
        """Every configured source as a Feed; ids are stable across restarts (explicit id, else a URL hash)."""
        out: list[Feed] = []
        default = self.sources.interval
        for f in self.feed_sources():
            out.append(Feed(id=f.id or _source_id(f.url), url=f.url, name=f.name, kind="feed",
                            interval=f.interval or default, tags=tuple(f.tags),
                            headers=tuple(sorted(f.headers.items())), channels=tuple(f.channels),
                            robots=self.fetch.robots if f.robots is None else f.robots, fetch_page=f.fetch_page))
        for d in self.sources.directories:
            url = Path(d.path).resolve().as_uri()
            out.append(Feed(id=d.id or _source_id(url), url=url, name=d.name or Path(d.path).name, kind="directory",
                            interval=d.interval or default, tags=tuple(d.tags), channels=tuple(d.channels)))
        return out


    def feed_sources(self) -> list[FeedSource]:
        """sources.feeds, then the feeds of sources.opml that sources.feeds does not list (its entry, with its
        settings, wins)."""
        configured = {f.url for f in self.sources.feeds}
        return [*self.sources.feeds, *(f for f in self._listed if f.url not in configured)]


def listed_sources(path: Path, *, label: str) -> tuple[list[FeedSource], list[str]]:
    """The feeds of an OPML file as sources, and warnings; ConfigError with one `file:line: ...` per problem."""
    listed = read_opml(path, label=label)
    sources, problems = [], []
    for feed in listed.feeds:
        try:
            sources.append(FeedSource(url=feed.url, name=feed.name, tags=list(feed.tags)))
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            problems.append(f"{label}:{feed.line or 1}: outline {feed.name or feed.url!r}: {message}")
    if problems:
        raise ConfigError(f"{label}: {len(problems)} error(s) in the feed list", problems)
    return sources, list(listed.warnings)


def _source_id(url: str) -> str:
    return hashlib.blake2b(url.encode(), digest_size=6).hexdigest()


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """MONITOR_REDIS__URL=redis://... sets redis.url (double underscore descends). Values are YAML scalars."""
    applied = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in NOT_SETTINGS:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        _set_path(data, path, value)
        applied.append(".".join(path))
    return applied


def _resolve_paths(config: Config, base: Path) -> Config:
    """Relative paths in the file are relative to the file, not to the working directory."""
    def rel(p: str) -> str:
        return str((base / p).resolve()) if not os.path.isabs(p) else p

    updates: dict[str, Any] = {"data_dir": rel(config.data_dir),
                               "rules": config.rules.model_copy(update={"path": rel(config.rules.path)})}
    dirs = [d.model_copy(update={"path": rel(d.path)}) for d in config.sources.directories]
    opml = rel(config.sources.opml) if config.sources.opml else None
    updates["sources"] = config.sources.model_copy(update={"directories": dirs, "opml": opml})
    if config.alerts.templates_dir:
        updates["alerts"] = config.alerts.model_copy(update={"templates_dir": rel(config.alerts.templates_dir)})
    return config.model_copy(update=updates)


def known_channels(config: Config) -> set[str]:
    """Channel names and tags that rules, sources and alerts.default_channels may name (built-ins included)."""
    return channel_names(config.channels, config.data_dir)


def _channel_problems(config: Config, where: Any) -> list[str]:
    """Every place of the configuration that names a channel monitor.yaml does not define (nor a tag)."""
    known = known_channels(config)
    named: list[tuple[tuple[Any, ...], str]] = [(("alerts", "default_channels", i), name)
                                                for i, name in enumerate(config.alerts.default_channels)]
    for kind, sources in (("feeds", config.sources.feeds), ("directories", config.sources.directories)):
        for i, src in enumerate(sources):
            named += [(("sources", kind, i, "channels", j), name) for j, name in enumerate(src.channels)]
    if config.service.operator_channel:
        named.append((("service", "operator_channel"), config.service.operator_channel))
    return [f"{where(loc)}: {_format_loc(loc)}: unknown channel {name!r}{did_you_mean(name, known)} "
            f"(channels: {', '.join(sorted(known))})" for loc, name in named if name not in known]


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def validate(data: Any, loaded: Any, *, source: str, env_keys: list[str]) -> Config:
    """Validate `data`; raise ConfigError with one `file:line:col: key.path: message` line per error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping of settings")
    def where(loc: tuple[Any, ...]) -> str:
        key = _format_loc(loc)
        if any(key == k or key.startswith(k + ".") for k in env_keys):
            return f"environment {ENV_PREFIX}{'__'.join(str(p).upper() for p in loc)}"
        return loaded.where(loc) if loaded else source

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown setting (check the spelling)"
            problems.append(f"{where(loc)}: {_format_loc(loc)}: {message}")
        raise ConfigError(f"{source}: {len(problems)} error(s) in the configuration", problems) from None
    problems = _channel_problems(config, where)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} error(s) in the configuration", problems)
    return config


def load_config(path: str | os.PathLike[str] | None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, validate. `path=None` means built-in defaults plus environment."""
    environ = os.environ if environ is None else environ
    loaded = None
    data: Any = {}
    source = "(defaults)"
    base = Path.cwd()
    if path is not None:
        file = Path(path)
        source = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read the configuration: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text: {exc}") from None
        problems: list[str] = []
        loaded = parse_yaml_text(text, path=file, label=source, problems=problems)
        if loaded is None:
            raise ConfigError(f"{source}: not valid YAML", problems)
        data = loaded.data
        base = file.resolve().parent
    if data is None:
        data = {}
    env_keys = apply_env(data, environ) if isinstance(data, dict) else []
    config = validate(data, loaded, source=source, env_keys=env_keys)
    config = _resolve_paths(config, base).model_copy(update={"source_path": source})
    if config.sources.opml:
        config._listed = tuple(_read_feed_list(config.sources.opml, loaded, source=source))
    return config


def _read_feed_list(path: str, loaded: Any, *, source: str) -> list[FeedSource]:
    """sources.opml's feeds; a file that cannot be read is an error at the sources.opml line of monitor.yaml."""
    try:
        feeds, warnings = listed_sources(Path(path), label=path)
    except ConfigError as exc:
        where = loaded.where(("sources", "opml")) if loaded else source
        problems = [f"{where}: sources.opml: {p}" if CANNOT_READ in p else p for p in exc.problems]
        raise ConfigError(f"{source}: {len(problems)} error(s) in the configuration", problems) from None
    for warning in warnings:
        log.warning("sources.opml: %s", warning)
    return feeds


def default_config_path(environ: Mapping[str, str] | None = None) -> str | None:
    """$MONITOR_CONFIG, else ./monitor.yaml if present, else None (built-in defaults)."""
    environ = os.environ if environ is None else environ
    if environ.get("MONITOR_CONFIG"):
        return environ["MONITOR_CONFIG"]
    return "monitor.yaml" if Path("monitor.yaml").is_file() else None
