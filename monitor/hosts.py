"""Per-host politeness shared by every instance through Redis: a leased slot per request, and Retry-After holds.

`fetch.per_host` requests to one host at once across all instances (feed polls, pages and robots.txt alike): each
request takes a slot in the host's sorted set, scored with the end of its lease, and gives it back when it ends. The
claim is one Lua script (store/scripts/host_slots.lua, called through store/hosts.py) that first drops slots whose
lease ran out, so an instance killed in the middle of a request keeps its slot for one lease at most. A 429, or a
503 with Retry-After, holds the host back for every instance until the time the server gave (capped at
`fetch.max_retry_after`).

Redis unreachable: requests go ahead under the instance's own per-host limit (the Fetcher's semaphore), logged once a
minute; politeness falls back to per instance rather than fetching stopping.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from .errors import StoreError
from .store import Keys
from .store.hosts import FULL, HELD, TAKEN, HostSlots

log = logging.getLogger(__name__)

LEASE_MARGIN = 10.0  # seconds a slot's lease outlasts the request's own deadline (fetch.timeout)
POLL_MIN, POLL_MAX = 0.01, 0.2  # seconds between looks while a host's slots are all taken (by other instances)
DOWN_LOG_EVERY = 60.0


class SharedHosts:
    """`await acquire(host)` -> (token, 0.0) with a slot taken, (None, seconds) if the host is held back, or
    (None, 0.0) when Redis does not answer; `release(host, token)`; `hold(host, seconds)`.

    Within one instance only one waiter per host polls Redis (a local lock); the others queue behind it, so a busy
    host costs at most one script call per POLL_MAX per instance while it stays full.
    """

    def __init__(self, redis: Any, keys: Keys, *, per_host: int, lease: float) -> None:
        self.slots = HostSlots(redis, keys)
        self.per_host = per_host
        self.lease_ms = int(lease * 1000)  # a slot not given back in time is free again after this
        self._turns: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}  # callers of acquire per host, queued or polling
        self._released: dict[str, asyncio.Event] = {}
        self._down_logged = 0.0

    async def acquire(self, host: str) -> tuple[str | None, float]:
        turn = self._turns.setdefault(host, asyncio.Lock())
        self._waiting[host] = self._waiting.get(host, 0) + 1
        try:
            async with turn:
                return await self._take(host)
        finally:
            self._waiting[host] -= 1
            if not self._waiting[host]:  # nobody else queues for this host: forget it
                del self._waiting[host], self._turns[host]
                self._released.pop(host, None)

    async def _take(self, host: str) -> tuple[str | None, float]:
        token = uuid.uuid4().hex
        delay = POLL_MIN
        while True:
            try:
                status, ms = await self.slots.acquire(host, limit=self.per_host, lease_ms=self.lease_ms, token=token)
            except StoreError as exc:
                self._redis_down(exc)
                return None, 0.0
            if status == TAKEN:
                return token, 0.0
            if status == HELD:
                return None, ms / 1000
            assert status == FULL
            await self._wait_release(host, min(delay, ms / 1000))
            delay = min(delay * 2, POLL_MAX)

    async def _wait_release(self, host: str, timeout: float) -> None:
        """Sleep `timeout`, or less if a request of this instance to `host` ends meanwhile. (asyncio.timeout, not
        wait_for: on Python 3.11 wait_for returns instead of raising when the cancel comes as the event is set, and
        a fetch cancelled at shutdown would go on to take the slot; see docs/decisions.md.)"""
        event = self._released.setdefault(host, asyncio.Event())
        event.clear()
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass

    async def release(self, host: str, token: str) -> None:
        event = self._released.get(host)
        if event is not None:
            event.set()
        try:
            await self.slots.release(host, token)
        except StoreError as exc:  # the lease runs out by itself
            self._redis_down(exc)

    async def hold(self, host: str, seconds: float) -> float:
        """Hold `host` back for every instance for `seconds` (a longer hold in force stays); the hold in force."""
        try:
            ms = await self.slots.hold(host, int(seconds * 1000))
        except StoreError as exc:
            self._redis_down(exc)
            return seconds
        return ms / 1000

    def _redis_down(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._down_logged >= DOWN_LOG_EVERY:
            self._down_logged = now
            log.warning("per-host limits not shared while Redis does not answer (%s: %s); each instance keeps "
                        "its own fetch.per_host meanwhile", type(exc).__name__, exc)
