"""Issue 13.6: Redis restarts empty (no persistence) under a running instance.

Before: the schedule stayed empty (feedstate.sync_feeds ran only at start and reload), the feed was polled 0 times
and new items were lost, while /healthz said 200. Now the claim sees the schedule's marker gone, the instance
rebuilds the schedule from the configuration at once, the first poll of each feed marks the entries published before
the loss seen without alerting (their alerts went out before), and items published since are alerted; the log and
/healthz say that the state was lost.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from xml.sax.saxutils import escape

import aiohttp
import pytest

from fleet import (MATCHING, OTHERS, PAGES, RULE, Instance, RedisProcess, TimedServer, alert_urls, free_port,
                   stop_all, wait_started, wait_until)
from monitor.store import connect
from receivers import WebhookReceiver


def rss(items: list[tuple[str, str, datetime]]) -> bytes:
    body = "".join(f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>{escape(u)}</guid>"
                   f"<pubDate>{format_datetime(d)}</pubDate></item>" for t, u, d in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>News</title>'
            f"<link>http://127.0.0.1/</link><description>test</description>{body}</channel></rss>").encode()


@pytest.fixture
async def volatile_redis(tmp_path):
    """A redis-server without any persistence: a restart comes back empty."""
    server = RedisProcess(tmp_path / "redis", extra=("--appendonly", "no"))
    server.start()
    client = connect(server.url)
    yield server, client
    await client.aclose()
    server.stop(signal.SIGKILL)


async def healthz(session: aiohttp.ClientSession, port: int) -> dict:
    async with session.get(f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as resp:
        return {"status": resp.status, **await resp.json()}


def write_config(tmp_path, *, redis_url: str, prefix: str, feed_url: str, hook_url: str, port: int):
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "virus.yaml").write_text(RULE)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"""
data_dir: {tmp_path / 'data'}
redis: {{url: "{redis_url}", prefix: "{prefix}"}}
sources: {{feeds: [{{id: news, url: "{feed_url}", interval: 1}}]}}
fetch: {{allow_private_addresses: true, timeout: 5}}
rules: {{path: {rules}, watch: false}}
workers: {{processes: 1}}
channels: {{desk: {{urls: ["{hook_url}"]}}}}
alerts: {{default_channels: [desk], retry_base: 0.05, retry_max_delay: 0.2, poll_interval: 0.2, claim_idle: 1}}
pipeline: {{tick: 0.2, claim_idle: 2}}
service: {{listen: "127.0.0.1:{port}"}}
""")
    (tmp_path / "data").mkdir(exist_ok=True)  # the state directory systemd gives the unit
    return config


SEEN_BEFORE = [MATCHING[0], OTHERS[0], MATCHING[2]]
FRESH = [MATCHING[1], OTHERS[1]]  # published after the restart


@pytest.mark.parametrize("instance_running", [True, False], ids=["under-a-running-instance", "while-stopped"])
async def test_redis_restarted_empty_old_items_stay_quiet_new_items_are_alerted(tmp_path, volatile_redis,
                                                                               instance_running):
    server, redis = volatile_redis
    port = free_port()
    old = datetime.now(timezone.utc) - timedelta(days=2)
    async with TimedServer() as srv, WebhookReceiver() as hook, aiohttp.ClientSession() as session:
        for name in MATCHING + OTHERS:
            srv.route(f"/p/{name}", (PAGES / name).read_bytes(), content_type="text/html")
        items = [(n, srv.url(f"/p/{n}"), old) for n in SEEN_BEFORE]
        feed = srv.route("/feed.xml", rss(items), content_type="application/rss+xml")
        config = write_config(tmp_path, redis_url=server.url, prefix="lost:", feed_url=srv.url("/feed.xml"),
                              hook_url=hook.url(), port=port)
        inst = Instance(config, "solo", tmp_path)
        try:
            await wait_started([inst])
            await wait_until(lambda: len(hook.bodies) >= 2, timeout=60, what="the two alerts before the loss")
            assert (await healthz(session, port)).get("redis_state_lost_at") is None
            if not instance_running:
                await stop_all([inst])

            await redis.set("sentinel:before-the-loss", "1")  # (not the daemon's prefix: it never writes it again)
            server.stop(signal.SIGKILL)  # Redis restarts with nothing: no AOF, no RDB
            server.start()
            # (not dbsize() == 0: a running instance may already have written again by the time it is read)
            assert await redis.exists("sentinel:before-the-loss") == 0
            lost_at = time.monotonic()
            items += [(n, srv.url(f"/p/{n}"), datetime.now(timezone.utc)) for n in FRESH]
            feed.body = rss(items)
            if not instance_running:
                inst = Instance(config, "solo-again", tmp_path)
                await wait_started([inst])

            await wait_until(lambda: any(t > lost_at for t in srv.times.get("/feed.xml", [])), timeout=30,
                             what="the feed polled after the restart")
            await wait_until(lambda: len(hook.bodies) >= 3, timeout=60, what="the alert of the new item")
            await wait_until(lambda: len([t for t in srv.times["/feed.xml"] if t > lost_at]) >= 3, timeout=30,
                             what="more polls after the restart")
            await asyncio.sleep(1.0)  # time for any repeated alert to arrive
            health = await healthz(session, port)
        finally:
            await stop_all([inst])
        log = inst.log()
    # before: MATCHING[0] and MATCHING[2]; after: only the new item, the old ones are not alerted again
    assert sorted(alert_urls(hook.bodies)) == sorted(f"/p/{n}" for n in (MATCHING[0], MATCHING[2], MATCHING[1]))
    assert srv.requests[f"/p/{MATCHING[0]}"] == 1  # the baseline did not even fetch the pages seen before
    assert srv.requests[f"/p/{OTHERS[1]}"] == 1  # the new item that does not match was handled as new too
    assert health["status"] == 200 and health["redis_state_lost_at"], json.dumps(health)
    assert any("redis lost monitor's state" in w for w in health["warnings"]), health["warnings"]
    assert "marked seen without alerting" in log
    assert ("Redis lost monitor's state" if instance_running else "lost while no instance ran") in log
    assert log.count("Traceback") == 0
