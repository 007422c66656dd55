"""Redis Streams work sharing: ack after handling, reclaim from dead consumers, dead-letter for poison messages."""

from __future__ import annotations

import asyncio

from monitor.errors import PermanentError, TransientError
from monitor.streams import Message, Stream


def stream(redis, keys, consumer: str, **kw) -> Stream:
    kw.setdefault("claim_idle", 0.05)
    return Stream(redis, keys, "work", consumer=consumer, **kw)


async def test_every_message_is_handled_once_by_two_consumers(redis, keys):
    a, b = stream(redis, keys, "a"), stream(redis, keys, "b")
    for i in range(40):
        await a.publish({"n": i})
    seen: list[tuple[str, int]] = []

    def handler(name):
        async def handle(msg: Message) -> None:
            seen.append((name, msg.payload["n"]))
            await asyncio.sleep(0)
        return handle

    stop = asyncio.Event()
    await asyncio.gather(a.consume(handler("a"), stop=stop, burst=True, count=3),
                         b.consume(handler("b"), stop=stop, burst=True, count=3))
    assert sorted(n for _, n in seen) == list(range(40))
    assert await a.pending_count() == 0


async def test_pending_message_of_a_dead_consumer_is_taken_over(redis, keys):
    dead, alive = stream(redis, keys, "dead"), stream(redis, keys, "alive")
    await dead.publish({"n": 1})
    taken = await dead.read(count=10, block_ms=0)  # read, then "crash" without ack
    assert [m.payload for m in taken] == [{"n": 1}]
    await asyncio.sleep(0.1)
    got: list[Message] = []

    async def handle(msg: Message) -> None:
        got.append(msg)

    await alive.consume(handle, stop=asyncio.Event(), burst=True)
    assert [m.payload for m in got] == [{"n": 1}]
    assert got[0].deliveries == 2
    assert await alive.pending_count() == 0


async def test_transient_failure_is_retried_then_succeeds(redis, keys):
    s = stream(redis, keys, "c")
    await s.publish({"n": 7})
    attempts = []

    async def flaky(msg: Message) -> None:
        attempts.append(msg.deliveries)
        if len(attempts) < 3:
            raise TransientError("receiver down")

    await s.consume(flaky, stop=asyncio.Event(), burst=True)
    assert attempts == [1, 2, 3]
    assert await s.dead() == []


async def test_poison_message_ends_in_dead_letter_after_max_deliveries(redis, keys):
    s = stream(redis, keys, "c", max_deliveries=3)
    await s.publish({"poison": True})
    await s.publish({"fine": True})
    handled = []

    async def handle(msg: Message) -> None:
        if msg.payload.get("poison"):
            raise TransientError("cannot parse this one")
        handled.append(msg.payload)

    await s.consume(handle, stop=asyncio.Event(), burst=True)
    dead = await s.dead()
    assert handled == [{"fine": True}]
    assert [m.payload["poison"] for m in dead] == [True]
    assert "cannot parse this one" in dead[0].payload["_error"]
    assert await s.pending_count() == 0


async def test_permanent_error_dead_letters_at_once(redis, keys):
    s = stream(redis, keys, "c")
    await s.publish({"n": 1})
    calls = []

    async def handle(msg: Message) -> None:
        calls.append(msg.id)
        raise PermanentError("not an article")

    await s.consume(handle, stop=asyncio.Event(), burst=True)
    assert len(calls) == 1
    assert (await s.dead())[0].payload["_error"] == "PermanentError: not an article"


async def test_lost_consumer_group_is_recreated(redis, keys):
    s = stream(redis, keys, "c")
    await s.publish({"n": 1})
    await redis.xgroup_destroy(s.key, s.group)
    await s.publish({"n": 2})
    got = []

    async def handle(msg: Message) -> None:
        got.append(msg.payload["n"])

    await s.consume(handle, stop=asyncio.Event(), burst=True)
    assert got == [1, 2]


