"""Per-host politeness shared through Redis (monitor/hosts.py): one limit for every instance, slot leases that a dead
instance cannot keep, and Retry-After / 429 holding back every request to the host, feeds and pages, everywhere.

Two Fetchers on one Redis stand for two instances; the counts are taken at the loopback server.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from fleet import RULE, Instance, TimedServer, rss, stop_all, wait_started, wait_until
from receivers import WebhookReceiver
from servers import LoopbackServer

from monitor.errors import HostHeld, RetryAfter
from monitor.hosts import SharedHosts
from monitor.net import Fetcher
from monitor.settings import FetchSettings

RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Loop</title>'
       b"<item><title>One</title><link>http://example.org/1</link></item></channel></rss>")


def settings(**kw) -> FetchSettings:
    return FetchSettings(**{"allow_private_addresses": True, "timeout": 5.0, **kw})


@pytest.fixture
async def server():
    async with LoopbackServer() as srv:
        yield srv


def instance(redis, keys, *, per_host: int = 4, lease: float = 15.0, **kw) -> Fetcher:
    return Fetcher(settings(per_host=per_host, **kw),
                   shared=SharedHosts(redis, keys, per_host=per_host, lease=lease))


async def test_two_instances_together_never_exceed_per_host(server, redis, keys):
    server.route("/slow", RSS, delay=0.2)
    a, b = instance(redis, keys, per_host=3), instance(redis, keys, per_host=3)
    async with a, b:
        await asyncio.gather(*(f.get(server.url("/slow")) for f in (a, b) for _ in range(8)))
    assert server.requests["/slow"] == 16
    assert server.peak_in_flight == 3  # each alone would allow 3: together 6 without the shared limit
    assert not await redis.zcard(keys.host_slots(f"127.0.0.1:{server.port}"))  # every slot given back


async def test_a_slot_of_a_dead_instance_is_free_again_when_its_lease_ends(server, redis, keys):
    host = f"127.0.0.1:{server.port}"
    dead = SharedHosts(redis, keys, per_host=2, lease=1.0)
    for _ in range(2):  # the dead instance took both slots and never gave them back
        token, held = await dead.acquire(host)
        assert token and not held
    server.route("/feed.xml", RSS)
    async with instance(redis, keys, per_host=2) as alive:
        started = time.monotonic()
        page = await alive.get(server.url("/feed.xml"))
        waited = time.monotonic() - started
    assert page.status == 200
    assert waited >= 0.5  # it had to wait for the leases (1 s) to run out; it did not wait forever either


async def test_a_waiter_cancelled_as_a_slot_comes_free_is_cancelled(redis, keys):
    """The cancel comes between the release waking the waiter and the waiter running (on Python 3.11 wait_for
    returned then, and the cancelled waiter took the slot); every time, the waiter stops and takes nothing."""
    host = "cancel.example:80"
    hosts = SharedHosts(redis, keys, per_host=1, lease=15.0)
    for _ in range(20):
        token, _held = await hosts.acquire(host)
        waiter = asyncio.create_task(hosts.acquire(host))
        await wait_until(lambda: host in hosts._released, timeout=5, every=0.005)  # it found the host full, waits
        release = asyncio.create_task(hosts.release(host, token))
        await asyncio.sleep(0)  # the release's first step: the waiter is woken, has not run yet
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await release
        assert not await redis.zcard(keys.host_slots(host))  # the cancelled waiter holds no slot


@pytest.mark.parametrize("status, retry_after, held", [(503, "120", 120), (429, "120", 120), (429, None, 60)])
async def test_retry_after_on_a_page_holds_back_every_request_to_the_host_on_every_instance(
        server, redis, keys, status, retry_after, held):
    server.route("/article.html", status=status, retry_after=retry_after)
    server.route("/feed.xml", RSS)
    a, b = instance(redis, keys), instance(redis, keys)
    async with a, b:
        with pytest.raises(RetryAfter) as first:
            await a.get(server.url("/article.html"))
        assert not isinstance(first.value, HostHeld) and first.value.delay == held
        for fetcher in (a, b):  # the same page again, and the site's feed, from both instances
            for path in ("/article.html", "/feed.xml"):
                with pytest.raises(HostHeld) as again:
                    await fetcher.get(server.url(path))
                assert held - 5 < again.value.delay <= held
                assert server.url(path) in str(again.value)
    assert server.requests == {"/article.html": 1}  # nothing more reached the server
    ttl = await redis.pttl(keys.host_hold(f"127.0.0.1:{server.port}"))
    assert (held - 5) * 1000 < ttl <= held * 1000  # the hold key goes away by itself


async def test_a_hold_is_capped_at_max_retry_after_and_then_requests_go_again(server, redis, keys):
    server.route("/busy", status=503, retry_after="86400")
    a, b = instance(redis, keys, max_retry_after="1s"), instance(redis, keys, max_retry_after="1s")
    async with a, b:
        with pytest.raises(RetryAfter):
            await a.get(server.url("/busy"))
        with pytest.raises(HostHeld):
            await b.get(server.url("/busy"))
        assert server.requests["/busy"] == 1
        await asyncio.sleep(1.2)
        server.route("/busy", RSS)
        assert (await b.get(server.url("/busy"))).status == 200
    assert server.requests["/busy"] == 2


async def test_without_shared_limits_a_hold_still_holds_within_the_fetcher(server):
    server.route("/busy", status=429, retry_after="30")
    server.route("/other", RSS)
    async with Fetcher(settings()) as fetcher:
        with pytest.raises(RetryAfter):
            await fetcher.get(server.url("/busy"))
        with pytest.raises(HostHeld, match="not requested"):
            await fetcher.get(server.url("/other"))
    assert server.requests == {"/busy": 1}


async def test_a_page_answering_503_retry_after_is_not_asked_again_and_its_site_is_held_back(tmp_path, redis, keys,
                                                                                             redis_url):
    """Issue 13.4: the daemon asked the page again every few seconds (each redelivery of its entry)."""
    async with TimedServer() as busy_site, TimedServer() as other_site, WebhookReceiver() as hook:
        busy_site.route("/p/busy.html", status=503, retry_after="120")
        busy_site.route("/feed.xml", rss("Busy", [("Busy", busy_site.url("/p/busy.html"))]),
                        content_type="application/rss+xml")
        other_site.route("/feed.xml", rss("Other", []), content_type="application/rss+xml")
        config = tmp_path / "monitor.yaml"
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "virus.yaml").write_text(RULE)
        config.write_text(f"""
