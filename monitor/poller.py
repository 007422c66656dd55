"""Polling, for `run` and `run --once` alike: claim sources, poll each within the instance's slots, hand back.

`run` claims the sources that are due before the next tick at every tick (`claim_due`, leased so that a dead
instance's claim runs out) and starts each poll at its due time;
`run --once` claims every configured source at once (`poll_now`). Either way a claimed source is polled by
`Pipeline.poll_source` under one semaphore of `pipeline.feed_concurrency` slots, and a poll that fails unexpectedly
is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable

from .models import Feed
from .redact import redact_url

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)


class Poller:
    """The sources this instance is polling now, and the slots they share."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.slots = asyncio.Semaphore(pipeline.config.pipeline.feed_concurrency)
        self.in_flight: set[asyncio.Task[Any]] = set()  # polls started by claim_due, not finished yet
        self.polling: set[str] = set()  # sources leased by this instance whose poll has not finished

    async def claim_due(self, *, now: float) -> list[tuple[Feed, float]]:
        """Claim (lease) up to the free part of `pipeline.claim_batch` sources due before the next tick, each with
        the time it is due. Raises StateLost and Redis errors: the scheduler's tick decides what they mean."""
        p = self.pipeline.config.pipeline
        free = max(0, p.claim_batch - len(self.in_flight))
        if not free:
            return []
        due = await self.pipeline.feed_store.claim_due_at(now=now, ahead=p.tick, limit=free, lease=p.lease)
        return [(self.pipeline.feeds[feed_id], at) for feed_id, at in due if feed_id in self.pipeline.feeds]

    def start(self, feed: Feed, at: float = 0.0) -> None:
        """Poll `feed` in the background (`run`) once its due time `at` has come; `in_flight` holds the task until
        it ends. On time, not at the tick that claimed it: the polls of one tick do not start (and bring their new
        entries) all at once."""
        self.polling.add(feed.id)  # leased: handed back on shutdown even while it waits (or before it began)
        self._spawn(self._poll_at(feed, at))

    async def _poll_at(self, feed: Feed, at: float) -> int:
        if (delay := at - time.time()) > 0:
            await asyncio.sleep(delay)
        return await self.poll(feed)

    async def poll_now(self, feeds: list[Feed] | None = None) -> int:
        """Claim the given (default: every configured) sources regardless of their schedule, poll them, wait for
        all (`run --once`). Returns how many new entries were published."""
        feeds = list(self.pipeline.feeds.values()) if feeds is None else feeds
        claimed = set(await self.pipeline.feed_store.claim([f.id for f in feeds], now=time.time(),
                                                           lease=self.pipeline.config.pipeline.lease))
        return sum(await asyncio.gather(*(self.poll(f) for f in feeds if f.id in claimed)))

    async def poll(self, feed: Feed) -> int:
        """One claimed source, within the slots; the new entries' count (0 when the poll failed)."""
        self.polling.add(feed.id)  # stays there only if the poll is cancelled (shutdown): see release()
        async with self.slots:
            try:
                new = await self.pipeline.poll_source(feed)
            except Exception as exc:  # noqa: BLE001 - one source must not take the others down
                log.error("feed %s (%s): poll failed unexpectedly: %s: %s", feed.id, redact_url(feed.url),
                          type(exc).__name__, exc, exc_info=True)
                new = 0
        self.polling.discard(feed.id)
        return new

    async def release(self) -> None:
        """On shutdown: sources whose poll was cancelled become due again now, for any instance."""
        if not self.polling:
            return
        try:
            await asyncio.wait_for(self.pipeline.feed_store.release(sorted(self.polling), now=time.time()), 5.0)
            log.info("%d feeds whose polls were cancelled are due again now: %s", len(self.polling),
                     ", ".join(sorted(self.polling)))
        except Exception as exc:  # noqa: BLE001 - their leases run out anyway
            log.warning("could not release %d leased feeds (%s); they are due when the lease ends",
                        len(self.polling), exc)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
