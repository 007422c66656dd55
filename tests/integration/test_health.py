"""/healthz and /metrics of a running instance, JSON logs with ids, and operator alerts about failing feeds.

Decisions tested here: Redis unreachable, a stalled scheduler or no rules make /healthz answer 503; a failed rule
reload is reported (warnings, rules.last_reload_failed) but stays 200, because the previous rules keep matching.
"""

from __future__ import annotations

import asyncio

import json
import re
import signal
import time

import aiohttp
import pytest

from fleet import (FeedWorld, Instance, TimedServer, free_port, rss, settled, stop_all, wait_started, wait_until,
                   write_config)
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.errors import TransientError
from receivers import WebhookReceiver

COUNTERS = ["monitor_polls_total", "monitor_fetch_errors_total", "monitor_entries_total", "monitor_articles_total",
            "monitor_matches_total", "monitor_alerts_total", "monitor_deliveries_total", "monitor_rule_reloads_total",
            "monitor_worker_restarts_total", "monitor_loop_restarts_total"]
GAUGES = ["monitor_stream_length", "monitor_stream_pending", "monitor_stream_lag", "monitor_dead_letters",
          "monitor_redis_up", "monitor_last_poll_success_timestamp"]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one Prometheus sample, or None if absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        return resp.status, await resp.text()


async def test_healthz_and_metrics_of_a_running_instance(tmp_path, redis, keys, redis_url):
    port = free_port()
    async with TimedServer() as srv, WebhookReceiver() as hook, aiohttp.ClientSession() as session:
        world = FeedWorld.build(srv, feeds=2, extra_pages={"/p/gone.html": {"status": 404}})
        srv.route("/feed/broken.xml", status=500)
        config = write_config(tmp_path, redis_url=redis_url, prefix=keys.prefix, world=world, hook=hook.url(),
                              extra=f"pipeline: {{tick: 0.2}}\nservice: {{listen: '127.0.0.1:{port}'}}")
        text = config.read_text().replace("feeds: [", f'feeds: [{{id: broken, interval: 2, url: "{srv.url("/feed/broken.xml")}"}}, ')
        config.write_text(text)
        [inst] = instances = [Instance(config, "solo", tmp_path, args=("--log-format", "json"))]
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_started(instances)
            await wait_until(lambda: len(hook.bodies) >= len(world.matching), timeout=40, what="every alert")
            await wait_until(lambda: settled(redis, keys), timeout=30, what="streams drained")

            async def broken_feed_counted():
                return sample((await get(session, base + "/metrics"))[1], "monitor_fetch_errors_total",
                              kind="transient")

            await wait_until(broken_feed_counted, timeout=20, what="the broken feed's failure")
            status, body = await get(session, base + "/healthz")
            health = json.loads(body)
            assert status == 200, body
            assert health["ok"] and health["reasons"] == [] and health["redis"] is True
            assert health["rules"]["count"] == 1 and health["rules"]["last_reload_failed"] is False
            assert health["last_poll_success_age_s"] is not None and health["scheduler_tick_age_s"] >= 0
            status, text = await get(session, base + "/metrics")
            assert status == 200
            for name in COUNTERS + GAUGES:
                assert f"# HELP {name.removesuffix('_total')}" in text, name
            assert sample(text, "monitor_polls_total", result="ok") >= 2
            assert sample(text, "monitor_fetch_errors_total", kind="transient") >= 1  # the broken feed: HTTP 500
            assert sample(text, "monitor_entries_total", outcome="new") == len(world.pages) + 1
            assert sample(text, "monitor_articles_total", outcome="extracted") == len(world.pages)
            assert sample(text, "monitor_articles_total", outcome="failed") == 1  # the 404 page...
            assert sample(text, "monitor_articles_total", outcome="feed_text") == 1  # ...matched on its feed text
            assert sample(text, "monitor_matches_total", rule="virus-watch") == len(world.matching)
            assert sample(text, "monitor_deliveries_total", channel="desk", result="sent") == len(world.matching)
            assert sample(text, "monitor_stream_length", stream="entries") == len(world.pages) + 1
            assert sample(text, "monitor_stream_pending", stream="entries") == 0
            assert sample(text, "monitor_stream_lag", stream="entries") == 0
            assert sample(text, "monitor_dead_letters", stream="entries") == 0  # fetch_page auto: not dead-lettered
            assert sample(text, "monitor_stream_length", stream="alerts") == len(world.matching)
            assert sample(text, "monitor_redis_up") == 1

            # a broken rule file, then SIGHUP: the reload fails, the old rules stay, /healthz says so but stays 200
            (tmp_path / "rules" / "broken.yaml").write_text("rules:\n  - id: [unclosed\n")
            inst.proc.send_signal(signal.SIGHUP)

            async def reload_failed():
                status, body = await get(session, base + "/healthz")
                return (status, json.loads(body)) if json.loads(body)["rules"]["last_reload_failed"] else None

            status, health = await wait_until(reload_failed, timeout=10, what="the failed reload in /healthz")
            assert status == 200 and health["ok"]
            assert health["warnings"] and "broken.yaml" in health["rules"]["last_error"]
            assert health["rules"]["count"] == 1
            _, text = await get(session, base + "/metrics")
            assert sample(text, "monitor_rule_reloads_total", result="failed") == 1
        finally:
            codes = await stop_all(instances)
    assert codes == [0]
    records = [json.loads(line) for line in inst.log().splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    about_feeds = [r["msg"] for r in records if r["logger"] == "monitor.pipeline" and r["msg"].startswith("feed ")]
    assert about_feeds and all(re.match(r"feed (f\d|broken)\b", m) for m in about_feeds)
    assert any("rule virus-watch fired" in r["msg"] for r in records)


@pytest.fixture
async def two_daemons(tmp_path, redis, keys, redis_url):
    """Two in-process daemons (as two hosts would run) sharing one Redis; the operator channel is a webhook."""
    async with TimedServer() as srv, WebhookReceiver() as ops:
        srv.route("/feed.xml", rss("Feed", []), content_type="application/rss+xml")
        path = tmp_path / "monitor.yaml"
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "r.yaml").write_text("rules:\n  - {id: r, title: R, any: [zebra]}\n")
        path.write_text(f"""
data_dir: {tmp_path / 'data'}
redis: {{url: "{redis_url}", prefix: "{keys.prefix}"}}
sources: {{feeds: [{{id: wire, url: "{srv.url('/feed.xml')}", interval: 60}}]}}
rules: {{path: {rules}, watch: false}}
channels: {{ops: {{urls: ["{ops.url()}"]}}}}
service: {{listen: null, feed_failing_alert_after: 1s, operator_channel: ops}}
""")
        daemons = [Daemon(load_config(str(path), environ={})) for _ in range(2)]
        for daemon in daemons:
            await daemon.start()
        yield daemons, ops
        for daemon in daemons:
            await daemon.close()


