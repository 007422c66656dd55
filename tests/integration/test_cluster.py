"""The pipeline against a local three-node Redis Cluster (`redis.url: redis+cluster://host:port`).

Keys that a Lua script or a transaction touches together share a hash tag ({feeds}, {stories}, {alerts}, one per
stream), so every multi-key operation stays in one slot. Skipped with a reason if no cluster can be started here,
except under CI, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest

from fleet import MONITOR_BIN, FeedWorld, LocalCluster, TimedServer, alert_urls, write_config
from monitor.feedstate import FeedStore
from monitor.models import Feed
from monitor.store import Keys, connect
from monitor.streams import Stream
from receivers import WebhookReceiver

PREFIX = "cl:"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    nodes = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        nodes.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        nodes.stop()
        if os.environ.get("CI"):
            pytest.fail(f"cannot start a local Redis Cluster in CI: {exc}")
        pytest.skip(f"cannot start a local Redis Cluster here: {exc}")
    yield nodes
    nodes.stop()


@pytest.fixture
async def client(cluster):
    redis = connect(cluster.url)
    yield redis
    await redis.aclose()


async def test_connect_gives_a_cluster_client_for_a_cluster_url(cluster, client):
    from redis.asyncio.cluster import RedisCluster

    assert isinstance(client, RedisCluster)
    await client.ping()
    assert len(client.get_nodes()) == 3


async def test_cluster_errors_come_out_mapped_from_commands_and_pipelines(client):
    from monitor.errors import StoreDataError

    keys = Keys(PREFIX + "mapped:")
    store = FeedStore(client, keys)
    await client.set(keys.feed("a"), "not a hash")
    try:
        with pytest.raises(StoreDataError):
            await store.record_error("a", RuntimeError("x"), now=1.0, interval=60)  # one command
        with pytest.raises(StoreDataError):
            await store.state("a")  # a cluster pipeline
    finally:
        await client.delete(keys.feed("a"))


async def run_once(config, timeout: float = 120) -> tuple[int, str]:
    """`monitor run --once` without blocking the event loop (the feed server and the webhook live in it)."""
    proc = await asyncio.create_subprocess_exec(
        str(MONITOR_BIN), "run", "--once", "--config", str(config), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, err.decode(errors="replace")


async def test_one_cycle_on_a_cluster_alerts_once_and_records_a_bad_page(cluster, client, tmp_path):
    keys = Keys(PREFIX + "cycle:")
    gone = "/p/gone.html"
    async with TimedServer() as srv, WebhookReceiver() as hook:
        world = FeedWorld.build(srv, feeds=3, extra_pages={gone: {"status": 404}})
        # the same page under a second URL: same story, so the outbox takes its update path (WATCH on {alerts})
        copy = "/p/copy-of-" + world.matching[0].rsplit("/", 1)[-1]
        srv.route(copy, srv.routes[world.matching[0]].body, content_type="text/html")
        feed = srv.routes[world.feeds[0]]
        feed.body = feed.body.replace(b"</channel>", f"<item><title>copy</title><link>{srv.url(copy)}</link>"
                                                     f"</item></channel>".encode())
        config = write_config(tmp_path, redis_url=cluster.url, prefix=keys.prefix, world=world, hook=hook.url())
        code, first = await run_once(config)
        assert code == 0, first[-3000:]
        await hook.wait_for(len(world.matching))
        assert sorted(alert_urls(hook.bodies)) == sorted(world.matching)
        assert srv.requests[copy] == 1
        assert await Stream(client, keys, "entries", consumer="t").dead() == []  # fetch_page auto: feed text
        failed = [await client.hget(keys("articles", f"f{n}"), "last_error_url") for n in range(3)]
        assert [url for url in failed if url] == [srv.url(gone)]
        code, second = await run_once(config)
        assert code == 0, second[-3000:]
        assert len(hook.bodies) == len(world.matching)  # nothing new, nothing sent again
    assert "CROSSSLOT" not in first + second
    assert "Traceback" not in first + second, first[-3000:]


async def test_feed_claims_and_stream_reclaims_work_on_a_cluster(client):
    keys = Keys(PREFIX + "claims:")
    store = FeedStore(client, keys)
    feeds = [Feed(id=f"f{n}", url=f"https://example.org/{n}.xml", name="", kind="feed", interval=60) for n in range(4)]
    now = time.time()
    await store.sync_feeds(feeds, now=now - 100)
    due = await store.claim_due(now=now, limit=10, lease=30)
    assert sorted(due) == ["f0", "f1", "f2", "f3"]
    assert await store.claim_due(now=now, limit=10, lease=30) == []  # leased: nobody else gets them
    await store.record_success("f0", now=now, interval=60, jitter=0, etag='"e"', last_modified=None, new_entries=1)
    assert (await store.state("f0")).etag == '"e"'

    stream = Stream(client, keys, "work", consumer="a", claim_idle=0.05, max_deliveries=2)
    taker = Stream(client, keys, "work", consumer="b", claim_idle=0.05, max_deliveries=2)
    await stream.publish({"n": 1})
    [msg] = await stream.read(count=1, block_ms=0)  # consumer a takes it and dies
    time.sleep(0.1)
    [again] = await taker.read(count=1, block_ms=0)  # b reclaims it (XAUTOCLAIM)
    assert again.id == msg.id and again.deliveries == 2
    time.sleep(0.1)
    [third] = await taker.read(count=1, block_ms=0)
    async def never(message):
        raise AssertionError("a message delivered too often is not handled again")

    await taker.handle(never, third)  # delivered too often: moved to the dead-letter stream atomically
    assert [m.payload["n"] for m in await taker.dead()] == [1]
    assert await taker.pending_count() == 0


async def test_the_daemons_periodic_jobs_run_on_a_cluster(cluster, client, tmp_path):
    """Claiming due feeds, digests, the outbox sweep, retention, gauges and operator checks: no cross-slot errors."""
    from monitor.config import load_config
    from monitor.daemon import Daemon

    keys = Keys(PREFIX + "jobs:")
    async with TimedServer() as srv, WebhookReceiver() as hook:
        world = FeedWorld.build(srv, feeds=1)
        config = write_config(tmp_path, redis_url=cluster.url, prefix=keys.prefix, world=world, hook=hook.url(),
                              extra="service: {listen: null, operator_channel: desk, feed_failing_alert_after: 1h}")
        daemon = Daemon(load_config(str(config), environ={}))
        await daemon.start()
        try:
            pipeline = daemon.pipeline
            assert await pipeline.feed_store.claim_due(now=time.time() + 60, limit=5, lease=30) == ["f0"]
            await pipeline.feed_store.record_error("f0", RuntimeError("boom"), now=time.time(), interval=60)
            await daemon.jobs.digests()
            await pipeline.outbox.republish_stale(older_than=0)
            await daemon.jobs.retention()
            await daemon.jobs.refresh_gauges()
            await daemon.jobs.feed_health()
            ok, body = daemon.health()
            assert ok, body
        finally:
            await daemon.close()
    assert await client.exists(keys("ops", "failing", "f0"))
