"""Alert state in Redis: the one repository of the alerts aggregate. Every Redis call of the outbox, the deliverer
and the history is here, with the transactions and scripts that keep them consistent.

    alert records, (rule, story) once-keys, story facts, sources      <- Outbox (submit, updates, operator alerts)
    delivery records, due ZSETs, in-flight marks, throttle, held lists <- routing, sending, digests
    the outbox stream "alerts" (one Stream object) and its dead letters

Every key is in the {alerts} Cluster slot (keys.AlertKeys), so scripts and transactions may touch several; the
scripts are scripts/route_send.lua, route_hold.lua, take_digest.lua, operator_once.lua, alert_writes.lua (the
writes of a transaction without WATCH in one command, AlertWrites) and the shared claim_lease.lua (due sends
claimed with a lease, as due feeds are).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Awaitable, Callable

from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError, WatchError

from ..errors import StoreUnavailable, TransientError
from ..models import Alert
from ..streams import Stream
from .keys import Keys
from .scripts import LeaseClaim, register

log = logging.getLogger(__name__)

OUTBOX_STREAM = "alerts"  # the deliverer's input; "alerts:dead" holds what could not be delivered
# Redis not answering: mapped by the store's client (errors.py); redis-py's own classes for a client made elsewhere
_AWAY = (StoreUnavailable, RedisConnectionError, RedisTimeoutError)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def _loads(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


class AlertWrites:
    """Writes queued as on a MULTI pipeline (the same methods and arguments), applied by `apply` as one call of
    scripts/alert_writes.lua: one command where the MULTI cost one per write and two more. Only for transactions
    without WATCH (a watched one still needs MULTI/EXEC)."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.args: list[Any] = []

    def _add(self, command: str, key: str, *args: Any) -> None:
        index = self.keys.setdefault(key, len(self.keys) + 1)
        self.args += [len(args) + 2, command, index, *args]

    def hset(self, key: str, field: str | None = None, value: Any = None, mapping: dict[str, Any] | None = None
             ) -> None:
        pairs = ([field, value] if field is not None else []) + [x for kv in (mapping or {}).items() for x in kv]
        self._add("HSET", key, *pairs)

    def expire(self, key: str, seconds: int) -> None:
        self._add("EXPIRE", key, seconds)

    def zadd(self, key: str, mapping: dict[str, float], nx: bool = False) -> None:
        pairs = [x for member, score in mapping.items() for x in (score, member)]
        self._add("ZADD", key, *(["NX"] if nx else []), *pairs)

    def zrem(self, key: str, *members: str) -> None:
        self._add("ZREM", key, *members)

    def zremrangebyscore(self, key: str, low: Any, high: Any) -> None:
        self._add("ZREMRANGEBYSCORE", key, low, high)

    def delete(self, key: str) -> None:
        self._add("DEL", key)

    def srem(self, key: str, *members: str) -> None:
        self._add("SREM", key, *members)


