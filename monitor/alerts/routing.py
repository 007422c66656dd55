"""Routing: which channels an alert goes to, and for each whether it is sent now, held (digest, quiet hours) or
throttled. One delivery record per (alert, channel) makes routing the same alert again a no-op.

    outbox message -> channels (rule's names and tags, else alerts.default_channels)
      -> held (the channel's digest / quiet hours: its held list) | throttled (counted) | queued (its due ZSET)
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable

from .. import metrics
from ..models import Alert
from ..settings import AlertSettings
from ..store.alerts import AlertStore
from .channelset import ChannelSet

log = logging.getLogger(__name__)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


async def dead_letter(store: AlertStore, alert_id: str, channel: str, error: str, attempts: int, now: float) -> None:
    """A channel that gave up on an alert, on the outbox's dead-letter stream (`monitor alerts list --dead`)."""
    await store.dead_letter({"alert_id": alert_id, "channel": channel, "error": error, "attempts": attempts,
                             "at": iso(now)})


class Router:
    """Records each alert for its channels; `on_queued(channel)` is told of every send queued for now."""

    def __init__(self, store: AlertStore, channels: ChannelSet, settings: AlertSettings, *, clock: Any,
                 on_queued: Callable[[str], None] = lambda channel: None) -> None:
        self.store = store
        self.channels = channels
        self.settings = settings
        self.clock = clock
        self.on_queued = on_queued

    def channels_of(self, alert: Alert) -> list[str]:
        names = list((alert.match or {}).get("channels") or []) or self.settings.default_channels
        return self.channels.resolve(names)

    async def route_alert(self, alert: Alert) -> None:
        for channel in self.channels_of(alert):
            if await self.route(alert, channel) == "queued":
                self.on_queued(channel)

    async def route(self, alert: Alert, channel: str) -> str:
        """Record `alert` for `channel`: "queued", "held", "throttled", "unknown" or "exists" (already routed).

        Operator alerts are queued at once: the channel's digest, quiet hours and throttle are for rule alerts."""
        now = self.clock()
        spec = self.channels.get(channel)
        if spec is None:
            await self._unknown_channel(alert, channel)
            return "unknown"
        operator = alert.kind == "operator"
        held_due, reason = (None, "") if operator else spec.hold_until(now)
        if held_due is not None:
            done = await self.store.route_hold(alert.id, channel, now=now, due=held_due, reason=reason)
            if done:
                log.info("alert %s channel %s: held for %s until %s", alert.id, channel, reason, iso(held_due))
            return "held" if done else "exists"
        code, count = await self.store.route_send(alert.id, channel, alert.rule_id, now=now,
                                                  window=0.0 if operator else spec.throttle)
        if code == 0:
            log.info("alert %s channel %s: throttled (%d held back in this window)", alert.id, channel, count)
            return "throttled"
        return "queued" if code == 1 else "exists"

    async def _unknown_channel(self, alert: Alert, channel: str) -> None:
        if await self.store.delivery(alert.id, channel) is not None:
            return
        error = f"unknown channel {channel!r} (not in the configuration's channels)"
        await self.store.set_delivery(alert.id, channel, {"status": "dead", "error": error, "attempts": 0})
        await dead_letter(self.store, alert.id, channel, error, 0, self.clock())
        # rules are checked against the channels at load, so this is an alert written before a channel was removed
        log.error("alert %s channel %s: %s; dead-lettered", alert.id, channel, error)
        metrics.deliveries.labels(channel, "dead").inc()
