"""Redis lost monitor's state (restarted without persistence, flushed): notice it, rebuild the schedule, go quiet.

Two ways to notice: while running, the schedule's marker key is gone at the next tick (`FeedStore.claim_due` raises
StateLost); at start, Redis holds no marker but `data_dir/redis-state.json` says this Redis prefix held our state
before. Either way every configured source is scheduled again at once, and each feed's first poll is a baseline:
entries published before the last moment the state was known intact (less one interval) are marked seen without
alerting.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import metrics
from .feedstate import StateLost
from .health import Liveness, iso

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

STATE_FILE = "redis-state.json"  # in data_dir: when this instance last saw its Redis state intact, per prefix
STATE_FILE_EVERY = 60.0  # seconds between updates of it


class StateWatch:
    def __init__(self, pipeline: Pipeline, live: Liveness) -> None:
        self.pipeline = pipeline
        self.live = live
        self.path = Path(pipeline.config.data_dir) / STATE_FILE
        self.prefix = pipeline.config.redis.prefix
        self._noted = 0.0  # when the file was last written

    def note_intact(self, *, every: float = STATE_FILE_EVERY) -> None:
        """Remember (in data_dir, if there is one) that this Redis prefix held our state now; at most every
        `every` seconds."""
        now = time.time()
        if now - self._noted < every:
            return
        self._noted = now
        if not self.path.parent.is_dir():
            return
        try:
            known = json.loads(self.path.read_text()) if self.path.exists() else {}
            known[self.prefix] = {"intact_at": now}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(known))
            tmp.replace(self.path)
        except (OSError, ValueError) as exc:
            log.debug("cannot note the Redis state in %s: %s", self.path, exc)

    async def check_at_start(self, marker_was_missing: bool) -> None:
        """A Redis without our marker while this data_dir says it had our state: lost while no instance ran."""
        try:
            known = json.loads(self.path.read_text()).get(self.prefix) or {}
            since = float(known["intact_at"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            since = None
        if marker_was_missing and since is not None:
            feeds = list(self.pipeline.feeds.values())
            await self.pipeline.feed_store.mark_baseline(feeds, since=since, now=time.time())
            metrics.state_losses.inc()
            log.error("Redis holds none of monitor's state, which it held at %s (%s): lost while no instance ran "
                      "(restarted without persistence or flushed). Entries seen before are unknown: each feed's "
                      "first poll marks those published before then (less its interval) seen without alerting",
                      iso(since), self.path)
        self.note_intact(every=0)

    async def rebuild(self, lost: StateLost) -> None:
        """Redis came back without our data: schedule every configured source again at once (first polls quiet)."""
        if not self.live.redis_ok:
            self.live.redis_reachable()
        now = time.time()
        since = lost.intact_at or now
        try:
            won = await self.pipeline.feed_store.rebuild(list(self.pipeline.feeds.values()), now=now, since=since)
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            self.live.rebuild_error = f"{type(exc).__name__}: {exc}"
            log.error("Redis lost monitor's state and rebuilding the schedule failed (%s); retrying at the next "
                      "tick", self.live.rebuild_error)
            return
        self.live.rebuild_error = None
        if won:
            metrics.state_losses.inc()
            log.error("Redis lost monitor's state (the schedule's marker is gone: restarted without persistence or "
                      "flushed); %d sources scheduled again from the configuration. Entries seen before are "
                      "unknown: each feed's first poll marks those published before %s (less its interval) "
                      "seen without alerting; entries and alerts that were queued in Redis are lost",
                      len(self.pipeline.feeds), iso(since))
