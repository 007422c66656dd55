"""Pacing: held alerts (a channel's digest window, its quiet hours) turned into one digest per channel when due, and
the backoff between a failed send and its retry. (The throttle gate is part of routing's one script.)"""

from __future__ import annotations

import logging
import random
from typing import Any

from ..models import Alert
from ..settings import AlertSettings
from ..store.alerts import AlertStore
from .channelset import ChannelSet
from .routing import iso

log = logging.getLogger(__name__)


def backoff(settings: AlertSettings, attempts: int) -> float:
    """Exponential, capped, with jitter (half to full delay) so retries of many alerts spread out."""
    delay = min(settings.retry_max_delay, settings.retry_base * 2 ** (attempts - 1))
    return delay * random.uniform(0.5, 1.0)


class Digests:
    """Digest alerts made from each channel's held list; safe to run from several instances at once."""

    def __init__(self, store: AlertStore, channels: ChannelSet, *, clock: Any) -> None:
        self.store = store
        self.channels = channels
        self.clock = clock

    async def flush_due(self, now: float | None = None) -> int:
        """Turn every channel's due held alerts into one digest each and queue it. Returns digests queued."""
        now = self.clock() if now is None else now
        for channel in self.channels:
            await self.store.take_digest(channel, now=now)
        queued = 0
        for channel, digest_id, entry in await self.store.open_digests():
            queued += await self._queue(channel, digest_id, entry, now)
        return queued

    async def _queue(self, channel: str, digest_id: str, entry: str, now: float) -> int:
        """Store the digest alert, mark its items, queue it for its channel: one transaction (re-run if it died)."""
        items = await self.store.digest_items(digest_id)
        alert_id = f"d-{digest_id}"
        digest = Alert(id=alert_id, rule_id="", story_id="", article={},
                       match={"rule_title": f"Digest for {channel}", "severity": "info", "channels": [channel]},
                       kind="digest", changes={"items": items}, created_at=iso(now))
        state = {"status": "queued", "attempts": 0, "first_at": now, "items": len(items)}
        await self.store.queue_digest(digest, channel, digest_id=digest_id, entry=entry, items=items, state=state,
                                      now=now, due=min(now, self.clock()))
        log.info("digest %s for channel %s: %d alert(s) queued", alert_id, channel, len(items))
        return 1
