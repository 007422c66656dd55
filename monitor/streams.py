"""Redis Streams with consumer groups: publish, consume, ack, reclaim, dead-letter.

A message is acknowledged only after its handler returned (what it produced is written); pending messages of a dead
consumer are taken over with XAUTOCLAIM after `claim_idle`; a message delivered more than `max_deliveries` times, or
one whose handler raised PermanentError, moves to the "<name>:dead" stream with its last error.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from redis.exceptions import RedisError, ResponseError

from .errors import PermanentError, TransientError
from .store import Keys

log = logging.getLogger(__name__)

ERRORS_TTL = 7 * 86400  # last errors of messages still being retried; refreshed on every failure


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    payload: dict[str, Any]
    deliveries: int = 1


Handler = Callable[[Message], Awaitable[Any]]
REFILL_POLL = 0.1  # seconds: with slots busy, how often to look for new messages for the free ones
# A consumer renews its messages in flight every claim_idle / RENEW_PER_IDLE (XCLAIM to itself with JUSTID: their idle
# time starts again, their delivery count does not grow), so that no consumer takes back a message that a live one is
# still working on; it stops renewing one that has run for RENEW_FOR x claim_idle (a handler that hangs).
RENEW_PER_IDLE = 3
RENEW_FOR = 10
BURST_BACKOFF_MAX = 5.0  # seconds: the longest wait before a retry within one burst run


def _fields(payload: dict[str, Any]) -> dict[str, str]:
    """A message as stream fields: the payload as compact JSON in "data"."""
    return {"data": json.dumps(payload, ensure_ascii=False, separators=(",", ":"))}


def _is_redis_error(exc: BaseException) -> bool:
    """A Redis error (or one a store repository mapped from it) is one log line; anything else is a bug: trace it."""
    return isinstance(exc, (RedisError, OSError)) or isinstance(exc.__cause__, RedisError)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Stream:
    """One stream and its consumer group, seen by one consumer."""

    def __init__(self, redis: Any, keys: Keys, name: str, *, group: str = "monitor", consumer: str,
                 maxlen: int = 100_000, max_deliveries: int = 5, claim_idle: float = 60.0,
                 burst_backoff: float = 0.25, describe: Callable[[Message], str] | None = None,
                 delete_on_ack: bool = False) -> None:
        self.redis = redis
        self.name = name
        self.key = keys.stream(name)
        self.dead_key = keys.stream_dead(name)
        self.errors_key = keys.stream_errors(name)  # message id -> last error, seen by whichever consumer dead-letters it
        self.group = group
        self.consumer = consumer
        self.maxlen = maxlen
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = int(claim_idle * 1000)
        self.burst_backoff = burst_backoff  # burst mode: the first wait before a retry, doubled for each next one
        self.describe = describe or (lambda message: f"message {message.id}")  # names a message in log lines
        self._retries: list[tuple[float, str, Message]] = []  # burst mode: (due, id, message) of the next tries
        self._group_ready = False
        self._claim_cursor = "0-0"
        self.errors: dict[str, str] = {}  # message id -> last error text, for the dead-letter record
        # a stream of large messages (articles) drops each one once it is handled (XACK + XDEL, one round trip), so
        # it holds only the work still to do; a stream of small ones keeps `maxlen` handled messages for inspection
        self.delete_on_ack = delete_on_ack

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def publish(self, payload: dict[str, Any]) -> str:
        return _text(await self.redis.xadd(self.key, _fields(payload), maxlen=self.maxlen, approximate=True))

    async def publish_many(self, payloads: list[dict[str, Any]]) -> None:
        """Several messages in one round trip (a feed's new entries)."""
        if not payloads:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.xadd(self.key, _fields(payload), maxlen=self.maxlen, approximate=True)
            await pipe.execute()

    def _decode(self, entry_id: Any, fields: dict[Any, Any], deliveries: int) -> Message:
        raw = fields.get("data", fields.get(b"data", "{}"))
        try:
            payload = json.loads(raw)
        except (TypeError, ValueError):
            payload = {"_undecodable": _text(raw)}
        return Message(_text(entry_id), payload, deliveries)

    async def _call_group(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run a group command; if Redis lost the group (NOGROUP: flushed, restarted without AOF), recreate it once."""
        if not self._group_ready:
            await self.ensure_group()
        try:
            return await fn()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("stream %s: consumer group %s was missing; recreating it", self.key, self.group)
            await self.ensure_group()
            return await fn()

    async def _reclaim(self, count: int) -> list[Message]:
        """Messages other consumers left pending longer than claim_idle (and our own, after a restart)."""
        result = await self._call_group(lambda: self.redis.xautoclaim(
            self.key, self.group, self.consumer, self.claim_idle_ms, start_id=self._claim_cursor, count=count))
        self._claim_cursor = _text(result[0])
        claimed = [(i, f) for i, f in result[1] if f is not None]
        if not claimed:
            return []
        # XAUTOCLAIM increments the delivery count; read the counts back for the dead-letter decision.
        first, last = _text(claimed[0][0]), _text(claimed[-1][0])
        pend = await self.redis.xpending_range(self.key, self.group, min=first, max=last, count=len(claimed) * 2 + 10)
        counts = {_text(p["message_id"]): int(p["times_delivered"]) for p in pend}
        return [self._decode(i, f, counts.get(_text(i), 2)) for i, f in claimed]

    async def _renew(self, ids: list[str]) -> None:
        """Our messages in flight: idle from now on, for every consumer's XAUTOCLAIM (see RENEW_PER_IDLE)."""
        if ids:
            await self._call_group(lambda: self.redis.xclaim(self.key, self.group, self.consumer, 0, ids,
                                                             justid=True))

    async def read(self, *, count: int = 10, block_ms: int = 1000, reclaim: bool = True) -> list[Message]:
        messages = await self._reclaim(count) if reclaim else []
        if messages:
            return messages
        response = await self._call_group(lambda: self.redis.xreadgroup(
            self.group, self.consumer, {self.key: ">"}, count=count, block=block_ms or None))
        out: list[Message] = []
        for _stream, entries in response or []:
            out.extend(self._decode(i, f, 1) for i, f in entries)
        return out

    async def ack(self, message: Message) -> None:
        if message.deliveries > 1 or self.delete_on_ack:
            async with self.redis.pipeline(transaction=False) as pipe:  # one slot: the stream's hash tag
                pipe.xack(self.key, self.group, message.id)
                if self.delete_on_ack:
                    pipe.xdel(self.key, message.id)
                if message.deliveries > 1:  # it may have failed before, here or on another instance: forget that
                    pipe.hdel(self.errors_key, message.id)
                await pipe.execute()
        else:
            await self.redis.xack(self.key, self.group, message.id)
        self.errors.pop(message.id, None)

    async def _remember_error(self, message: Message, error: str) -> None:
        self.errors[message.id] = error
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.errors_key, message.id, error[:2000])
            pipe.expire(self.errors_key, ERRORS_TTL)
            await pipe.execute()

    async def _last_error(self, message: Message) -> str:
        known = self.errors.get(message.id) or await self.redis.hget(self.errors_key, message.id)
        return _text(known) if known else "delivered too often (last error unknown)"

    async def hand_back(self, *, batch: int = 100) -> int:
        """On shutdown: mark this consumer's pending messages idle for `claim_idle`, so another instance takes them
        over at its next read instead of `claim_idle` later. The delivery counts stay as they are. Returns how many."""
        handed = 0
        start = "-"
        while True:
            pending = await self._call_group(lambda: self.redis.xpending_range(
                self.key, self.group, min=start, max="+", count=batch, consumername=self.consumer))
            ids = [_text(p["message_id"]) for p in pending]
            if not ids:
                return handed
            await self.redis.xclaim(self.key, self.group, self.consumer, 0, ids, idle=self.claim_idle_ms + 1,
                                    justid=True)
            handed += len(ids)
            if len(ids) < batch:
                return handed
            start = "(" + ids[-1]

    async def publish_dead(self, payload: dict[str, Any]) -> str:
        """Record something that gave up outside a consumer (e.g. one channel of an alert) in the dead-letter stream."""
        return _text(await self.redis.xadd(self.dead_key, _fields(payload), maxlen=self.maxlen, approximate=True))

    async def dead_letter(self, message: Message, error: str) -> None:
        """Move the message to the dead-letter stream. The deliveries counted are those its handler ran for: a
        message taken over past the limit (its consumer died while handling it) is not run again."""
        deliveries = min(message.deliveries, self.max_deliveries)
        record = {"data": json.dumps(message.payload, ensure_ascii=False), "error": error[:2000],
                  "source_id": message.id, "deliveries": str(deliveries), "at": f"{time.time():.3f}"}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_key, record, maxlen=self.maxlen, approximate=True)
            pipe.xack(self.key, self.group, message.id)
            if self.delete_on_ack:
                pipe.xdel(self.key, message.id)
            pipe.hdel(self.errors_key, message.id)
            await pipe.execute()
        self.errors.pop(message.id, None)
        log.error("stream %s: %s moved to dead-letter after %d deliveries: %s",
                  self.name, self.describe(message), deliveries, error)

    async def handle(self, handler: Handler, message: Message, *, burst: bool = False) -> bool:
        """Run one message through `handler`; True when it is finished (acked or dead-lettered).

        A transient failure on the last allowed delivery dead-letters the message at once. In burst mode a failed
        message is tried again in this run, after burst_backoff (doubled per delivery), not after claim_idle.
        One log line per failure. Whatever else the handler raises (a bug, a Redis error nothing mapped) is retried
        like a transient failure; it fails this message only, never the other messages in flight.
        """
        try:
            return await self._handle(handler, message, burst=burst)
        except Exception as exc:  # noqa: BLE001 - acking or recording failed (Redis): this message only
            log.error("stream %s: %s: could not record its outcome, left pending for redelivery: %s: %s", self.name,
                      self.describe(message), type(exc).__name__, exc, exc_info=not _is_redis_error(exc))
            return False

    async def _handle(self, handler: Handler, message: Message, *, burst: bool) -> bool:
        if message.deliveries > self.max_deliveries:
            await self.dead_letter(message, await self._last_error(message))
            return True
        try:
            await handler(message)
        except PermanentError as exc:
            await self.dead_letter(message, f"{type(exc).__name__}: {exc}")
            return True
        except Exception as exc:  # noqa: BLE001 - TransientError, and what nothing mapped (a bug, a Redis error)
            error = f"{type(exc).__name__}: {exc}"
            if message.deliveries >= self.max_deliveries:
                await self.dead_letter(message, error)
                return True
            await self._remember_error(message, error)
            when = ""
            if burst:
                delay = self._burst_delay(message, exc)
                heapq.heappush(self._retries, (time.monotonic() + delay, message.id,
                                               Message(message.id, message.payload, message.deliveries + 1)))
                when = f" in {delay:.1f}s"
            if isinstance(exc, TransientError):
                log.warning("stream %s: %s failed (delivery %d of %d), will retry%s: %s", self.name,
                            self.describe(message), message.deliveries, self.max_deliveries, when, exc)
            else:  # one line for a Redis error; with the traceback for anything else, which is a bug
                log.error("stream %s: %s failed unexpectedly (delivery %d of %d), will retry%s: %s", self.name,
                          self.describe(message), message.deliveries, self.max_deliveries, when, error,
                          exc_info=not _is_redis_error(exc))
            return False
        await self.ack(message)
        return True

    def _burst_delay(self, message: Message, exc: Exception) -> float:
        delay = self.burst_backoff * 2 ** (message.deliveries - 1)
        asked = getattr(exc, "delay", None)  # RetryAfter: the server's wait, within the same cap
        return min(max(delay, float(asked or 0.0)), BURST_BACKOFF_MAX)

    def _due_retries(self, limit: int) -> list[Message]:
        """Burst mode: up to `limit` messages whose next try is due."""
        due: list[Message] = []
        now = time.monotonic()
        while self._retries and len(due) < limit and self._retries[0][0] <= now:
            due.append(heapq.heappop(self._retries)[2])
        return due

    async def consume(self, handler: Handler, *, stop: asyncio.Event, burst: bool = False,
                      count: int = 10, concurrency: int = 1, block_ms: int = 1000) -> int:
        """Handle messages until `stop` is set (or, with burst, until nothing is left). Returns how many finished.

        Up to `concurrency` messages are in flight; a slot is refilled as soon as its message finishes (a sliding
        window, so one slow page never holds up the others). A handler failure leaves its message pending for
        redelivery. On return every message taken has finished; cancelling cancels those still running.
        """
        done = 0
        running: set[asyncio.Task[bool]] = set()
        in_flight: dict[asyncio.Task[bool], tuple[str, float]] = {}  # task -> (message id, when it started)
        last_reclaim = 0.0
        last_renew = time.monotonic()
        self._retries = []
        try:
            while not stop.is_set():
                free = concurrency - len(running)
                messages: list[Message] = []
                if free > 0:
                    messages = self._due_retries(free)
                if free > len(messages):
                    wait_ms = 0 if (burst or running) else block_ms  # never block Redis while slots are busy
                    # While busy, look for others' stale messages only every claim_idle/2: XAUTOCLAIM would also
                    # take back our own in-flight messages once they run longer than claim_idle.
                    reclaim = not running or time.monotonic() - last_reclaim > self.claim_idle_ms / 2000
                    last_reclaim = time.monotonic() if reclaim else last_reclaim
                    taken = {mid for mid, _ in in_flight.values()} | {m.id for m in messages} | {r[1] for r in self._retries}
                    want = min(free - len(messages), max(count, 1))
                    got = [m for m in await self.read(count=want, block_ms=wait_ms, reclaim=reclaim)
                           if m.id not in taken]
                    if reclaim and running and not got:  # it took back only our own in-flight ones: read new ones
                        got = [m for m in await self.read(count=want, block_ms=0, reclaim=False) if m.id not in taken]
                    messages += got
                if free > 0:
                    for m in messages:
                        task = asyncio.create_task(self.handle(handler, m, burst=burst))
                        running.add(task)
                        in_flight[task] = (m.id, time.monotonic())
                if running and (free <= len(messages) or not messages):
                    finished, running = await asyncio.wait(running, timeout=REFILL_POLL,
                                                           return_when=asyncio.FIRST_COMPLETED)
                    for task in finished:
                        in_flight.pop(task, None)
                    done += sum(task.result() for task in finished)
                    if in_flight and time.monotonic() - last_renew > self.claim_idle_ms / 1000 / RENEW_PER_IDLE:
                        last_renew = time.monotonic()
                        await self._renew([mid for mid, began in in_flight.values()
                                           if last_renew - began < RENEW_FOR * self.claim_idle_ms / 1000])
                elif not running and not messages:
                    if burst and not self._retries and await self._burst_finished():
                        break
                    if burst:
                        await asyncio.sleep(min(0.05, self.claim_idle_ms / 1000))
            if running:
                done += sum(await asyncio.gather(*running))
                running = set()
        finally:
            for task in running:  # cancelled or failed: the rest stay pending in Redis and are reclaimed
                task.cancel()
        return done

    async def _burst_finished(self) -> bool:
        """Nothing new and nothing pending for anyone: burst mode may return."""
        return await self.pending_count() == 0

    async def pending_count(self) -> int:
        info = await self._call_group(lambda: self.redis.xpending(self.key, self.group))
        return int(info["pending"] if isinstance(info, dict) else info[0])

    async def length(self) -> int:
        return int(await self.redis.xlen(self.key))

    async def lag(self, *, cap: int = 10_000) -> int | None:
        """Entries not yet delivered to the group (XINFO's lag on Redis 7+; counted up to `cap` on older servers),
        None if the group does not exist."""
        for group in await self.redis.xinfo_groups(self.key):
            if _text(group.get("name")) == self.group:
                lag = group.get("lag")
                if lag is not None:
                    return int(lag)
                last = _text(group.get("last-delivered-id") or "0-0")
                return len(await self.redis.xrange(self.key, min="(" + last, max="+", count=cap))
        return None

    async def dead_count(self) -> int:
        return int(await self.redis.xlen(self.dead_key))

    async def dead(self, count: int = 100) -> list[Message]:
        entries = await self.redis.xrevrange(self.dead_key, count=count)
        out = []
        for entry_id, fields in entries:
            msg = self._decode(entry_id, fields, int(fields.get("deliveries", 0) or 0))
            msg.payload.setdefault("_error", _text(fields.get("error", "")))
            out.append(msg)
        return out

    async def dead_all(self, *, batch: int = 500) -> list[Message]:
        """Every record of the dead-letter stream, oldest first (their ids are the dead-letter stream's)."""
        out: list[Message] = []
        start = "-"
        while True:
            entries = await self.redis.xrange(self.dead_key, min=start, max="+", count=batch)
            for entry_id, fields in entries:
                msg = self._decode(entry_id, fields, int(fields.get("deliveries", 0) or 0))
                msg.payload.setdefault("_error", _text(fields.get("error", "")))
                out.append(msg)
            if len(entries) < batch:
                return out
            start = "(" + _text(entries[-1][0])

    async def requeue_dead(self, dead: list[Message]) -> int:
        """Publish dead-lettered messages (from dead_all) again as new messages, and remove their dead records."""
        if not dead:
            return 0
        async with self.redis.pipeline(transaction=True) as pipe:  # one slot: the stream's hash tag
            for msg in dead:
                payload = {k: v for k, v in msg.payload.items() if not k.startswith("_")}
                pipe.xadd(self.key, _fields(payload), maxlen=self.maxlen, approximate=True)
            pipe.xdel(self.dead_key, *[msg.id for msg in dead])
            await pipe.execute()
        return len(dead)
