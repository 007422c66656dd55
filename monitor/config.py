"""monitor.yaml: the root model, validation with file:line errors (all at once), MONITOR_* overrides.

The sections (every settings model, the Duration type) are in monitor.settings.

The configuration is read and validated once at start-up (and on SIGHUP); nothing reads the environment after that.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .errors import ConfigError
from .models import Feed
from .settings import (AlertSettings, ArchiveSettings, ChannelSettings, ExtractSettings, FeedSource,
                       FetchSettings, LogSettings, PipelineSettings, RedisSettings, RuleSettings, ServiceSettings,
                       SourceSettings, StorySettings, WorkerSettings, channel_names)
from .sources.opml import CANNOT_READ, read_opml
from .yamlsafe import did_you_mean, parse_yaml_text

log = logging.getLogger(__name__)

ENV_PREFIX = "MONITOR_"
# MONITOR_* variables that are not setting overrides: the configuration file, the test corpus (tests/conftest.py)
NOT_SETTINGS = ("MONITOR_CONFIG", "MONITOR_CORPUS")


class Config(BaseModel):
    """The whole of monitor.yaml: the sections of monitor.settings, and where the file was."""

    model_config = ConfigDict(extra="forbid")

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
