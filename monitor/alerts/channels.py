"""Alert channels: secrets in URLs, channel names and tags, built-in channels.

Their settings (config keys "alerts" and "channels") and schedules are in monitor.settings; here: pure functions,
plus the two demo/audit apprise plugins `console://` and `jsonl:///path`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
# The settings live in monitor.settings; monitor.alerts still exports these names (docs/alerts.md, Python API).
from ..settings import AlertSettings, ChannelSettings, with_builtin_channels  # noqa: F401


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