async def test_a_redis_error_or_a_bug_in_one_handler_does_not_cancel_the_others_in_flight(redis, keys):
    """A real WRONGTYPE from Redis in one message's handler, a plain bug in another's: the messages in flight beside
    them still finish and are acked; the failing ones end in the dead-letter stream with their errors (the Redis
    error at once, as the store maps WRONGTYPE to a permanent data error; the bug after its retries)."""
    s = stream(redis, keys, "w", max_deliveries=2, burst_backoff=0.01)
    wrong = keys("test", "a-string")
    await redis.set(wrong, "not a hash")
    for n in range(5):
        await s.publish({"n": n})
    release = asyncio.Event()
    finished: list[int] = []
    tries: list[int] = []

    async def handle(msg: Message) -> None:
        n = msg.payload["n"]
        if n == 0:
            await redis.hset(wrong, "field", "value")  # Redis answers WRONGTYPE
        if n == 1:
            tries.append(msg.deliveries)
            raise RuntimeError("a bug in a stage")
        await release.wait()  # the others are in flight while messages 0 and 1 fail
        finished.append(n)

    async def let_go() -> None:
        await asyncio.sleep(0.3)
        release.set()

    done, _ = await asyncio.gather(s.consume(handle, stop=asyncio.Event(), burst=True, concurrency=5), let_go())
    assert sorted(finished) == [2, 3, 4]
    assert done == 5 and await s.pending_count() == 0
    assert tries == [1, 2]  # the bug was retried like a transient failure, up to max_deliveries
    dead = {m.payload["n"]: m.payload["_error"] for m in await s.dead()}
    assert "WRONGTYPE" in dead[0] and dead[1] == "RuntimeError: a bug in a stage"
    deliveries = {m.payload["n"]: m.deliveries for m in await s.dead()}
    assert deliveries == {0: 1, 1: 2}  # the mapped WRONGTYPE is permanent: dead at its first delivery


async def test_a_stream_that_deletes_on_ack_keeps_only_the_work_left(redis, keys):
    s = stream(redis, keys, "big", delete_on_ack=True, max_deliveries=1)
    for n in range(5):
        await s.publish({"n": n})

    async def handle(msg: Message) -> None:
        if msg.payload["n"] == 4:
            raise PermanentError("poison")

    assert await s.consume(handle, stop=asyncio.Event(), burst=True) == 5
    assert await s.length() == 0  # handled and dead-lettered messages are gone from the stream itself
    assert [m.payload["n"] for m in await s.dead()] == [4]


async def test_a_message_running_longer_than_claim_idle_does_not_keep_new_ones_from_being_read(redis, keys):
    """Taking back stale messages also finds our own long-running one: the consumer then reads new messages in the
    same turn, so a free slot takes the next message while the first still runs."""
    s = stream(redis, keys, "a")  # claim_idle 0.05 s: every turn of the loop looks for stale messages
    await s.publish({"n": 0})
    second_done, handled = asyncio.Event(), []

    async def handle(msg: Message) -> None:
        if msg.payload["n"] == 0:
            await s.publish({"n": 1})  # arrives while this one runs, for longer than claim_idle
            await asyncio.wait_for(second_done.wait(), 10)  # one slot at a time would fail here
        else:
            second_done.set()
        handled.append(msg.payload["n"])

    stop = asyncio.Event()
    consumer = asyncio.create_task(s.consume(handle, stop=stop, concurrency=2))
    try:
        await asyncio.wait_for(second_done.wait(), 10)
        while len(handled) < 2:
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await consumer
    assert handled == [1, 0]
    assert await s.pending_count() == 0


async def test_a_live_consumer_keeps_its_long_running_message_from_others(redis, keys):
    """A message handled for several claim_idle periods stays with the live consumer that works on it (it renews it
    with XCLAIM ... JUSTID): the other consumer, looking for stale messages all the while, never takes it, and its
    delivery count stays 1. A dead consumer renews nothing, so its messages are still taken over."""
    a, b = stream(redis, keys, "a", claim_idle=0.3), stream(redis, keys, "b", claim_idle=0.3)
    await a.publish({"n": 0})
    handled: list[tuple[str, int]] = []

    def handler(name):
        async def handle(msg: Message) -> None:
            handled.append((name, msg.deliveries))
            if name == "a":
                await asyncio.sleep(1.5)  # five claim_idle periods
        return handle

    stop = asyncio.Event()
    first = asyncio.create_task(a.consume(handler("a"), stop=stop))
    while not handled:
        await asyncio.sleep(0.01)
    second = asyncio.create_task(b.consume(handler("b"), stop=stop))
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(first, second)
    assert handled == [("a", 1)]
    assert await a.pending_count() == 0
