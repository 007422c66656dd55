"""Sending: what is due on a channel, claimed with a lease, rendered and sent to each of its URLs, the outcome written.

    channel loop --claim (lease)--> render + apprise per URL --> sent | retry at now+backoff | dead-letter stream

Each URL's send is marked "sending" before and answered right after it, so a crash resends only a URL caught in
mid-send, with the same alert id in the payload for the receiver to drop it. Nothing else resends.

One apprise send has a total deadline: it runs in one of its channel's send processes (forked from the daemon, long
lived), which is killed when the deadline passes and replaced.
apprise's own `timeout=` only stops waiting: the blocking request goes on in its thread, holding the thread and the
socket for as long as a service drips its answer. A killed process takes its request, socket and thread with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import multiprocessing
import threading
from typing import Any

import apprise
import pebble
from apprise.plugins.custom_form import NotifyForm
from apprise.plugins.custom_json import NotifyJSON
from apprise.plugins.custom_xml import NotifyXML
from apprise.plugins.email import NotifyEmail

from .. import metrics
from ..errors import PermanentError
from ..models import Alert
from ..settings import AlertSettings
from ..store.alerts import AlertStore
from ..workers import _worker_init
from .channelset import FORMAT_OF, JSON_FORMATS, Channel, ChannelSet, Target
from .pacing import backoff
from .render import Renderer, alert_document, render_record
from .routing import dead_letter

log = logging.getLogger(__name__)

ALERT_ID_HEADER = "X-Monitor-Alert-Id"  # the idempotency key of a send, on every service that takes headers
ALERT_ID_FIELD = "alert_id"  # ... and in the JSON / form / XML payload of a generic webhook
_FORK = multiprocessing.get_context("fork")  # the child inherits the loaded plugin: nothing is pickled going in


def tag_service(service: Any, alert_id: str) -> None:
    """Put the alert id in what the service sends besides the text: a header, and a webhook payload field."""
    if isinstance(service, (NotifyJSON, NotifyForm, NotifyXML, NotifyEmail)) and isinstance(service.headers, dict):
        service.headers[ALERT_ID_HEADER] = alert_id
    extras = getattr(service, "payload_extras", None)
    if isinstance(service, (NotifyJSON, NotifyForm, NotifyXML)) and isinstance(extras, dict):
        extras.setdefault(ALERT_ID_FIELD, alert_id)


class _Collect(logging.Handler):
    """In the child: keeps what is logged, for the parent to log again (masked) as if it happened there."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _fresh_apprise_pools() -> None:
    """apprise's shared thread pools came through fork without their threads (and their locks maybe held by a
    thread that is not here): the child makes its own on first use."""
    module = importlib.import_module("apprise.apprise")
    for name in ("_shared_executor", "_coordinator_executor"):
        if hasattr(module, name):
            setattr(module, name, None)
            setattr(module, name + "_lock", threading.Lock())


def _notify(ap: Any, alert_id: str, kwargs: dict[str, Any], collect: _Collect) -> dict[str, Any]:
    """In a send process: one apprise notify. Returns what the parent needs (picklable)."""
    for service in ap:
        tag_service(service, alert_id)
    result = ap.notify(**kwargs)
    notes = [e.message for r in result.results for e in r.logs() if e.level in ("WARNING", "ERROR")]
    notes += [e.message for e in result.call_logs() if e.level in ("WARNING", "ERROR")]
    return {"ok": bool(result), "status": result.status.name, "notes": notes, "logs": collect.records}


