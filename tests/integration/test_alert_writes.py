"""The alert store's transactions without WATCH are one script call (store/scripts/alert_writes.lua): they leave
what the MULTI of the same commands left, keys, values and expiries."""

from __future__ import annotations

import pytest

from monitor.models import Alert
from monitor.store import Keys, connect
from monitor.store.alerts import AlertStore, AlertWrites


async def dump(client, prefix: str) -> dict[str, tuple[str, object, bool]]:
    """Every key under `prefix` (named without it): its type, its value and whether it expires."""
    found = {}
    async for key in client.scan_iter(match=prefix + "*", count=1000):
        kind = await client.type(key)
        read = {"string": client.get, "hash": client.hgetall, "set": client.smembers,
                "zset": lambda k: client.zrange(k, 0, -1, withscores=True), "list": lambda k: client.lrange(k, 0, -1)}
        found[key[len(prefix):]] = (kind, await read[kind](key), await client.ttl(key) > 0)
    return found


def alert(n: int) -> Alert:
    return Alert(id=f"a{n}", rule_id="r", story_id="s", article={"url": f"https://x.example/{n}", "title": "é"},
                 match={"rule_id": "r"})


def writes(store: AlertStore, target) -> None:
    """What create_story, publish, set_delivery, mark_sending, record_outcome and requeue write, on `target`."""
    now = 1_700_000_000.25
    store._write_story(target, "b1", {"title": "x", "n": 2}, updates=0, last="a1")
    store._write_alert(target, alert(1), base_id="b1", now=now)
    store._write_alert(target, alert(2), base_id="b1", now=now + 1.5)
    target.hset(store.ak.alert("a1"), "published", "1")
    target.zrem(store.ak.unpublished, "a1")
    target.hset(store.ak.inflight("a1", "mail"), "0", '{"status": "sending"}')
    target.expire(store.ak.inflight("a1", "mail"), store.retention)
    target.zadd(store.ak.due("mail"), {"a1": now, "a2": now + 2})
    target.zadd(store.ak.due("mail"), {"a1": now + 60}, nx=True)  # kept: a1 is there
    target.delete(store.ak.inflight("a1", "mail"))
    target.zrem(store.ak.due("mail"), "a2", "a3")
    target.hset(store.ak.deliveries("a1"), mapping={"mail": '{"status":"sent"}', "chat": "{}"})
    target.srem(store.ak.digests_open, "none")


async def test_one_script_call_leaves_what_the_multi_left(redis_url: str, keys: Keys):
    client = connect(redis_url)
    try:
        by_multi = AlertStore(client, Keys(prefix=keys.prefix + "multi:"))
        by_script = AlertStore(client, Keys(prefix=keys.prefix + "script:"))
        async with client.pipeline(transaction=True) as pipe:
            writes(by_multi, pipe)
            await pipe.execute()
        queued = AlertWrites()
        writes(by_script, queued)
        await by_script._apply(queued)
        before, after = await dump(client, keys.prefix + "multi:"), await dump(client, keys.prefix + "script:")
        assert after == before and len(after) >= 6
        assert after["{alerts}:due:mail"][1] == [("a1", 1_700_000_000.25)]
    finally:
        async for key in client.scan_iter(match=keys.prefix + "*"):
            await client.delete(key)
        await client.aclose()


async def test_a_write_redis_refuses_fails_the_call_with_the_stores_error(redis, keys: Keys):
    """A write Redis refuses (a key of another type) fails the call with the store's error; the daemon's handlers
    treat it as they treated a failed MULTI (the step is retried)."""
    from monitor.errors import MonitorError

    store = AlertStore(redis, keys)
    await redis.set(store.ak.alert("a1"), "not a hash")
    queued = AlertWrites()
    store._write_alert(queued, alert(1), base_id="b1", now=1.0)
    with pytest.raises(MonitorError):
        await store._apply(queued)
