"""The deliverer: takes alerts from the outbox stream and sends each to its channels with apprise, exactly once.

Per channel a due-time ZSET holds first sends and retries (so a channel that is down delays only itself); each
(alert, channel) has one delivery record, written with the send's outcome, that makes redelivery a no-op.

    outbox stream --handle--> route: held (digest / quiet hours) | throttled (counted) | due ZSET of the channel
    channel loop  --claim (lease)--> render + apprise per URL --> sent | retry at now+backoff | dead-letter stream

Remaining window: a crash after a service accepted a message and before that URL's answer is written (each URL is
marked "sending" before and answered right after its send) sends it again to that URL once the claim lease runs
out, with the same alert id in the payload for the receiver to drop it. Nothing else resends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import apprise
from apprise.manager_plugins import NotificationManager
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

from .. import logs, metrics
from ..errors import PermanentError
from ..models import Alert
from ..store import Keys
from ..streams import Message, Stream
from .channels import (AlertSettings, ChannelSettings, register_plugins, resolve_channel_names, resolve_channel_urls,
                       with_builtin_channels)
from .history import AlertHistory
from .outbox import OUTBOX_STREAM
from .render import Renderer, alert_document, render_record
from .sending import send_in_child
from .webhook import AlertWebhook

log = logging.getLogger(__name__)

_OWN_SCHEMES = ("console", "jsonl")  # our plugins: the URL holds no secret and its privacy form hides the path
_FORMAT_OF = {"text": "text", "markdown": "markdown", "html": "html"}
_JSON_FORMATS = ("json", "document")  # an audit record (jsonl://), an alert document (format: json webhooks)
# A rule's severity as apprise's notification type: services show warning / failure differently (colour, icon,
# priority), so a critical alert does not look like an informational one.
NOTIFY_TYPE = {"info": apprise.NotifyType.INFO, "low": apprise.NotifyType.INFO, "medium": apprise.NotifyType.INFO,
               "high": apprise.NotifyType.WARNING, "critical": apprise.NotifyType.FAILURE}

# Route an alert to a channel for sending now, unless it already has a record there; the throttle gate is part of
# the same script, so a crash cannot consume a throttle window without recording the alert.
_ROUTE_SEND = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {-1, 0} end
local now = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local suppressed = 0
if window > 0 then
  local untl = tonumber(redis.call('HGET', KEYS[3], 'until') or '0')
  if now < untl then
    local c = redis.call('HINCRBY', KEYS[3], 'count', 1)
    redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({status='throttled', at=now, window_ends=untl}))
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    return {0, c}
  end
  suppressed = tonumber(redis.call('HGET', KEYS[3], 'count') or '0')
  redis.call('HSET', KEYS[3], 'until', ARGV[3] + window, 'count', 0)
  redis.call('EXPIRE', KEYS[3], math.ceil(window) + 86400)
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({status='queued', attempts=0, first_at=now, suppressed=suppressed}))
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[2])
return {1, suppressed}
"""

# Hold an alert for the channel's next digest (digest window or quiet hours).
_ROUTE_HOLD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({status='held', reason=ARGV[6], at=tonumber(ARGV[3])}))
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[4], 'NX')
return 1
"""

# Claim due sends: move them a lease ahead so no other instance (and no restart) sends them meanwhile.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id) end
return ids
"""

# Take a channel's held list into a new digest if it is due.
_TAKE_DIGEST = """
local due = redis.call('GET', KEYS[2])
if not due or tonumber(due) > tonumber(ARGV[1]) then return false end
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local digest = ARGV[2] .. '-' .. redis.call('INCR', KEYS[3])
redis.call('RENAME', KEYS[1], ARGV[3] .. digest)
redis.call('SADD', KEYS[4], ARGV[2] .. '\\t' .. digest)
return digest
"""


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
    name: str
    settings: ChannelSettings
    targets: list[Target] = field(default_factory=list)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


# apprise URL arguments whose values may be secrets: +Header=, -GETparam=, :payload_field= and secret-looking names
_SECRET_ARG = re.compile(r"^[+\-:]|key|token|secret|pass|sig|cred|authori", re.I)