def _send(ap: Any, alert_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """In a child forked for this one send."""
    _worker_init(name="monitor-send")  # forget the daemon's signal set-up: the kill at the deadline reaches this
    # process only
    collect = _Collect()
    logging.getLogger().handlers[:] = [collect]
    _fresh_apprise_pools()
    return _notify(ap, alert_id, kwargs, collect)


# --- long-lived send processes -------------------------------------------------------------------------------------
# A child forked per send cost ~17 ms of CPU (fork, copy-on-write faults of the daemon's heap, teardown) against
# ~2 ms for the send itself, at 20 alerts/s a third of a core (BENCHMARKS.md, End to end). Each channel has instead
# SEND_SLOTS processes forked once, each making one send at a time; a send past its deadline is killed with its
# process (and socket) as before, and pebble forks a replacement. A channel never has more sends in flight than
# processes (deliver.py's window), so a claimed send never queues for a process while its claim lease runs. What to
# send through is inherited, not pickled: every service is registered, by token, before any send process is forked.
SEND_SLOTS = 2
_SERVICES: dict[str, Any] = {}  # token -> apprise object
_COLLECT = _Collect()
_PRISTINE: dict[int, tuple[Any, Any]] = {}  # id(service) -> its headers and payload extras before any tagging


def register_service(ap: Any) -> str:
    """The token a send process finds `ap` by (it must be registered before the process is forked)."""
    token = f"{id(ap):x}"
    _SERVICES[token] = ap
    return token


def _send_process_init() -> None:
    _worker_init(name="monitor-send")  # as in any worker: the daemon's signals are not ours; inherited objects
    # frozen (no copy)
    logging.getLogger().handlers[:] = [_COLLECT]
    _fresh_apprise_pools()


def _untag(ap: Any) -> None:
    """A process sends many alerts through one service object: each starts from the headers and extras it had."""
    for service in ap:
        headers, extras = getattr(service, "headers", None), getattr(service, "payload_extras", None)
        before = _PRISTINE.setdefault(id(service), (dict(headers) if isinstance(headers, dict) else None,
                                                    dict(extras) if isinstance(extras, dict) else None))
        if before[0] is not None:
            service.headers = dict(before[0])
        if before[1] is not None:
            service.payload_extras = dict(before[1])


def _send_pooled(token: str, alert_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """In a long-lived send process: one send through the registered service."""
    _COLLECT.records = []
    ap = _SERVICES[token]
    _untag(ap)
    return _notify(ap, alert_id, kwargs, _COLLECT)


async def _answer(future: Any, timeout: float) -> dict[str, Any]:
    """{"ok", "status", "notes"} of a send running in a process, which is killed at `timeout` (or on cancel)."""
    try:
        answer = await asyncio.wrap_future(future)
    except concurrent.futures.TimeoutError:
        return {"ok": False, "status": "TIMEOUT", "notes": [f"no answer within {timeout:g}s; the send was stopped"]}
    except pebble.ProcessExpired as exc:
        return {"ok": False, "status": "FAILURE", "notes": [f"send process died (exit code {exc.exitcode})"]}
    except asyncio.CancelledError:
        future.cancel()  # kills the process: shutdown must not leave a send running
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's unexpected error is this send's failure, not the loop's
        return {"ok": False, "status": "FAILURE", "notes": [f"{type(exc).__name__}: {exc}"]}
    for name, level, message in answer.pop("logs"):
        logging.getLogger(name).log(level, "%s", message)  # masked again on the way (logs.add_secrets)
    return answer


async def send_in_child(ap: Any, *, alert_id: str, timeout: float, **kwargs: Any) -> dict[str, Any]:
    """{"ok", "status", "notes"} of one send in a child forked for it, which ends (killed, with its socket) at
    `timeout` seconds. (The daemon uses SendProcesses; this is the one-off form, bench.sends compares them.)"""
    future = pebble.concurrent.process(timeout=timeout, mp_context=_FORK)(_send)(ap, alert_id, kwargs)
    return await _answer(future, timeout)


class SendProcesses:
    """Each channel's long-lived send processes (SEND_SLOTS), started at its first send; `close` stops them."""

    def __init__(self, channels: ChannelSet) -> None:
        self._tokens = {id(t.apprise): register_service(t.apprise)
                        for spec in channels.values() for t in spec.targets if t.apprise is not None}
        self._remote = [name for name, spec in channels.items()
                        if any(t.apprise is not None and not t.local for t in spec.targets)]
        self._pools: dict[str, pebble.ProcessPool] = {}

    def start(self) -> None:
        """Fork the send processes of every channel that sends through a service now, not at its first send: the
        daemon does so at start-up with its workers, when its heap holds no pages it will rewrite (the processes
        live as long as the daemon, and a page the daemon rewrites after their fork stays theirs)."""
        for channel in self._remote:
            self._pool(channel)

    def _pool(self, channel: str) -> pebble.ProcessPool:
        pool = self._pools.get(channel)
        if pool is None or not pool.active:  # `active` forks the processes of a new pool
            pool = self._pools[channel] = pebble.ProcessPool(max_workers=SEND_SLOTS, context=_FORK,
                                                             initializer=_send_process_init)
            pool.active  # noqa: B018 - forks them now
        return pool

    async def send(self, channel: str, ap: Any, *, alert_id: str, timeout: float, **kwargs: Any) -> dict[str, Any]:
        pool = self._pool(channel)
        future = pool.schedule(_send_pooled, args=(self._tokens[id(ap)], alert_id, kwargs), timeout=timeout)
        return await _answer(future, timeout)

    def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.stop()
        for pool in pools:
            pool.join(timeout=5)


# A rule's severity as apprise's notification type: services show warning / failure differently (colour, icon,
# priority), so a critical alert does not look like an informational one.
NOTIFY_TYPE = {"info": apprise.NotifyType.INFO, "low": apprise.NotifyType.INFO, "medium": apprise.NotifyType.INFO,
               "high": apprise.NotifyType.WARNING, "critical": apprise.NotifyType.FAILURE}


def with_alert_id(body: str, alert_id: str, fmt: str) -> str:
    """The alert id as the message's last line: the idempotency key for services whose payload is only text (ntfy,
    Slack, Telegram, mail bodies), so a receiver (person or bot) can drop a repeat after a crash."""
    if fmt == "html":
        return f"{body}\n<p><small>id: {alert_id}</small></p>"
    return f"{body}\n\nid: {alert_id}"


class Sender:
    """Sends what is due on each channel: claims with a lease, renders per format, one send per URL, records."""

    def __init__(self, store: AlertStore, channels: ChannelSet, settings: AlertSettings, *, renderer: Renderer,
                 clock: Any) -> None:
        self.store = store
        self.channels = channels
        self.settings = settings
        self.renderer = renderer
        self.clock = clock
        # a claim outlives the sends it covers: a channel's URLs are sent one after another (one process each time)
        most_urls = max((len(spec.targets) for spec in channels.values()), default=1)
        self.lease = settings.send_timeout * (max(most_urls, 1) + 1) + 10
        self.processes = SendProcesses(channels)

    def close(self) -> None:
        """Stop the send processes (sends in flight are killed: their claims run out and they are sent again)."""
        self.processes.close()

    async def claim(self, channel: str, *, limit: int) -> list[str]:
        """Claim (lease) up to `limit` due sends of one channel: the alert ids to `send_one`."""
        return await self.store.claim_due(channel, now=self.clock(), lease=self.lease, limit=limit) if limit > 0 else []

    async def send_due(self, channel: str, *, limit: int = SEND_SLOTS) -> int:
        """Claim and send up to `limit` due sends of one channel, concurrently. Returns how many were claimed."""
        ids = await self.claim(channel, limit=limit)
        if ids:
            await asyncio.gather(*(self.send_one(channel, alert_id) for alert_id in ids))
        return len(ids)

    async def send_one(self, channel: str, alert_id: str) -> None:
        state = await self.store.delivery(alert_id, channel)
        alert = await self.store.alert(alert_id)
        spec = self.channels.get(channel)
        if state is None or state.get("status") in ("sent", "dead") or alert is None or spec is None:
            # already finished (a crash after the record, before the ZREM) or nothing left to send
            await self.store.drop_due(channel, alert_id)
            return
        try:
            if not spec.targets:
                raise PermanentError(f"channel {channel!r} has no urls")
            messages = await self.compose(alert, spec, state)
        except PermanentError as exc:
            await self._finish(alert_id, channel, state, {}, error=self.channels.scrub(str(exc)), permanent=True)
            return
        inflight = await self.store.inflight(alert_id, channel)
        # a URL whose answer was written just before a crash is done; one left "sending" is sent again (same id)
        outcome = {i: r for i, r in inflight.items() if r.get("status") == "sent"}
        done = {**(state.get("targets") or {}), **outcome}
        pending = [t for t in spec.targets if done.get(str(t.index), {}).get("status") != "sent"]
        for target in pending:
            if inflight.get(str(target.index), {}).get("status") == "sending":
                log.warning("alert %s channel %s: %s: an earlier attempt stopped during the send (crash); sending "
                            "again with the same alert id, which the receiver can use to drop a repeat",
                            alert_id, channel, target.privacy)
        # one URL after another: a channel's sends in flight never outnumber its send processes (SEND_SLOTS)
        results = [await self._send_marked(alert_id, channel, t, messages[t.fmt]) for t in pending]
        outcome.update({str(t.index): r for t, r in zip(pending, results)})
        failed = [f"{r['url']}: {r['answer']}" for r in outcome.values() if r["status"] != "sent"]
        await self._finish(alert_id, channel, state, outcome, error="; ".join(failed), permanent=False)

    async def compose(self, alert: Alert, spec: Channel, state: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
        """(title, body, severity) per format this channel's URLs need."""
        severity = str((alert.match or {}).get("severity") or "info")
        if alert.kind == "operator":
            return {fmt: self._operator_message(alert, fmt) + (severity,) for fmt in spec.formats}
        sources = await self.store.sources(await self.store.base_of(alert.id)) or list(alert.sources)
        items = await self._digest_items(alert) if alert.kind == "digest" else None
        overrides = spec.settings.templates
        out: dict[str, tuple[str, str, str]] = {}
        for fmt in spec.formats:
            text_fmt = "text" if fmt in JSON_FORMATS else fmt
            if items is not None:
                title, body = self.renderer.render_digest(alert, items, fmt=text_fmt, channel=spec.name,
                                                          overrides=overrides)
            else:
                title, body = self.renderer.render(alert, fmt=text_fmt, sources=sources, overrides=overrides,
                                                   suppressed=int(state.get("suppressed") or 0))
            if fmt in FORMAT_OF:
                body = with_alert_id(body, alert.id, fmt)
            elif fmt == "json":
                body = render_record(alert, title=title, body=body, sources=sources,
                                     items=[a for a, _ in items] if items is not None else None)
            elif fmt == "document":
                body = alert_document(alert, title=title, sources=sources,
                                      items=[a for a, _ in items] if items is not None else None)
            out[fmt] = (title, body, severity)
        return out

    @staticmethod
    def _operator_message(alert: Alert, fmt: str) -> tuple[str, str]:
        """An operator alert, plainly: its title and its body (no rule templates), the alert id last."""
        title, body = str(alert.article.get("title") or ""), str(alert.article.get("text") or "")
        if fmt == "json":
            return title, render_record(alert, title=title, body=body, sources=[])
        if fmt == "document":
            return title, alert_document(alert, title=title, sources=[], body=body)
        if fmt == "html":
            from markupsafe import escape

            body = str(escape(body)).replace("\n", "<br>\n")
        return title, with_alert_id(body, alert.id, fmt)

    async def _digest_items(self, digest: Alert) -> list[tuple[Alert, list[tuple[str, str]]]]:
        out = []
        for item_id in (digest.changes or {}).get("items", []):
            item = await self.store.alert(item_id)
            if item is not None:
                out.append((item, await self.store.sources(await self.store.base_of(item_id))))
        return out

    async def _send_marked(self, alert_id: str, channel: str, target: Target,
                           message: tuple[str, str, str]) -> dict[str, Any]:
        """One URL's send between two marks: "sending" before it, its answer right after it. A crash then resends
        only URLs caught in mid-send (marked "sending"), not those that answered while others were still going."""
        await self.store.mark_sending(alert_id, channel, target.index, at=round(self.clock(), 3))
        result = await self._send_target(target, message, alert_id, channel)
        await self.store.mark_answered(alert_id, channel, target.index, result)  # Redis away: _finish waits
        return result

    async def _send_target(self, target: Target, message: tuple[str, str, str], alert_id: str,
                           channel: str) -> dict[str, Any]:
        """One URL: apprise's answer as {"url", "status": sent|failed, "answer", "at"} (secrets scrubbed).

        A service's send runs in a child process killed at send_timeout; our own console:// and jsonl:// write
        locally and run here."""
        at = round(self.clock(), 3)
        if target.apprise is None:
            return {"url": target.privacy, "status": "failed", "answer": target.error, "at": at, "permanent": True}
        title, body, severity = message
        kwargs = {"body": body, "title": title, "body_format": "text" if target.fmt in JSON_FORMATS else target.fmt,
                  "notify_type": NOTIFY_TYPE.get(severity, apprise.NotifyType.INFO)}
        if target.local:
            result = await target.apprise.async_notify(**kwargs, timeout=self.settings.send_timeout)
            ok, answer = bool(result), result.status.name
        else:
            sent = await self.processes.send(channel, target.apprise, alert_id=alert_id,
                                             timeout=self.settings.send_timeout, **kwargs)
            ok, answer = sent["ok"], sent["status"]
            if not ok and sent["notes"]:
                answer = f"{answer}: {' | '.join(sent['notes'])[-400:]}"
        return {"url": target.privacy, "status": "sent" if ok else "failed", "answer": self.channels.scrub(answer),
                "at": at}

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
            new.update(status="retrying", error=error, next_at=now + backoff(self.settings, attempts))
        # shielded: the send happened, so its outcome is written even if this loop is being cancelled (shutdown)
        await asyncio.shield(self.store.record_outcome(alert_id, channel, new, patience=self.lease / 2))
        _log_outcome(alert_id, channel, new)
        metrics.deliveries.labels(channel, "sent" if new["status"] == "sent" else "failed").inc()
        if new["status"] == "dead":
            metrics.deliveries.labels(channel, "dead").inc()
            await dead_letter(self.store, alert_id, channel, error, attempts, self.clock())

    # ---- manual retry (monitor alerts retry) ----

    async def why_not_retryable(self, alert_id: str) -> str:
        """Why `alert_id` cannot be sent again ("" when it can): unknown, or no channel of it gave up."""
        if await self.store.alert(alert_id) is None:
            return f"no alert {alert_id} (monitor alerts list shows the known ids)"
        states = await self.store.deliveries(alert_id)
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
        for channel, state in (await self.store.deliveries(alert_id)).items():
            if state.get("status") != "dead" or channel not in self.channels:
                continue
            now = self.clock()
            new = {**state, "status": "queued", "attempts": 0, "first_at": now, "error": "", "retried_at": now}
            await self.store.requeue(alert_id, channel, new, now=now)
            log.info("alert %s channel %s: queued again by request", alert_id, channel)
            found = True
        return found


def _log_outcome(alert_id: str, channel: str, state: dict[str, Any]) -> None:
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
