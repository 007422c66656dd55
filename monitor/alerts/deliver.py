"""The deliverer: takes alerts from the outbox stream and sends each to its channels with apprise, exactly once.

A thin loop over its parts, each with one concern, sharing one ChannelSet built once from the configuration and
one AlertStore (the Redis state):

    outbox stream --handle--> routing.Router: held (digest / quiet hours) | throttled | due ZSET of the channel
    channel loop  --------->  sending.Sender: claim (lease), render, apprise per URL, sent | retry | dead letter
    scheduler (every minute) --> pacing.Digests: held lists that are due become one digest per channel

Remaining window: a crash after a service accepted a message and before that URL's answer is written (each URL is
marked "sending" before and answered right after its send) sends it again to that URL once the claim lease runs
out, with the same alert id in the payload for the receiver to drop it. Nothing else resends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Mapping

from ..errors import PermanentError, StoreUnavailable
from ..models import Alert
from ..settings import AlertSettings, ChannelSettings
from ..store import Keys
from ..store.alerts import AlertStore
from ..streams import Message
from .channelset import ChannelSet
from .history import AlertHistory
from .pacing import Digests
from .render import Renderer
from .routing import Router
from .sending import SEND_SLOTS, Sender

log = logging.getLogger(__name__)

# outbox messages routed at once by the daemon: routing one costs a few Redis round trips, each an event-loop turn,
# so one at a time could not keep up with 20 alerts/s once the loop was busy (bench.endtoend, BENCHMARKS.md)
ROUTE_SLOTS = 16


class Deliverer:
    """Consumes the outbox stream and delivers per channel with retries, throttle, digests and quiet hours.

    `store` is the process's one AlertStore (shared with the outbox: build it with this deliverer's consumer and
    claim_idle); without it the deliverer makes its own."""

    def __init__(self, redis: Any, keys: Keys, *, settings: AlertSettings,
                 channels: Mapping[str, ChannelSettings], consumer: str, clock: Any = time.time,
                 environ: Mapping[str, str] | None = None, data_dir: str | None = None,
                 store: AlertStore | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store or AlertStore(redis, keys, retention=settings.history_retention, consumer=consumer,
                                         claim_idle=settings.claim_idle)
        self.stream = self.store.stream
        self.history = AlertHistory(redis, keys, store=self.store)
        self.channels = ChannelSet.build(channels, data_dir=data_dir, environ=environ)  # once: URLs, schedules
        # set when this process queues a send, so the channel's loop sends at once instead of at its next poll
        self._wake: dict[str, asyncio.Event] = {}
        self.router = Router(self.store, self.channels, settings, clock=clock, on_queued=self._queued)
        renderer = Renderer(templates_dir=settings.templates_dir)
        self.sender = Sender(self.store, self.channels, settings, renderer=renderer, clock=clock)
        self.digests = Digests(self.store, self.channels, clock=clock)
        self.lease = self.sender.lease

    def _queued(self, channel: str) -> None:
        self._wake.setdefault(channel, asyncio.Event()).set()

    def scrub(self, text: str) -> str:
        return self.channels.scrub(text)

    # ---- the parts, by their public names ----

    async def handle(self, message: Message) -> None:
        """One outbox message: record a delivery per channel (queued, held or throttled). Idempotent."""
        try:
            alert = Alert.from_dict(message.payload)
        except (TypeError, ValueError, KeyError) as exc:
            raise PermanentError(f"outbox message {message.id} is not an alert: {exc}") from None
        await self.router.route_alert(alert)

    async def route(self, alert: Alert, channel: str) -> str:
        return await self.router.route(alert, channel)

    async def send_due(self, channel: str, *, limit: int = SEND_SLOTS) -> int:
        return await self.sender.send_due(channel, limit=limit)

    def close(self) -> None:
        """Stop the send processes: `run` does when it ends; whoever sends through `send_due` closes (again is
        harmless; a later send forks new ones)."""
        self.sender.close()

    async def flush_due_digests(self, now: float | None = None) -> int:
        """Turn every channel's due held alerts into one digest each and queue it. Returns digests queued.
        The scheduler calls this every minute; it is safe to call from several instances at once."""
        return await self.digests.flush_due(now)

    async def why_not_retryable(self, alert_id: str) -> str:
        return await self.sender.why_not_retryable(alert_id)

    async def retry_dead(self, alert_id: str) -> bool:
        return await self.sender.retry_dead(alert_id)

    async def due_count(self, channel: str) -> int:
        """Sends waiting for this channel (first tries and retries, due now or later)."""
        return await self.store.due_count(channel)

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
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()

    async def _outbox_loop(self, stop: asyncio.Event) -> None:
        """Route outbox messages; a Redis outage pauses this loop only (it must not cancel a channel loop that is
        recording a send the service already accepted)."""
        last_warning = 0.0
        while not stop.is_set():
            try:
                # in any order, as with several instances: throttle, digest and once-per-channel are atomic in Redis
                await self.stream.consume(self.handle, stop=stop, concurrency=ROUTE_SLOTS, count=ROUTE_SLOTS)
            except StoreUnavailable as exc:
                if time.monotonic() - last_warning > 60:  # once per outage, not on every retry
                    log.warning("alerts outbox: redis unavailable (%s); trying again", exc)
                    last_warning = time.monotonic()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.poll_interval)
                except asyncio.TimeoutError:
                    pass

    async def _run_burst(self, stop: asyncio.Event) -> None:
        try:
            await self._burst(stop)
        finally:
            self.close()

    async def _burst(self, stop: asyncio.Event) -> None:
        """In stream order, one message at a time (run --once, tests): throttles keep the first alert."""
        while not stop.is_set():
            await self.stream.consume(self.handle, stop=stop, burst=True)
            sent = sum(await asyncio.gather(*(self._drain(name) for name in self.channels)))
            if sent == 0 and await self.stream.pending_count() == 0 and not await self.stream.lag():
                return

    async def _drain(self, channel: str) -> int:
        total = 0
        while n := await self.send_due(channel):
            total += n
        return total

    async def _channel_loop(self, channel: str, stop: asyncio.Event) -> None:
        """One loop per channel, so a slow or failing service only ever delays its own channel.

        Up to SEND_SLOTS sends run at once, and a slot is refilled as soon as its send ends (a sliding window): an
        alert routed while a slow send runs is claimed at once, not after the slowest of a batch. On stop the
        sends in flight finish (a service may already have accepted them); on cancel they are abandoned."""
        redis_down = False
        wake = self._wake.setdefault(channel, asyncio.Event())
        running: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    ids = await self.sender.claim(channel, limit=SEND_SLOTS - len(running))
                    if redis_down:
                        log.info("channel %s: redis available again", channel)
                        redis_down = False
                    for alert_id in ids:
                        task = asyncio.create_task(self._send(channel, alert_id))
                        running.add(task)
                        task.add_done_callback(running.discard)
                    if ids and len(running) < SEND_SLOTS:
                        continue  # more may be due
                except StoreUnavailable as exc:  # Redis away for a moment: keep the loop
                    if not redis_down:  # once per outage, not on every poll
                        log.warning("channel %s: redis unavailable (%s); trying again", channel, exc)
                    redis_down = True
                await _first_of(stop, wake, timeout=self.settings.poll_interval, tasks=running)
        except asyncio.CancelledError:
            # cancelled, not stopped (the daemon's shutdown grace ran out): the sends in flight are abandoned now,
            # their processes killed, and sent again (same alert id) when their claim leases end
            for task in list(running):
                task.cancel()
            raise
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _send(self, channel: str, alert_id: str) -> None:
        """One claimed send; what fails here is retried when its claim lease ends, so it is logged, not raised."""
        try:
            await self.sender.send_one(channel, alert_id)
        except StoreUnavailable as exc:
            log.warning("channel %s: alert %s: redis unavailable while sending (%s); retried when its claim lease "
                        "ends", channel, alert_id, exc)
        except Exception as exc:  # noqa: BLE001 - one send must not end the channel's loop
            log.error("channel %s: alert %s: send failed unexpectedly: %s: %s; retried when its claim lease ends",
                      channel, alert_id, type(exc).__name__, exc, exc_info=True)


async def _first_of(*events: asyncio.Event, timeout: float, tasks: set[asyncio.Task[None]] | None = None) -> None:
    """Return when any of `events` is set, one of `tasks` ends, or `timeout` passes (the tasks go on running)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters + list(tasks or ()), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