def privacy_url(privacy: str) -> str:
    """apprise's privacy form with every argument value that may be a secret masked: apprise keeps the values of
    custom headers (+X-Api-Token=...), GET parameters and payload fields as they are."""
    parts = urlsplit(privacy)
    if not parts.query:
        return privacy
    args = [(k, "****" if _SECRET_ARG.search(k) and v else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(args, safe="*/@")))


def secret_parts(url: str, privacy: str) -> list[str]:
    """Pieces of `url` that its privacy form hides: masked in every text we log or store, and in every log record.

    Candidates are the tokens before the query (user, password, path tokens), the values of secret-looking
    arguments, and the Basic auth header value apprise sends (base64 of user:password)."""
    parts = urlsplit(url)
    head = url.split("?", 1)[0]
    tokens = {t for t in re.split(r"[/:@?&=#,+;]", head) if len(t) >= 4}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_ARG.search(key):
            tokens |= {value} | {t for t in re.split(r"[/:@?&=#,+;]", value) if len(t) >= 4}
    tokens |= {unquote(t) for t in tokens}
    if parts.password:
        basic = f"{unquote(parts.username or '')}:{unquote(parts.password)}".encode()
        tokens.add(base64.b64encode(basic).decode())
    privacy = unquote(privacy)
    return sorted((t for t in tokens if len(t) >= 4 and t not in privacy), key=len, reverse=True)


def with_alert_id(body: str, alert_id: str, fmt: str) -> str:
    """The alert id as the message's last line: the idempotency key for services whose payload is only text (ntfy,
    Slack, Telegram, mail bodies), so a receiver (person or bot) can drop a repeat after a crash."""
    if fmt == "html":
        return f"{body}\n<p><small>id: {alert_id}</small></p>"
    return f"{body}\n\nid: {alert_id}"


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