async def test_a_feed_failing_longer_than_the_limit_raises_one_operator_alert_and_one_on_recovery(two_daemons):
    daemons, ops = two_daemons
    store = daemons[0].pipeline.feed_store

    async def fail_again() -> None:
        await store.record_error("wire", TransientError("http://example.org/feed: HTTP 500"), now=time.time(),
                                 interval=60)

    async def both_check() -> int:
        for daemon in daemons:
            await daemon.jobs.feed_health()
        for daemon in daemons:  # operator alerts go through the outbox: deliver what was queued
            await daemon.pipeline.deliverer.run(asyncio.Event(), burst=True)
        return len(ops.bodies)

    await fail_again()
    assert await both_check() == 0  # failing, but not yet for long
    await wait_until(both_check, timeout=10, what="the operator alert")
    for _ in range(3):  # still failing, checked again by both instances: no second alert
        await fail_again()
        await both_check()
    [alert] = ops.bodies
    assert "wire" in alert["title"] and "failing" in alert["title"]
    assert "HTTP 500" in alert["message"]
    await store.record_success("wire", now=time.time(), interval=60, jitter=0, etag=None, last_modified=None,
                               new_entries=0)
    await both_check()
    await both_check()
    assert [b["title"] for b in ops.bodies] == ["monitor: feed wire failing", "monitor: feed wire recovered"]


async def test_healthz_is_503_with_reasons_when_the_scheduler_stalls(two_daemons):
    daemon = two_daemons[0][0]
    daemon.live.heartbeat = time.monotonic()
    ok, body = daemon.health()
    assert ok and body["reasons"] == []
    daemon.live.heartbeat = time.monotonic() - 3600
    ok, body = daemon.health()
    assert not ok and any("not ticked" in r for r in body["reasons"])
    daemon.live.redis_unreachable(ConnectionError("gone"))
    ok, body = daemon.health()
    assert not ok and "redis unreachable" in body["reasons"]
