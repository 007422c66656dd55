"""The store's shared parts on a real Redis: the one claim-with-lease script, the operator-alert markers, and the
client's error mapping and cancels."""

from __future__ import annotations

import asyncio

import pytest

from monitor.store import LeaseClaim
from monitor.store.ops import OPS_MARKER_TTL, OpsMarkers

NOW = 1_700_000_000.0


async def test_claim_lease_takes_due_members_once_until_the_lease_ends(redis, keys):
    zset = keys("test", "due")
    await redis.zadd(zset, {"a": NOW - 5, "b": NOW - 1, "c": NOW + 100})
    one, two = LeaseClaim(redis), LeaseClaim(redis)  # two claimers
    assert await one.due(zset, now=NOW, lease=30, count=10) == ["a", "b"]  # due ones, oldest first
    assert await two.due(zset, now=NOW, lease=30, count=10) == []  # leased: nobody else gets them
    assert await redis.zscore(zset, "a") == NOW + 30
    assert await two.due(zset, now=NOW + 30, lease=30, count=1) == ["a"]  # the lease ran out; count respected


async def test_claim_lease_with_a_guard_claims_nothing_while_it_is_missing_or_busy(redis, keys):
    zset, guard = keys("test", "due"), keys("test", "marker")
    await redis.zadd(zset, {"a": NOW - 5})
    claim = LeaseClaim(redis)
    assert await claim.due_guarded(zset, guard, now=NOW, lease=30, count=10) == (None, [])
    await redis.set(guard, "rebuilding")
    assert await claim.due_guarded(zset, guard, now=NOW, lease=30, count=10, busy="rebuilding") == ("rebuilding", [])
    await redis.set(guard, "epoch-1")
    assert await claim.due_guarded(zset, guard, now=NOW, lease=30, count=10, busy="rebuilding") == ("epoch-1", ["a"])
    assert await redis.zscore(zset, "a") == NOW + 30


async def test_claim_lease_of_listed_members_ignores_their_score_and_adds_none(redis, keys):
    zset = keys("test", "due")
    await redis.zadd(zset, {"a": NOW + 500, "b": NOW + 900})
    assert await LeaseClaim(redis).listed(zset, ["b", "gone", "a"], now=NOW, lease=60) == ["b", "a"]
    assert await redis.zrange(zset, 0, -1, withscores=True) == [("a", NOW + 60), ("b", NOW + 60)]


async def test_ops_markers_let_one_instance_send_each_alert(redis, keys):
    one, two = OpsMarkers(redis, keys), OpsMarkers(redis, keys)
    assert await one.failing_since("f", NOW) == NOW
    assert await two.failing_since("f", NOW + 60) == NOW  # the first sighting counts, whoever saw it
    assert 0 < await redis.ttl(keys.ops_marker("failing", "f")) <= OPS_MARKER_TTL
    assert await one.claim_alert("f", NOW) and not await two.claim_alert("f", NOW)
    await one.release_alert("f")  # not sent
    assert await two.claim_alert("f", NOW + 1)
    await one.failing_since("g", NOW)  # failing, never alerted
    assert await one.clear_recovered(["f", "g", "h"]) == ["f"]  # only f's alert was sent: only f "recovered"
    assert await two.clear_recovered(["f"]) == []  # the other instance says nothing
    assert not await redis.exists(keys.ops_marker("failing", "f"), keys.ops_marker("failing", "g"))


async def test_ops_markers_of_failing_articles(redis, keys):
    one, two = OpsMarkers(redis, keys), OpsMarkers(redis, keys)
    assert await one.claim_articles("f", NOW) and not await two.claim_articles("f", NOW)
    await one.release_articles("f")
    assert await two.claim_articles("f", NOW)
    assert await one.clear_articles("f") and not await two.clear_articles("f")


@pytest.mark.parametrize("raise_on_error", [True, False])
async def test_a_pipeline_error_is_mapped_raised_or_returned(redis, keys, raise_on_error):
    from monitor.errors import StoreDataError

    await redis.set(keys("test", "s"), "text")
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(keys("test", "t"), "1")
        pipe.hget(keys("test", "s"), "f")  # WRONGTYPE
        if raise_on_error:
            with pytest.raises(StoreDataError):
                await pipe.execute()
            return
        ok, error = await pipe.execute(raise_on_error=False)
    assert ok is True and isinstance(error, StoreDataError)


async def test_scripts_reload_themselves_after_the_script_cache_is_flushed(redis, keys):
    """redis-py reloads a script on NOSCRIPT by catching its own class: the mapped error must still be one."""
    zset = keys("test", "due")
    await redis.zadd(zset, {"a": NOW - 5})
    claim = LeaseClaim(redis)
    assert await claim.due(zset, now=NOW, lease=30, count=10) == ["a"]
    await redis.script_flush()
    assert await claim.due(zset, now=NOW + 30, lease=30, count=10) == ["a"]


async def test_a_full_redis_is_store_full_a_transient_error(tmp_path, keys):
    """A Redis at maxmemory with noeviction refuses writes with OOM: retry later, not a broken message."""
    from monitor.errors import StoreFull, TransientError
    from monitor.store import EmbeddedRedis, connect
    from monitor.store.ops import OpsMarkers

    server = EmbeddedRedis(tmp_path / "full")
    client = connect(server.start())
    try:
        await client.config_set("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory", "1")  # below what the server already uses: every write is refused
        with pytest.raises(StoreFull) as info:
            await OpsMarkers(client, keys).claim_alert("f", NOW)
        assert isinstance(info.value, TransientError) and "maxmemory" in str(info.value)
    finally:
        await client.aclose()
        server.stop()


@pytest.mark.parametrize("kind", ["command", "pipeline", "script"])
async def test_a_cancel_that_comes_during_a_redis_call_is_never_lost(redis, keys, kind):
    """A task looping over Redis calls is cancelled 120 times, at 1 to 12 loop turns after its start: it must end
    with CancelledError each time. redis-py alone (Python 3.11's wait_for around every send) lost about 4 in 10 of
    these cancels, and the cancelled task went on calling."""
    key = keys("test", "cancel")
    script = redis.register_script("return redis.call('INCR', KEYS[1])")

    async def call() -> None:
        if kind == "command":
            await redis.incr(key)
        elif kind == "pipeline":
            async with redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.get(key)
                await pipe.execute()
        else:
            await script(keys=[key])

    went_on = []
    for attempt in range(120):
        cancelled = asyncio.Event()

        async def loop() -> None:
            while True:
                await call()
                if cancelled.is_set():  # a call ended after the cancel and no CancelledError came out
                    went_on.append(attempt)
                    return

        task = asyncio.create_task(loop())
        for _ in range(1 + attempt % 12):
            await asyncio.sleep(0)
        task.cancel()
        cancelled.set()
        [outcome] = await asyncio.gather(task, return_exceptions=True)
        assert isinstance(outcome, asyncio.CancelledError) or attempt in went_on
    assert went_on == []