class Deliverer:
    """Consumes the outbox stream and delivers per channel with retries, throttle, digests and quiet hours."""

    def __init__(self, redis: Any, keys: Keys, *, settings: AlertSettings,
                 channels: Mapping[str, ChannelSettings], consumer: str, clock: Any = time.time,
                 environ: Mapping[str, str] | None = None, data_dir: str | None = None) -> None:
        register_plugins()
        # console:// always exists; audit (jsonl in data_dir) when the data directory is known; config wins
        channels = with_builtin_channels(channels, data_dir) if data_dir else {
            "console": ChannelSettings(urls=["console://"], format="text"), **channels}
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.clock = clock
        self.history = AlertHistory(redis, keys, retention=settings.history_retention)
        self.ak = self.history.ak
        self.renderer = Renderer(templates_dir=settings.templates_dir)
        self.stream = Stream(redis, keys, OUTBOX_STREAM, consumer=consumer, claim_idle=settings.claim_idle)
        self._secrets: list[str] = []
        self.channels = self._build_channels(channels, environ)
        # set when this process queues a send, so the channel's loop sends at once instead of at its next poll
        self._wake: dict[str, asyncio.Event] = {}
        self._route_send = redis.register_script(_ROUTE_SEND)
        self._route_hold = redis.register_script(_ROUTE_HOLD)
        self._claim = redis.register_script(_CLAIM)
        self._take_digest = redis.register_script(_TAKE_DIGEST)
        self.lease = settings.send_timeout * 2 + 10

    # ---- set-up ----

    def _build_channels(self, channels: Mapping[str, ChannelSettings],
                        environ: Mapping[str, str] | None) -> dict[str, Channel]:
        resolved = resolve_channel_urls(channels, environ=environ)  # ConfigError naming channel and index
        out = {}
        for name, settings in channels.items():
            out[name] = Channel(name, settings, [self._target(name, i, url, settings)
                                                 for i, url in enumerate(resolved[name])])
        return out

    def _target(self, channel: str, index: int, url: str, settings: ChannelSettings) -> Target:
        scheme = url.split("://", 1)[0].lower()
        ap = apprise.Apprise()
        service = load_service(url)
        if service is None or not ap.add(service):
            privacy = f"{scheme}://****"
            self._add_secrets(secret_parts(url, privacy))
            log.error("channel %s: url %d (%s) is not a valid apprise URL; its sends will fail", channel, index,
                      privacy)
            return Target(index, privacy, "text", None, error=f"not a valid apprise URL: {privacy}")
        if settings.format == "json":  # the alert document as the webhook's body (validated: json:// URLs)
            webhook = AlertWebhook.from_url(url)
            if webhook is not None:
                ap = apprise.Apprise()
                ap.add(webhook)
        service = ap[0]
        privacy = url if scheme in _OWN_SCHEMES else privacy_url(service.url(privacy=True))
        self._add_secrets(secret_parts(url, privacy))
        if settings.format == "json":
            fmt = "document"
        elif scheme == "jsonl":
            fmt = "json"
        elif settings.format:
            fmt = settings.format
        else:
            preferred = service.notify_format
            preferred = preferred[0] if isinstance(preferred, (tuple, list)) else preferred
            fmt = _FORMAT_OF.get(str(getattr(preferred, "value", preferred)), "text")
        return Target(index, privacy, fmt, ap, local=scheme in _OWN_SCHEMES)

    def _add_secrets(self, secrets: list[str]) -> None:
        self._secrets = sorted(set(self._secrets) | set(secrets), key=len, reverse=True)
        logs.add_secrets(secrets)  # apprise's and urllib3's own records too

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text

    # ---- outbox: route each alert to its channels ----

    async def handle(self, message: Message) -> None:
        """One outbox message: record a delivery per channel (queued, held or throttled). Idempotent."""
        try:
            alert = Alert.from_dict(message.payload)
        except (TypeError, ValueError, KeyError) as exc:
            raise PermanentError(f"outbox message {message.id} is not an alert: {exc}") from None
        names = list((alert.match or {}).get("channels") or []) or self.settings.default_channels
        for channel in resolve_channel_names(names, {n: c.settings for n, c in self.channels.items()}):
            if await self.route(alert, channel) == "queued":
                self._wake.setdefault(channel, asyncio.Event()).set()

    async def route(self, alert: Alert, channel: str) -> str:
        """Record `alert` for `channel`: "queued", "held", "throttled", "unknown" or "exists" (already routed)."""
        now = self.clock()
        ttl = int(self.settings.history_retention)
        spec = self.channels.get(channel)
        if spec is None:
            await self._unknown_channel(alert, channel)
            return "unknown"
        held_due, reason = self._hold_until(spec.settings, now)
        if held_due is not None:
            done = await self._route_hold(keys=[self.ak.deliveries(alert.id), self.ak.held(channel),
                                                self.ak.held_due(channel)],
                                          args=[channel, alert.id, now, held_due, ttl, reason])
            if done:
                log.info("alert %s channel %s: held for %s until %s", alert.id, channel, reason, _iso(held_due))
            return "held" if done else "exists"
        window = spec.settings.throttle_seconds() or 0
        code, count = await self._route_send(
            keys=[self.ak.deliveries(alert.id), self.ak.due(channel), self.ak.throttle(channel, alert.rule_id)],
            args=[channel, alert.id, now, window, ttl])
        if int(code) == 0:
            log.info("alert %s channel %s: throttled (%d held back in this window)", alert.id, channel, count)
            return "throttled"
        return "queued" if int(code) == 1 else "exists"

    def _hold_until(self, settings: ChannelSettings, now: float) -> tuple[float | None, str]:
        """When held items of this channel go out, if an alert routed now is to be held; else (None, "")."""
        schedule, quiet = settings.digest_schedule(), settings.quiet()
        quiet_end = quiet.end_if_quiet(now) if quiet else None
        if schedule is None and quiet_end is None:
            return None, ""
        due = schedule.next_due(now) if schedule else quiet_end
        assert due is not None
        if quiet:  # a digest falling in quiet hours waits for their end
            due = quiet.end_if_quiet(due) or due
        return due, "digest" if schedule else "quiet hours"

    async def _unknown_channel(self, alert: Alert, channel: str) -> None:
        if await self.history.delivery(alert.id, channel) is not None:
            return
        error = f"unknown channel {channel!r} (not in the configuration's channels)"
        await self.history.set_delivery(alert.id, channel, {"status": "dead", "error": error, "attempts": 0})
        await self._dead_letter(alert.id, channel, error, 0)
        # rules are checked against the channels at load, so this is an alert written before a channel was removed
        log.error("alert %s channel %s: %s; dead-lettered", alert.id, channel, error)
        metrics.deliveries.labels(channel, "dead").inc()

    # ---- channels: send what is due ----

    async def send_due(self, channel: str, *, limit: int = 8) -> int:
        """Claim and send up to `limit` due sends of one channel, concurrently. Returns how many were claimed."""
        ids = await self._claim(keys=[self.ak.due(channel)], args=[self.clock(), self.lease, limit])
        if ids:
            await asyncio.gather(*(self._send_one(channel, alert_id) for alert_id in ids))
        return len(ids)

    async def _send_one(self, channel: str, alert_id: str) -> None:
        state = await self.history.delivery(alert_id, channel)
        alert = await self.history.alert(alert_id)
        spec = self.channels.get(channel)
        if state is None or state.get("status") in ("sent", "dead") or alert is None or spec is None:
            # already finished (a crash after the record, before the ZREM) or nothing left to send
            await self.redis.zrem(self.ak.due(channel), alert_id)
            return
        try:
            if not spec.targets:
                raise PermanentError(f"channel {channel!r} has no urls")
            messages = await self._render(alert, spec, state)
        except PermanentError as exc:
            await self._finish(alert_id, channel, state, {}, error=self.scrub(str(exc)), permanent=True)
            return
        inflight = await self._inflight(alert_id, channel)
        # a URL whose answer was written just before a crash is done; one left "sending" is sent again (same id)
        outcome = {i: r for i, r in inflight.items() if r.get("status") == "sent"}
        done = {**(state.get("targets") or {}), **outcome}
        pending = [t for t in spec.targets if done.get(str(t.index), {}).get("status") != "sent"]
        for target in pending:
            if inflight.get(str(target.index), {}).get("status") == "sending":
                log.warning("alert %s channel %s: %s: an earlier attempt stopped during the send (crash); sending "
                            "again with the same alert id, which the receiver can use to drop a repeat",
                            alert_id, channel, target.privacy)
        results = await asyncio.gather(*(self._send_marked(alert_id, channel, t, messages[t.fmt]) for t in pending))
        outcome.update({str(t.index): r for t, r in zip(pending, results)})
        failed = [f"{r['url']}: {r['answer']}" for r in outcome.values() if r["status"] != "sent"]
        await self._finish(alert_id, channel, state, outcome, error="; ".join(failed), permanent=False)

    async def _render(self, alert: Alert, spec: Channel, state: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
        """(title, body, severity) per format this channel's URLs need."""
        sources = await self.history.sources(await self.history.base_of(alert.id)) or list(alert.sources)
        items = await self._digest_items(alert) if alert.kind == "digest" else None
        overrides = spec.settings.templates
        out: dict[str, tuple[str, str, str]] = {}
        for fmt in {t.fmt for t in spec.targets}:
            text_fmt = "text" if fmt in _JSON_FORMATS else fmt
            if items is not None:
                title, body = self.renderer.render_digest(alert, items, fmt=text_fmt, channel=spec.name,
                                                          overrides=overrides)
            else:
                title, body = self.renderer.render(alert, fmt=text_fmt, sources=sources, overrides=overrides,
                                                   suppressed=int(state.get("suppressed") or 0))
            if fmt in _FORMAT_OF:
                body = with_alert_id(body, alert.id, fmt)
            elif fmt == "json":
                body = render_record(alert, title=title, body=body, sources=sources,
                                     items=[a for a, _ in items] if items is not None else None)
            elif fmt == "document":
                body = alert_document(alert, title=title, sources=sources,
                                      items=[a for a, _ in items] if items is not None else None)
            out[fmt] = (title, body, str((alert.match or {}).get("severity") or "info"))
        return out

    async def _digest_items(self, digest: Alert) -> list[tuple[Alert, list[tuple[str, str]]]]:
        out = []
        for item_id in (digest.changes or {}).get("items", []):
            item = await self.history.alert(item_id)
            if item is not None:
                out.append((item, await self.history.sources(await self.history.base_of(item_id))))
        return out

    async def _inflight(self, alert_id: str, channel: str) -> dict[str, dict[str, Any]]:
        """URL index -> what the last attempt wrote for it before its outcome was recorded ("sending" or its answer)."""
        raw = await self.redis.hgetall(self.ak.inflight(alert_id, channel))
        return {index: json.loads(value) for index, value in raw.items()}

    async def _send_marked(self, alert_id: str, channel: str, target: Target,
                           message: tuple[str, str, str]) -> dict[str, Any]:
        """One URL's send between two marks: "sending" before it, its answer right after it. A crash then resends
        only URLs caught in mid-send (marked "sending"), not those that answered while others were still going."""
        key = self.ak.inflight(alert_id, channel)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, str(target.index), json.dumps({"status": "sending", "at": round(self.clock(), 3)}))
            pipe.expire(key, int(self.settings.history_retention))
            await pipe.execute()
        result = await self._send_target(target, message, alert_id)
        try:
            await self.redis.hset(key, str(target.index), json.dumps(result))
        except (RedisConnectionError, RedisTimeoutError):  # _finish records it, waiting for Redis while it can
            pass
        return result

    async def _send_target(self, target: Target, message: tuple[str, str, str], alert_id: str) -> dict[str, Any]:
        """One URL: apprise's answer as {"url", "status": sent|failed, "answer", "at"} (secrets scrubbed).

        A service's send runs in a child process killed at send_timeout (see sending.py); our own console:// and
        jsonl:// write locally and run here."""
        at = round(self.clock(), 3)
        if target.apprise is None:
            return {"url": target.privacy, "status": "failed", "answer": target.error, "at": at, "permanent": True}
        title, body, severity = message
        kwargs = {"body": body, "title": title, "body_format": "text" if target.fmt in _JSON_FORMATS else target.fmt,
                  "notify_type": NOTIFY_TYPE.get(severity, apprise.NotifyType.INFO)}
        if target.local:
            result = await target.apprise.async_notify(**kwargs, timeout=self.settings.send_timeout)
            ok, answer = bool(result), result.status.name
        else:
            sent = await send_in_child(target.apprise, alert_id=alert_id, timeout=self.settings.send_timeout,
                                       **kwargs)
            ok, answer = sent["ok"], sent["status"]
            if not ok and sent["notes"]:
                answer = f"{answer}: {' | '.join(sent['notes'])[-400:]}"
        return {"url": target.privacy, "status": "sent" if ok else "failed", "answer": self.scrub(answer), "at": at}

    async def _finish(self, alert_id: str, channel: str, state: dict[str, Any], outcome: dict[str, Any], *,
                      error: str, permanent: bool) -> None:
        """Write the outcome with the due-ZSET change in one transaction: sent, retry later, or dead."""
        now = self.clock()
        targets = {**(state.get("targets") or {}), **outcome}
        attempts = int(state.get("attempts") or 0) + 1
        first_at = float(state.get("first_at") or now)
        new = {**state, "targets": targets, "attempts": attempts, "first_at": first_at, "last_at": now}
        failed = [r for r in outcome.values() if r.get("status") != "sent"]
        # only when every failing URL can never succeed (invalid URL) is waiting pointless
        permanent = permanent or (bool(failed) and all(r.get("permanent") for r in failed))
        if not error:
            new.update(status="sent", error="")
        elif permanent or attempts >= self.settings.retry_attempts or now - first_at >= self.settings.retry_max_age:
            new.update(status="dead", error=error)
        else:
            new.update(status="retrying", error=error, next_at=now + self._backoff(attempts))
        # shielded: the send happened, so its outcome is written even if this loop is being cancelled (shutdown)
        await asyncio.shield(self._record_outcome(alert_id, channel, new))
        self._log_outcome(alert_id, channel, new)
        metrics.deliveries.labels(channel, "sent" if new["status"] == "sent" else "failed").inc()
        if new["status"] == "dead":
            metrics.deliveries.labels(channel, "dead").inc()
        if new["status"] == "dead":
            await self._dead_letter(alert_id, channel, error, attempts)

    async def _record_outcome(self, alert_id: str, channel: str, new: dict[str, Any]) -> None:
        """Write the outcome and the due-ZSET change in one transaction. The send already happened: if Redis is away,
        keep trying while the send's lease lasts, or the send would be repeated (a duplicate) after the lease."""
        deadline = time.monotonic() + self.lease / 2
        delay = 0.1
        while True:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    self.history.queue_delivery(pipe, alert_id, channel, new)
                    pipe.delete(self.ak.inflight(alert_id, channel))  # now in the delivery record
                    if new["status"] == "retrying":
                        pipe.zadd(self.ak.due(channel), {alert_id: new["next_at"]})
                    else:
                        pipe.zrem(self.ak.due(channel), alert_id)
                    await pipe.execute()
                return
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if time.monotonic() + delay > deadline:
                    raise
                if delay == 0.1:
                    log.warning("alert %s channel %s: %s, but Redis is unavailable to record it (%s); retrying",
                                alert_id, channel, new["status"], exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _backoff(self, attempts: int) -> float:
        """Exponential, capped, with jitter (half to full delay) so retries of many alerts spread out."""
        delay = min(self.settings.retry_max_delay, self.settings.retry_base * 2 ** (attempts - 1))
        return delay * random.uniform(0.5, 1.0)

    def _log_outcome(self, alert_id: str, channel: str, state: dict[str, Any]) -> None:
        for result in (state.get("targets") or {}).values():
            log.debug("alert %s channel %s: %s -> %s (%s)", alert_id, channel, result.get("url"),
                      result.get("status"), result.get("answer"))
        if state["status"] == "sent":
            log.info("alert %s channel %s: sent (attempt %d)", alert_id, channel, state["attempts"])
        elif state["status"] == "retrying":
            log.warning("alert %s channel %s: attempt %d failed, retry in %.1fs: %s", alert_id, channel,
                        state["attempts"], state["next_at"] - state["last_at"], state["error"])
        else:
            log.error("alert %s channel %s: gave up after %d attempt(s): %s", alert_id, channel,
                      state["attempts"], state["error"])

    async def _dead_letter(self, alert_id: str, channel: str, error: str, attempts: int) -> None:
        await self.stream.publish_dead({"alert_id": alert_id, "channel": channel, "error": error,
                                        "attempts": attempts, "at": _iso(self.clock())})

    async def why_not_retryable(self, alert_id: str) -> str:
        """Why `alert_id` cannot be sent again ("" when it can): unknown, or no channel of it gave up."""
        if await self.history.alert(alert_id) is None:
            return f"no alert {alert_id} (monitor alerts list shows the known ids)"
        states = await self.history.deliveries(alert_id)
        if any(s.get("status") == "dead" and c in self.channels for c, s in states.items()):
            return ""
        gone = [c for c, s in states.items() if s.get("status") == "dead"]
        status = ", ".join(f"{c}: {s.get('status', '?')}" for c, s in states.items()) or "no deliveries recorded"
        if gone:
            return (f"alert {alert_id}: the channels that gave up ({', '.join(gone)}) are no longer in the "
                    f"configuration; nothing to retry ({status})")
        return f"alert {alert_id}: no channel gave up on it, nothing to retry ({status})"

    async def retry_dead(self, alert_id: str) -> bool:
        """Queue again every channel of `alert_id` that gave up; URLs that already accepted it are not resent."""
        found = False
        for channel, state in (await self.history.deliveries(alert_id)).items():
            if state.get("status") != "dead" or channel not in self.channels:
                continue
            now = self.clock()
            new = {**state, "status": "queued", "attempts": 0, "first_at": now, "error": "",
                   "retried_at": now}
            async with self.redis.pipeline(transaction=True) as pipe:
                self.history.queue_delivery(pipe, alert_id, channel, new)
                pipe.zadd(self.ak.due(channel), {alert_id: now})
                await pipe.execute()
            log.info("alert %s channel %s: queued again by request", alert_id, channel)
            found = True
        return found

    # ---- digests and quiet hours ----

    async def flush_due_digests(self, now: float | None = None) -> int:
        """Turn every channel's due held alerts into one digest each and queue it. Returns digests queued.
        The scheduler calls this every minute; it is safe to call from several instances at once."""
        now = self.clock() if now is None else now
        for channel in self.channels:
            await self._take_digest(keys=[self.ak.held(channel), self.ak.held_due(channel), self.ak.digest_seq,
                                          self.ak.digests_open],
                                    args=[now, channel, self.ak.digest_items("")])
        queued = 0
        for entry in await self.redis.smembers(self.ak.digests_open):
            channel, _, digest_id = entry.partition("\t")
            queued += await self._queue_digest(channel, digest_id, entry, now)
        return queued

    async def _queue_digest(self, channel: str, digest_id: str, entry: str, now: float) -> int:
        """Store the digest alert, mark its items, queue it for its channel: one transaction (re-run if it died)."""
        items = await self.redis.lrange(self.ak.digest_items(digest_id), 0, -1)
        alert_id = f"d-{digest_id}"
        digest = Alert(id=alert_id, rule_id="", story_id="", article={},
                       match={"rule_title": f"Digest for {channel}", "severity": "info", "channels": [channel]},
                       kind="digest", changes={"items": items}, created_at=_iso(now))
        state = {"status": "queued", "attempts": 0, "first_at": now, "items": len(items)}
        async with self.redis.pipeline(transaction=True) as pipe:
            self.history.write_alert(pipe, digest, base_id=alert_id, now=now)
            pipe.hset(self.ak.alert(alert_id), "published", "1")
            pipe.zrem(self.ak.unpublished, alert_id)
            self.history.queue_delivery(pipe, alert_id, channel, state)
            pipe.zadd(self.ak.due(channel), {alert_id: min(now, self.clock())}, nx=True)  # due at once
            for item_id in items:
                self.history.queue_delivery(pipe, item_id, channel, {"status": "digested", "digest": alert_id,
                                                                     "at": now})
            pipe.delete(self.ak.digest_items(digest_id))
            pipe.srem(self.ak.digests_open, entry)
            await pipe.execute()
        log.info("digest %s for channel %s: %d alert(s) queued", alert_id, channel, len(items))
        return 1

    # ---- running ----

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> None:
        """Deliver until `stop` is set. burst=True: until the outbox is drained and nothing is due now
        (sends scheduled for later stay scheduled; held digest items wait for flush_due_digests)."""
        if burst:
            await self._run_burst(stop)
            return
        tasks = [asyncio.create_task(self._outbox_loop(stop), name="alerts-outbox")]
        tasks += [asyncio.create_task(self._channel_loop(name, stop), name=f"alerts-{name}")
                  for name in self.channels]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _outbox_loop(self, stop: asyncio.Event) -> None:
        """Route outbox messages; a Redis outage pauses this loop only (it must not cancel a channel loop that is
        recording a send the service already accepted)."""
        last_warning = 0.0
        while not stop.is_set():
            try:
                await self.stream.consume(self.handle, stop=stop)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if time.monotonic() - last_warning > 60:  # once per outage, not on every retry
                    log.warning("alerts outbox: redis unavailable (%s); trying again", exc)
                    last_warning = time.monotonic()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.poll_interval)
                except asyncio.TimeoutError:
                    pass

    async def _run_burst(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.stream.consume(self.handle, stop=stop, burst=True)
            sent = sum(await asyncio.gather(*(self._drain(name) for name in self.channels)))
            if sent == 0 and await self.stream.pending_count() == 0 and not await self._outbox_has_new():
                return

    async def _drain(self, channel: str) -> int:
        total = 0
        while n := await self.send_due(channel):
            total += n
        return total

    async def _outbox_has_new(self) -> bool:
        lag = await self.stream.lag()
        return bool(lag)

    async def _channel_loop(self, channel: str, stop: asyncio.Event) -> None:
        """One loop per channel, so a slow or failing service only ever delays its own channel."""
        redis_down = False
        wake = self._wake.setdefault(channel, asyncio.Event())
        while not stop.is_set():
            wake.clear()
            try:
                sent = await self.send_due(channel)
                if redis_down:
                    log.info("channel %s: redis available again", channel)
                    redis_down = False
                if sent:
                    continue
            except (RedisConnectionError, RedisTimeoutError) as exc:  # Redis away for a moment: keep the loop
                if not redis_down:  # once per outage, not on every poll
                    log.warning("channel %s: redis unavailable (%s); trying again", channel, exc)
                redis_down = True
            await _first_of(stop, wake, timeout=self.settings.poll_interval)

    async def due_count(self, channel: str) -> int:
        """Sends waiting for this channel (first tries and retries, due now or later)."""
        return int(await self.redis.zcard(self.ak.due(channel)))


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    """Return when any of `events` is set or `timeout` passes."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