class AlertStore:
    """The alerts aggregate in Redis. One per process serves the outbox, the deliverer and the history: it holds
    the one Stream object on the outbox stream (`consumer` / `claim_idle` are the deliverer's)."""

    def __init__(self, redis: Any, keys: Keys, *, retention: float = 90 * 86400.0, consumer: str = "outbox",
                 claim_idle: float = 60.0) -> None:
        self.redis = redis
        self.keys = keys
        self.ak = keys.alerts
        self.retention = int(retention)
        self.stream = Stream(redis, keys, OUTBOX_STREAM, consumer=consumer, claim_idle=claim_idle)
        self._route_send = register(redis, "route_send")
        self._route_hold = register(redis, "route_hold")
        self._claim = LeaseClaim(redis)  # the shared claim_lease.lua, as the feed schedule uses it
        self._take_digest = register(redis, "take_digest")
        self._operator_once = register(redis, "operator_once")
        self._writes = register(redis, "alert_writes")

    async def _apply(self, writes: AlertWrites) -> None:
        """The queued writes in one atomic script call (scripts/alert_writes.lua)."""
        if writes.args:
            await self._writes(keys=list(writes.keys), args=writes.args)

    # ---- alert records (queued on a transaction) ----

    def _write_alert(self, pipe: Any, alert: Alert, *, base_id: str, now: float) -> None:
        key = self.ak.alert(alert.id)
        pipe.hset(key, mapping={"json": alert.to_json(), "created": f"{now:.3f}", "base": base_id,
                                "published": "0"})
        pipe.expire(key, self.retention)
        pipe.zadd(self.ak.index, {alert.id: now})
        pipe.zremrangebyscore(self.ak.index, "-inf", now - self.retention)  # records older than this expired
        pipe.zadd(self.ak.unpublished, {alert.id: now})

    def _write_story(self, pipe: Any, base_id: str, facts: dict[str, Any], *, updates: int, last: str) -> None:
        key = self.ak.story(base_id)
        pipe.hset(key, mapping={"facts": _dumps(facts), "updates": str(updates), "last": last})
        pipe.expire(key, self.retention)

    def _write_delivery(self, pipe: Any, alert_id: str, channel: str, state: dict[str, Any]) -> None:
        key = self.ak.deliveries(alert_id)
        state = {**state, "updated_at": round(time.time(), 3)}
        pipe.hset(key, channel, json.dumps(state, ensure_ascii=False, separators=(",", ":")))
        pipe.expire(key, self.retention)

    # ---- the outbox: (rule, story) once, stories, sources, publishing ----

    async def add_sources(self, base_id: str, sources: list[tuple[str, str]], now: float) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, url in sources:
                if url:
                    pipe.zadd(self.ak.sources(base_id), {url: now}, nx=True)
                    pipe.hsetnx(self.ak.source_names(base_id), url, name or "")
            pipe.expire(self.ak.sources(base_id), self.retention)
            pipe.expire(self.ak.source_names(base_id), self.retention)
            await pipe.execute()

    async def claim_first(self, base_id: str, now: float) -> bool:
        """True for the one submit that creates the first alert of (rule, story)."""
        return bool(await self.redis.set(self.ak.once(base_id), f"{base_id}@{now:.3f}", nx=True,
                                         ex=self.retention))

    async def claimed_at(self, base_id: str) -> float | None:
        """When the first alert of (rule, story) was claimed, if it was (None also for an unreadable marker)."""
        value = await self.redis.get(self.ak.once(base_id)) or ""
        try:
            return float(value.rpartition("@")[2])
        except ValueError:
            return None

    async def create_story(self, alert: Alert, facts: dict[str, Any], *, base_id: str, now: float) -> None:
        """The first alert of a story with the story's facts: one transaction."""
        writes = AlertWrites()
        self._write_story(writes, base_id, facts, updates=0, last=alert.id)
        self._write_alert(writes, alert, base_id=base_id, now=now)
        await self._apply(writes)

    async def update_story(self, base_id: str,
                           decide: Callable[[dict[str, str]], Awaitable[tuple[Any, Any]]], *, now: float) -> Any:
        """Optimistic update of a story (another instance may be submitting a copy of it at the same time).

        `decide(state)` gets the story hash ({} when missing) and returns (result, write): write is None (nothing
        to store) or (alert, merged facts, update count), stored with the story in one transaction that fails if
        the story changed meanwhile; then `decide` runs again on the new state. Returns `result`."""
        key = self.ak.story(base_id)
        for _ in range(10):
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(key)
                    result, write = await decide(await pipe.hgetall(key))
                    if write is None:
                        await pipe.unwatch()
                        return result
                    alert, facts, updates = write
                    pipe.multi()
                    self._write_story(pipe, base_id, facts, updates=updates, last=alert.id)
                    self._write_alert(pipe, alert, base_id=base_id, now=now)
                    await pipe.execute()
                    return result
            except WatchError:
                continue
        raise TransientError(f"alert {base_id}: story state kept changing under concurrent updates")

    async def create_operator(self, alert: Alert, *, once: str, now: float) -> bool:
        """Store an operator alert unless one was stored for `once` already (on any instance). True if stored."""
        return bool(await self._operator_once(
            keys=[self.ak.once(once), self.ak.alert(alert.id), self.ak.index, self.ak.unpublished],
            args=[alert.id, alert.to_json(), f"{now:.3f}", self.retention]))

    async def publish(self, alert: Alert) -> None:
        """Put a stored alert on the outbox stream, then mark it published."""
        await self.stream.publish(alert.to_dict())
        writes = AlertWrites()
        writes.hset(self.ak.alert(alert.id), "published", "1")
        writes.zrem(self.ak.unpublished, alert.id)
        await self._apply(writes)

    async def unpublished_since(self, alert_id: str) -> float | None:
        return await self.redis.zscore(self.ak.unpublished, alert_id)

    async def unpublished_before(self, when: float) -> list[str]:
        return await self.redis.zrangebyscore(self.ak.unpublished, "-inf", when)

    async def forget_unpublished(self, alert_id: str) -> None:
        await self.redis.zrem(self.ak.unpublished, alert_id)

    # ---- reads ----

    async def alert(self, alert_id: str) -> Alert | None:
        raw = await self.redis.hget(self.ak.alert(alert_id), "json")
        return Alert.from_json(raw) if raw else None

    async def alert_record(self, alert_id: str) -> dict[str, str]:
        """The stored hash of one alert: json, created, base, published ({} when there is none)."""
        return await self.redis.hgetall(self.ak.alert(alert_id))

    async def base_of(self, alert_id: str) -> str:
        return await self.redis.hget(self.ak.alert(alert_id), "base") or alert_id

    async def sources(self, base_id: str) -> list[tuple[str, str]]:
        """Every copy of the story known now, first seen first. One round trip: the names hash is read whole (a
        field per copy, as the ZSET has a member per copy)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self.ak.sources(base_id), 0, -1)
            pipe.hgetall(self.ak.source_names(base_id))
            urls, names = await pipe.execute()
        return [(names.get(url) or "", url) for url in urls]

    async def newest(self, limit: int) -> list[str]:
        return await self.redis.zrevrange(self.ak.index, 0, max(limit, 1) - 1)

    async def drop_from_index(self, alert_id: str) -> None:
        await self.redis.zrem(self.ak.index, alert_id)

    async def delivery(self, alert_id: str, channel: str) -> dict[str, Any] | None:
        return _loads(await self.redis.hget(self.ak.deliveries(alert_id), channel), None)

    async def deliveries(self, alert_id: str) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(self.ak.deliveries(alert_id))
        return {channel: _loads(value, {}) for channel, value in sorted(raw.items())}

    # ---- routing ----

    async def route_send(self, alert_id: str, channel: str, rule_id: str, *, now: float,
                         window: float) -> tuple[int, int]:
        """Queue a send now unless (alert, channel) has a record; with the throttle gate. (1 queued | 0 throttled |
        -1 exists, suppressed or throttled count)."""
        code, count = await self._route_send(
            keys=[self.ak.deliveries(alert_id), self.ak.due(channel), self.ak.throttle(channel, rule_id)],
            args=[channel, alert_id, now, window, self.retention])
        return int(code), int(count)

    async def route_hold(self, alert_id: str, channel: str, *, now: float, due: float, reason: str) -> bool:
        """Hold for the channel's next digest unless (alert, channel) has a record. True if held now."""
        return bool(await self._route_hold(
            keys=[self.ak.deliveries(alert_id), self.ak.held(channel), self.ak.held_due(channel)],
            args=[channel, alert_id, now, due, self.retention, reason]))

    async def set_delivery(self, alert_id: str, channel: str, state: dict[str, Any]) -> None:
        writes = AlertWrites()
        self._write_delivery(writes, alert_id, channel, state)
        await self._apply(writes)

    async def dead_letter(self, payload: dict[str, Any]) -> None:
        await self.stream.publish_dead(payload)

    async def dead(self, limit: int) -> list[Any]:
        return await self.stream.dead(limit)

    # ---- sending ----

    async def claim_due(self, channel: str, *, now: float, lease: float, limit: int) -> list[str]:
        """Due sends of a channel, moved a lease ahead so no other instance (and no restart) sends them meanwhile."""
        return await self._claim.due(self.ak.due(channel), now=now, lease=lease, count=limit)

    async def drop_due(self, channel: str, alert_id: str) -> None:
        await self.redis.zrem(self.ak.due(channel), alert_id)

    async def due_count(self, channel: str) -> int:
        return int(await self.redis.zcard(self.ak.due(channel)))

    async def inflight(self, alert_id: str, channel: str) -> dict[str, dict[str, Any]]:
        """URL index -> what the last attempt wrote for it before its outcome was recorded ("sending" or answer)."""
        raw = await self.redis.hgetall(self.ak.inflight(alert_id, channel))
        return {index: json.loads(value) for index, value in raw.items()}

    async def mark_sending(self, alert_id: str, channel: str, index: int, *, at: float) -> None:
        key = self.ak.inflight(alert_id, channel)
        writes = AlertWrites()
        writes.hset(key, str(index), json.dumps({"status": "sending", "at": at}))
        writes.expire(key, self.retention)
        await self._apply(writes)

    async def mark_answered(self, alert_id: str, channel: str, index: int, result: dict[str, Any]) -> None:
        """The URL's answer right after its send; Redis away: skipped (record_outcome waits for Redis instead)."""
        try:
            await self.redis.hset(self.ak.inflight(alert_id, channel), str(index), json.dumps(result))
        except _AWAY:
            pass

    async def record_outcome(self, alert_id: str, channel: str, new: dict[str, Any], *, patience: float) -> None:
        """Write an attempt's outcome and the due-ZSET change in one transaction. The send already happened: if
        Redis is away, keep trying for `patience` seconds (while the send's lease lasts), or the send would be
        repeated (a duplicate) after the lease."""
        deadline = time.monotonic() + patience
        delay = 0.1
        while True:
            try:
                writes = AlertWrites()
                self._write_delivery(writes, alert_id, channel, new)
                writes.delete(self.ak.inflight(alert_id, channel))  # now in the delivery record
                if new["status"] == "retrying":
                    writes.zadd(self.ak.due(channel), {alert_id: new["next_at"]})
                else:
                    writes.zrem(self.ak.due(channel), alert_id)
                await self._apply(writes)
                return
            except _AWAY as exc:
                if time.monotonic() + delay > deadline:
                    raise
                if delay == 0.1:
                    log.warning("alert %s channel %s: %s, but Redis is unavailable to record it (%s); retrying",
                                alert_id, channel, new["status"], exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def requeue(self, alert_id: str, channel: str, new: dict[str, Any], *, now: float) -> None:
        """A delivery queued again (manual retry): the record and the due entry in one transaction."""
        writes = AlertWrites()
        self._write_delivery(writes, alert_id, channel, new)
        writes.zadd(self.ak.due(channel), {alert_id: now})
        await self._apply(writes)

    # ---- digests ----

    async def take_digest(self, channel: str, *, now: float) -> None:
        """Move a channel's held list into a new open digest if its time has come (safe on several instances)."""
        await self._take_digest(keys=[self.ak.held(channel), self.ak.held_due(channel), self.ak.digest_seq,
                                      self.ak.digests_open],
                                args=[now, channel, self.ak.digest_items("")])

    async def open_digests(self) -> list[tuple[str, str, str]]:
        """(channel, digest id, entry) of digests taken from held lists but not yet queued."""
        out = []
        for entry in await self.redis.smembers(self.ak.digests_open):
            channel, _, digest_id = entry.partition("\t")
            out.append((channel, digest_id, entry))
        return out

    async def digest_items(self, digest_id: str) -> list[str]:
        return await self.redis.lrange(self.ak.digest_items(digest_id), 0, -1)

    async def queue_digest(self, digest: Alert, channel: str, *, digest_id: str, entry: str, items: list[str],
                           state: dict[str, Any], now: float, due: float) -> None:
        """Store the digest alert (published), mark its items digested, queue it for its channel, close the open
        digest: one transaction, so one that died is simply run again."""
        async with self.redis.pipeline(transaction=True) as pipe:
            self._write_alert(pipe, digest, base_id=digest.id, now=now)
            pipe.hset(self.ak.alert(digest.id), "published", "1")
            pipe.zrem(self.ak.unpublished, digest.id)
            self._write_delivery(pipe, digest.id, channel, state)
            pipe.zadd(self.ak.due(channel), {digest.id: due}, nx=True)  # due at once
            for item_id in items:
                self._write_delivery(pipe, item_id, channel, {"status": "digested", "digest": digest.id, "at": now})
            pipe.delete(self.ak.digest_items(digest_id))
            pipe.srem(self.ak.digests_open, entry)
            await pipe.execute()
