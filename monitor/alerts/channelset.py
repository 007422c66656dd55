"""The channel set: every configured channel with its apprise URLs loaded, its schedules parsed and its secrets known,
built ONCE from the configuration and shared by routing (which channels, held or sent) and sending (the URLs).

Built at start-up (and by `monitor alerts retry`); nothing here touches Redis or reads the environment later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import apprise
from apprise.manager_plugins import NotificationManager

from .. import logs
from ..redact import privacy_url, secret_parts
from ..settings import ChannelSettings, DigestSchedule, QuietHours, with_builtin_channels
from .channels import register_plugins, resolve_channel_names, resolve_channel_urls
from .webhook import AlertWebhook

log = logging.getLogger(__name__)

_OWN_SCHEMES = ("console", "jsonl")  # our plugins: the URL holds no secret and its privacy form hides the path
FORMAT_OF = {"text": "text", "markdown": "markdown", "html": "html"}
JSON_FORMATS = ("json", "document")  # an audit record (jsonl://), an alert document (format: json webhooks)

def load_service(url: str) -> Any | None:
    """The apprise plugin of `url`, made as Apprise.add() makes it but without add()'s DEBUG line "Loaded ... URL",
    which shows custom header values (kept in apprise's privacy form) before their masking is set up."""
    results = apprise.plugins.url_to_dict(url, secure_logging=True)
    if not results:
        return None
    results.update(asset=apprise.AppriseAsset(), tag=set())
    try:
        service = NotificationManager()[results["schema"]](**results)
    except Exception:  # noqa: BLE001 - apprise's own add() treats any plugin error as "not a valid URL"
        return None
    return service if service.enabled else None


@dataclass
class Target:
    """One apprise URL of a channel."""

    index: int
    privacy: str  # safe to log and store
    fmt: str  # text | markdown | html | json (audit files) | document (format: json webhooks)
    apprise: apprise.Apprise | None = None
    error: str = ""  # the URL could not be loaded: every send fails permanently
    local: bool = False  # console:// or jsonl://: written here, not through a killable child process


@dataclass
class Channel:
    """One channel: its settings, its loaded URLs and its schedules, parsed once."""

    name: str
    settings: ChannelSettings
    targets: list[Target] = field(default_factory=list)
    throttle: float = 0.0  # seconds: at most one message per rule per window (0: no throttle)
    digest: DigestSchedule | None = None
    quiet: QuietHours | None = None

    @classmethod
    def of(cls, name: str, settings: ChannelSettings, targets: list[Target]) -> Channel:
        return cls(name, settings, targets, throttle=settings.throttle_seconds() or 0.0,
                   digest=settings.digest_schedule(), quiet=settings.quiet())

    def hold_until(self, now: float) -> tuple[float | None, str]:
        """When held items of this channel go out, if an alert routed now is to be held; else (None, "")."""
        quiet_end = self.quiet.end_if_quiet(now) if self.quiet else None
        if self.digest is None and quiet_end is None:
            return None, ""
        due = self.digest.next_due(now) if self.digest else quiet_end
        assert due is not None
        if self.quiet:  # a digest falling in quiet hours waits for their end
            due = self.quiet.end_if_quiet(due) or due
        return due, "digest" if self.digest else "quiet hours"

    @property
    def formats(self) -> set[str]:
        return {t.fmt for t in self.targets}


class ChannelSet(Mapping[str, Channel]):
    """Name -> Channel for every channel the deliverer serves (built-in console and audit included), and the
    secrets their URLs hold (masked in everything written or logged)."""

    def __init__(self, channels: Mapping[str, Channel], secrets: list[str]) -> None:
        self._channels = dict(channels)
        self._secrets = sorted(set(secrets), key=len, reverse=True)
        self._settings = {name: c.settings for name, c in self._channels.items()}

    @classmethod
    def build(cls, channels: Mapping[str, ChannelSettings], *, data_dir: str | None = None,
              environ: Mapping[str, str] | None = None) -> ChannelSet:
        """Resolve secrets (ConfigError naming channel and index), load every URL, parse every schedule."""
        register_plugins()
        # console:// always exists; audit (jsonl in data_dir) when the data directory is known; config wins
        channels = with_builtin_channels(channels, data_dir) if data_dir else {
            "console": ChannelSettings(urls=["console://"], format="text"), **channels}
        resolved = resolve_channel_urls(channels, environ=environ)
        secrets: list[str] = []
        built = {}
        for name, settings in channels.items():
            targets = [_target(name, i, url, settings, secrets) for i, url in enumerate(resolved[name])]
            built[name] = Channel.of(name, settings, targets)
        return cls(built, secrets)

    def __getitem__(self, name: str) -> Channel:
        return self._channels[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)

    def resolve(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """Channel names for what a rule lists (a channel or a tag); unknown names are returned as they are."""
        return resolve_channel_names(names, self._settings)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text


def _target(channel: str, index: int, url: str, settings: ChannelSettings, secrets: list[str]) -> Target:
    scheme = url.split("://", 1)[0].lower()
    ap = apprise.Apprise()
    service = load_service(url)
    if service is None or not ap.add(service):
        privacy = f"{scheme}://****"
        _add_secrets(secrets, secret_parts(url, privacy))
        log.error("channel %s: url %d (%s) is not a valid apprise URL; its sends will fail", channel, index, privacy)
        return Target(index, privacy, "text", None, error=f"not a valid apprise URL: {privacy}")
    if settings.format == "json":  # the alert document as the webhook's body (validated: json:// URLs)
        webhook = AlertWebhook.from_url(url)
        if webhook is not None:
            ap = apprise.Apprise()
            ap.add(webhook)
    service = ap[0]
    privacy = url if scheme in _OWN_SCHEMES else privacy_url(service.url(privacy=True))
    _add_secrets(secrets, secret_parts(url, privacy))
    if settings.format == "json":
        fmt = "document"
    elif scheme == "jsonl":
        fmt = "json"
    elif settings.format:
        fmt = settings.format
    else:
        preferred = service.notify_format
        preferred = preferred[0] if isinstance(preferred, (tuple, list)) else preferred
        fmt = FORMAT_OF.get(str(getattr(preferred, "value", preferred)), "text")
    return Target(index, privacy, fmt, ap, local=scheme in _OWN_SCHEMES)


def _add_secrets(into: list[str], secrets: list[str]) -> None:
    into.extend(secrets)
    logs.add_secrets(secrets)  # apprise's and urllib3's own records too, from the moment the URL is loaded