data_dir: {tmp_path / 'data'}
redis: {{url: "{redis_url}", prefix: "{keys.prefix}"}}
sources:
  feeds: [{{id: busy, url: "{busy_site.url('/feed.xml')}", interval: 1}},
          {{id: other, url: "{other_site.url('/feed.xml')}", interval: 1}}]
fetch: {{allow_private_addresses: true, timeout: 5}}
rules: {{path: {rules}, watch: false}}
workers: {{processes: 1}}
channels: {{desk: {{urls: ["{hook.url()}"]}}}}
alerts: {{default_channels: [desk]}}
pipeline: {{tick: 0.2, claim_idle: 0.5, max_deliveries: 50}}
service: {{listen: null}}
""")
        inst = Instance(config, "solo", tmp_path)
        try:
            await wait_started([inst])
            await wait_until(lambda: busy_site.times.get("/p/busy.html"), timeout=30, what="the page asked once")
            refused = busy_site.times["/p/busy.html"][0]
            polls_of_other = len(other_site.times.get("/feed.xml", []))  # not polled yet, maybe
            # the entry is redelivered every claim_idle (0.5 s): each time it must meet the hold, not the site
            await wait_until(lambda: len(other_site.times.get("/feed.xml", [])) >= polls_of_other + 5, timeout=30,
                             what="five more polls of the other site")
        finally:
            await stop_all([inst])
        assert len(busy_site.times["/p/busy.html"]) == 1, busy_site.times["/p/busy.html"]
        assert "not requested: 127.0.0.1" in inst.log()  # each redelivery met the hold
        assert [t for t in busy_site.times["/feed.xml"] if t > refused] == []  # the site's feed waits as well
        assert await redis.pttl(keys.host_hold(f"127.0.0.1:{busy_site.port}")) > 100_000
