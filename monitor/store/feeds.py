"""Per-feed scheduling state in Redis (due-time ZSET, one hash per feed) and the seen-URL hashes shared by all feeds.

Seen URLs are fields (URL hash -> first seen) of hashes in levels: level l has 256 * 2**l shards, and new URLs go to
the lowest level with room for all the URLs kept (SEEN_PER_SHARD a shard on average), so each hash stays a small
listpack hash (Redis's hash-max-listpack-entries is 128; past it a field costs twice as much) at any volume and on
an untuned Redis. Lookups read every level that may hold some (usually one or two); level 0 is the 256 hashes of
the versions before, so what they marked is still seen.

The claim is one Lua script (scripts/claim_lease.lua), so instances sharing one Redis never poll a feed twice; all
state survives restarts. A marker key set with the schedule tells a Redis that lost its data (restarted without
persistence, flushed): the claim then raises StateLost, and `rebuild` schedules the configured feeds again, each
one's first poll a baseline.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..dedup import url_hash
from ..errors import RetryAfter
from ..models import Entry, Feed
from ..redact import redact_url
from .keys import Keys
from .scripts import LeaseClaim

log = logging.getLogger(__name__)

SEEN_SHARDS = 256  # seen URLs at level 0 live in 256 hashes keyed by the first two hex digits of url_hash
SEEN_PER_SHARD = 80  # a level takes new URLs while all those kept fit this many a shard (listpack room to spare)
SEEN_MAX_LEVEL = 16
SEEN_LEVELS_TTL = 1.0  # seconds an instance reuses what it read of the levels (no extra round trip a poll)
FIRST_POLL_SPREAD = 30.0  # new feeds start within this many seconds (at most one interval), spreading a big config
LAST_ERROR_MAX = 500
_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)

REBUILDING = "rebuilding"  # the state marker while one instance rebuilds the schedule (expires if it dies)
REBUILD_TIMEOUT = 30  # seconds


@dataclass(frozen=True, slots=True)
class FeedState:
    """What Redis knows about one feed."""

    feed_id: str
    etag: str | None = None
    last_modified: str | None = None
    next_check: float | None = None  # due time (or lease end while a poll runs); None if not scheduled
    error_streak: int = 0
    last_error: str = ""
    last_error_at: float | None = None
    last_success: float | None = None
    last_poll: float | None = None
    entries_seen: int = 0
    title: str = ""
    url: str = ""
    name: str = ""
    baseline_since: float | None = None  # set after a state loss: the next poll is a baseline (see rebuild)


class StateLost(Exception):
    """The schedule's marker is gone: Redis lost its data. `intact_at`: when this instance last saw it in place."""

    def __init__(self, intact_at: float | None) -> None:
        super().__init__("the feed schedule's marker is missing from Redis")
        self.intact_at = intact_at


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _error_text(error: Exception) -> str:
    """The error as stored for analysts: type and message, URLs redacted (no credentials), bounded length."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), str(error)) or "no detail"
    return f"{type(error).__name__}: {text}"[:LAST_ERROR_MAX]


class FeedStore:
    """Scheduling state and seen URLs. Takes a redis.asyncio client (decode_responses=True) and a Keys."""

    def __init__(self, redis: Any, keys: Keys, *, seen_per_shard: int = SEEN_PER_SHARD) -> None:
        self.redis = redis
        self.keys = keys
        self.seen_per_shard = seen_per_shard
        self._levels: tuple[float, list[int], int] | None = None  # (when read, levels, URLs kept) of seen_levels
        self._lease = LeaseClaim(redis)  # store/scripts/claim_lease.lua
        self.epoch: str | None = None  # the state marker this instance last saw
        self.intact_at: float | None = None  # when it last saw it
        self.lost_at: float | None = None  # when it learnt that Redis had lost the state (here or by another)

    def _seen_key(self, hashed: str, level: int = 0) -> str:
        if level == 0:
            return self.keys.seen_urls(hashed[:2])
        return self.keys.seen_urls_at(level, int(hashed[:8], 16) >> (24 - level))

    def _write_level(self, kept: int) -> int:
        """The lowest level whose shards hold `kept` URLs at SEEN_PER_SHARD each."""
        level = 0
        while level < SEEN_MAX_LEVEL and self.seen_per_shard * SEEN_SHARDS * 2 ** level <= kept:
            level += 1
        return level

    async def _seen_levels(self, *, fresh: bool = False) -> tuple[list[int], int]:
        """(the levels that may hold seen URLs, about how many are kept), as read at most SEEN_LEVELS_TTL ago."""
        if fresh or self._levels is None or time.monotonic() - self._levels[0] > SEEN_LEVELS_TTL:
            meta = await self.redis.hgetall(self.keys.seen_levels)
            levels = {0} | {int(_text(k)) for k in meta if _text(k).isdigit()}
            self._levels = (time.monotonic(), sorted(levels), int(meta.get("n") or meta.get(b"n") or 0))
        _, levels, kept = self._levels
        return levels, kept

    async def sync_feeds(self, feeds: Sequence[Feed], *, now: float) -> bool:
        """Register the configured feeds; a feed never seen is due now (+ spread); unconfigured feeds leave the ZSET.
        True if the state marker was missing (a first start, or a Redis without our data) and is set now."""
        ids = [f.id for f in feeds]
        known_ids = await self.redis.smembers(self.keys.feeds)
        stored_next = await self._next_checks(ids)
        async with self.redis.pipeline(transaction=True) as pipe:
            for feed, next_check in zip(feeds, stored_next):
                # the feed record is for people: never a token or password of the URL (the configuration keeps the real one)
                pipe.hset(self.keys.feed(feed.id), mapping={"url": redact_url(feed.url), "name": feed.name})
                # a feed removed and configured again keeps its schedule; NX: never disturb a running lease
                spread = min(FIRST_POLL_SPREAD, feed.interval)  # a 10 s feed must not wait 30 s for its first poll
                due = next_check if next_check is not None else now + random.uniform(0, spread)
                pipe.zadd(self.keys.due, {feed.id: due}, nx=True)
            gone = sorted(set(known_ids) - set(ids))
            if gone:
                pipe.zrem(self.keys.due, *gone)
                pipe.srem(self.keys.feeds, *gone)
            if ids:
                pipe.sadd(self.keys.feeds, *ids)
            await pipe.execute()
        if gone:
            log.info("feeds no longer configured, unscheduled (state kept): %s", ", ".join(gone))
        # a first start (or the first of this version) sets the marker; one already there is kept
        created = bool(await self.redis.set(self.keys.state_marker, uuid.uuid4().hex, nx=True))
        self.epoch, self.intact_at = await self.redis.get(self.keys.state_marker), now
        return created

    async def mark_baseline(self, feeds: Sequence[Feed], *, since: float, now: float) -> None:
        """Each feed's next poll is a baseline for entries published before `since` (see Pipeline._baseline)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for feed in feeds:
                pipe.hset(self.keys.feed(feed.id), "baseline_since", repr(since))
            await pipe.execute()
        self.lost_at = now

    async def rebuild(self, feeds: Sequence[Feed], *, now: float, since: float) -> bool:
        """After a state loss: schedule `feeds` again (due now + spread), each feed's next poll a baseline for entries
        published before `since`. One instance does it (the marker says "rebuilding" meanwhile); False for the
        others, or if the marker came back already."""
        if not await self.redis.set(self.keys.state_marker, REBUILDING, nx=True, ex=REBUILD_TIMEOUT):
            return False
        await self.sync_feeds(feeds, now=now)
        await self.mark_baseline(feeds, since=since, now=now)
        epoch = uuid.uuid4().hex
        await self.redis.set(self.keys.state_marker, epoch)  # after the baselines: claims resume now
        self.epoch, self.intact_at = epoch, now
        return True

    async def _next_checks(self, ids: Sequence[str]) -> list[float | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for feed_id in ids:
                pipe.hget(self.keys.feed(feed_id), "next_check")
            return [_float(v) for v in await pipe.execute()]

    async def claim_due(self, *, now: float, limit: int, lease: float, ahead: float = 0.0) -> list[str]:
        """Up to `limit` feeds due by `now` + `ahead`, leased until now + lease (a dead claimer's feeds come back
        then)."""
        if limit <= 0:
            return []
        epoch, ids = await self._lease.due_guarded(self.keys.due, self.keys.state_marker, now=now + ahead,
                                                   lease=lease - ahead, count=limit, busy=REBUILDING)
        if not epoch:
            raise StateLost(self.intact_at)
        if epoch != REBUILDING:
            if self.epoch is not None and epoch != self.epoch:  # another instance rebuilt after a loss
                self.lost_at = now
                log.warning("Redis lost monitor's state; another instance rebuilt the schedule from the "
                            "configuration (entries seen before are unknown)")
            self.epoch, self.intact_at = epoch, now
        return list(ids)

    async def claim_due_at(self, *, now: float, ahead: float, limit: int, lease: float) -> list[tuple[str, float]]:
        """As claim_due, each feed with the time it is due (at most now + ahead; a feed due before now: now's time
        was then), for a poll that starts on time instead of at the claimer's next look."""
        scored = await self.redis.zrangebyscore(self.keys.due, "-inf", repr(now + ahead), start=0, num=limit,
                                                withscores=True)
        due = {_text(member): float(score) for member, score in scored}
        ids = await self.claim_due(now=now, limit=limit, lease=lease, ahead=ahead)
        return [(feed_id, min(due.get(feed_id, now), now + ahead)) for feed_id in ids]

    async def claim(self, feed_ids: Sequence[str], *, now: float, lease: float) -> list[str]:
        """Lease the given feeds whatever their due time (run --once); returns those still configured."""
        if not feed_ids:
            return []
        return await self._lease.listed(self.keys.due, list(feed_ids), now=now, lease=lease)

    async def release(self, feed_ids: Sequence[str], *, now: float) -> None:
        """Give leased feeds back (a stopping instance cancelled their polls): due at `now`, not when the lease ends."""
        if feed_ids:
            await self.redis.zadd(self.keys.due, {feed_id: now for feed_id in feed_ids}, xx=True)

    async def state(self, feed_id: str) -> FeedState:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.feed(feed_id))
            pipe.zscore(self.keys.due, feed_id)
            data, due = await pipe.execute()
        return self._state(feed_id, data, due)

    async def states(self) -> list[FeedState]:
        """Every configured feed's state, sorted by id."""
        ids = sorted(await self.redis.smembers(self.keys.feeds))
        async with self.redis.pipeline(transaction=False) as pipe:
            for feed_id in ids:
                pipe.hgetall(self.keys.feed(feed_id))
                pipe.zscore(self.keys.due, feed_id)
            raw = await pipe.execute()
        return [self._state(i, raw[2 * n], raw[2 * n + 1]) for n, i in enumerate(ids)]

    @staticmethod
    def _state(feed_id: str, data: dict[str, str], due: Any) -> FeedState:
        return FeedState(
            feed_id=feed_id, etag=data.get("etag") or None, last_modified=data.get("last_modified") or None,
            next_check=_float(due) if due is not None else None,
            error_streak=int(data.get("error_streak") or 0), last_error=data.get("last_error", ""),
            last_error_at=_float(data.get("last_error_at")), last_success=_float(data.get("last_success")),
            last_poll=_float(data.get("last_poll")), entries_seen=int(data.get("entries_seen") or 0),
            title=data.get("title", ""), url=data.get("url", ""), name=data.get("name", ""),
            baseline_since=_float(data.get("baseline_since")))

    async def record_success(self, feed_id: str, *, now: float, interval: float, jitter: float,
                             etag: str | None, last_modified: str | None, new_entries: int,
                             title: str = "") -> float:
        """Store the validators, reset the error streak, schedule the next check (interval + up to `jitter` s)."""
        next_check = now + interval + random.uniform(0, max(jitter, 0.0))
        key = self.keys.feed(feed_id)
        fields = {"next_check": repr(next_check), "error_streak": 0, "last_success": repr(now), "last_poll": repr(now)}
        if title:
            fields["title"] = title
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            for name, value in (("etag", etag), ("last_modified", last_modified)):
                if value:
                    pipe.hset(key, name, value)
                else:  # the server stopped sending it: an old validator would be wrong
                    pipe.hdel(key, name)
            if new_entries:
                pipe.hincrby(key, "entries_seen", new_entries)
            pipe.hdel(key, "baseline_since")  # a baseline poll after a state loss is done
            pipe.zadd(self.keys.due, {feed_id: next_check}, xx=True)  # XX: an unconfigured feed stays out
            await pipe.execute()
        return next_check

    async def record_error(self, feed_id: str, error: Exception, *, now: float, interval: float,
                           max_backoff: float = 86400) -> float:
        """Back off: interval * 2**(streak-1), capped at max_backoff; a server's Retry-After is honoured."""
        key = self.keys.feed(feed_id)
        streak = int(await self.redis.hincrby(key, "error_streak", 1))
        delay = min(interval * 2 ** min(streak - 1, 32), max_backoff)
        if isinstance(error, RetryAfter):
            delay = max(delay, min(error.delay, max(max_backoff, interval)))
        next_check = now + delay
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"next_check": repr(next_check), "last_error": _error_text(error),
                                    "last_error_at": repr(now), "last_poll": repr(now)})
            pipe.zadd(self.keys.due, {feed_id: next_check}, xx=True)
            await pipe.execute()
        log.info("feed %s failed (%d in a row), next try in %.0fs: %s", feed_id, streak, delay, _error_text(error))
        return next_check

    async def unseen(self, entries: Sequence[Entry]) -> list[Entry]:
        """The entries whose URL was never seen (first of each URL), without marking them: publish, then mark_seen,
        so a crash or a Redis outage in between repeats entries instead of losing them."""
        if not entries:
            return []
        hashes = [url_hash(entry.url) for entry in entries]
        levels, kept = await self._seen_levels()
        soon = self._write_level(int(kept * 1.1) + 100)  # near its threshold, another instance may begin a level
        levels = levels if soon in levels else sorted({*levels, soon})
        async with self.redis.pipeline(transaction=False) as pipe:
            for hashed in hashes:
                for level in levels:
                    pipe.hexists(self._seen_key(hashed, level), hashed)
            found = await pipe.execute()
        known = [any(found[n * len(levels):(n + 1) * len(levels)]) for n in range(len(hashes))]
        fresh, taken = [], set()
        for entry, hashed, seen in zip(entries, hashes, known):
            if not seen and hashed not in taken:
                taken.add(hashed)
                fresh.append(entry)
        return fresh

    async def mark_seen(self, entries: Sequence[Entry], *, now: float) -> None:
        """Mark the entries' URLs seen at `now` (the callers pass unseen ones: the first-seen time is kept)."""
        if not entries:
            return
        stamp = repr(now)
        _, kept = await self._seen_levels()
        level = self._write_level(kept)
        if self._levels is not None:  # counted here until read again
            stamp_at, levels, _ = self._levels
            self._levels = (stamp_at, sorted({*levels, level}), kept + len(entries))
        async with self.redis.pipeline(transaction=False) as pipe:
            if level:  # before the fields: whoever finds them can find their level
                pipe.hset(self.keys.seen_levels, str(level), 1)
            for entry in entries:
                hashed = url_hash(entry.url)
                pipe.hsetnx(self._seen_key(hashed, level), hashed, stamp)
            pipe.hincrby(self.keys.seen_levels, "n", len(entries))
            await pipe.execute()

    async def expire_seen(self, *, older_than: float) -> int:
        """Forget seen URLs first seen before `older_than` (retention). Returns how many were removed. Counts those
        kept (where new ones go) and stops reading a level above 0 left empty that new ones no longer go to."""
        levels, _ = await self._seen_levels(fresh=True)
        removed, kept, empty = 0, 0, []
        for level in levels:
            left = 0
            for shard in range(SEEN_SHARDS * 2 ** level):
                key = self.keys.seen_urls(f"{shard:02x}") if level == 0 else self.keys.seen_urls_at(level, shard)
                old, young = [], 0
                async for field, value in self.redis.hscan_iter(key, count=1000):
                    if (_float(value) or 0.0) < older_than:
                        old.append(field)
                    else:
                        young += 1
                for start in range(0, len(old), 1000):
                    removed += int(await self.redis.hdel(key, *old[start:start + 1000]))
                left += young
            kept += left
            if level and not left:
                empty.append(level)
        await self.redis.hset(self.keys.seen_levels, "n", kept)
        retired = [str(level) for level in empty if level != self._write_level(kept)]
        if retired:
            await self.redis.hdel(self.keys.seen_levels, *retired)
        self._levels = None
        return removed
