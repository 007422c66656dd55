"""Three `monitor run` processes share one Redis: feeds polled once per interval, entries and alerts handled once,
a `kill -9` loses nothing, a poison message ends in the dead-letter stream.

Every wait is bounded (poll a condition until a timeout); no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fleet import (FeedWorld, Instance, TimedServer, alert_urls, settled, stop_all, wait_started, wait_until,
                   write_config)
from receivers import WebhookReceiver

INTERVAL = 2.0


def start(tmp_path: Path, config: Path, count: int = 3) -> list[Instance]:
    return [Instance(config, f"inst{n}", tmp_path) for n in range(count)]


@pytest.fixture
async def env(tmp_path, redis, keys, redis_url):
    async with TimedServer() as srv, WebhookReceiver() as hook:
        yield srv, hook


async def test_three_instances_poll_each_feed_once_per_interval_and_handle_each_entry_once(env, tmp_path, redis,
                                                                                            keys, redis_url):
    srv, hook = env
    world = FeedWorld.build(srv)
    config = write_config(tmp_path, redis_url=redis_url, prefix=keys.prefix, world=world, hook=hook.url(),
                          # claim_idle above the queue for the one site's 4 shared slots on a loaded machine: an
                          # entry still queueing after claim_idle is taken over and its page fetched twice
                          interval=INTERVAL, extra="pipeline: {tick: 0.2, lease: 10, claim_idle: 30}\n"
                                                   "service: {listen: null}")
    instances = start(tmp_path, config)
    try:
        await wait_started(instances)
        await wait_until(lambda: all(srv.requests[p] for p in world.pages), timeout=40, what="every page fetched")
        await wait_until(lambda: settled(redis, keys), timeout=30, what="streams drained")
        # keep running until every feed was polled at least four times, so the spacing below means something
        await wait_until(lambda: all(len(srv.times.get(f, [])) >= 4 for f in world.feeds), timeout=30,
                         what="four polls per feed")
        await wait_until(lambda: settled(redis, keys), timeout=30, what="streams drained")
    finally:
        codes = await stop_all(instances)
    assert codes == [0, 0, 0], [i.log()[-2000:] for i in instances]
    for feed in world.feeds:
        times = srv.times[feed]
        gaps = [b - a for a, b in zip(times, times[1:])]
        # due again `interval` after the poll started: two instances never poll one feed within one interval
        assert min(gaps) >= INTERVAL * 0.75, (feed, gaps)
    assert {p: srv.requests[p] for p in world.pages} == {p: 1 for p in world.pages}
    assert sorted(alert_urls(hook.bodies)) == sorted(world.matching)
    assert await redis.xlen(keys.stream("entries")) == len(world.pages)
    assert await redis.xlen(keys.stream("entries") + ":dead") == 0
    assert await redis.xlen(keys.stream("articles") + ":dead") == 0
    pollers = [i.name for i in instances if "entries, " in i.log()]
    assert len(pollers) >= 2, "the feeds were not shared between instances"


async def test_kill_9_of_one_instance_loses_nothing_and_doubles_no_alert(env, tmp_path, redis, keys, redis_url):
    srv, hook = env
    world = FeedWorld.build(srv, page_delay=1.0)  # slow pages: the victim surely holds unacknowledged entries
    config = write_config(tmp_path, redis_url=redis_url, prefix=keys.prefix, world=world, hook=hook.url(),
                          interval=INTERVAL, extra="pipeline: {tick: 0.2, lease: 3, claim_idle: 3}\n"
                                                   "service: {listen: null}")
    # The victim runs alone until it holds entries: with all three running, the first to read took every entry (the
    # world's few entries fit one read's free slots), and in some runs that was not the victim. The survivors start
    # as it dies, so they must take over its unacknowledged entries (claim_idle) and its feed leases.
    victim = Instance(config, "inst0", tmp_path)
    instances = [victim]
    entries = keys.stream("entries")
    try:
        await wait_started(instances)

        async def victim_holds_entries() -> bool:
            pending = await redis.xpending(entries, "monitor") if await redis.exists(entries) else None
            return bool(pending and any(c["name"] == victim.name and c["pending"] for c in pending["consumers"]))

        await wait_until(victim_holds_entries, timeout=40, every=0.02, what="the victim to hold pending entries")
        victim.kill9()
        killed_at = time.monotonic()
        survivors = [Instance(config, f"inst{n}", tmp_path) for n in (1, 2)]
        instances += survivors
        await wait_started(survivors)
        await wait_until(lambda: all(srv.requests[p] for p in world.pages), timeout=40, what="every page fetched")
        await wait_until(lambda: settled(redis, keys), timeout=40, what="streams drained after the kill")
        # the victim's feed leases expire; every feed is polled again by the survivors
        await wait_until(lambda: all(t > killed_at + 3 for f in world.feeds for t in srv.times[f][-1:]),
                         timeout=20, what="every feed polled after the victim's leases expired")
        await wait_until(lambda: settled(redis, keys), timeout=30, what="streams drained")
    finally:
        codes = await stop_all(instances)
    assert codes[1:] == [0, 0], [i.log()[-2000:] for i in instances[1:]]
    pending = await redis.xpending(entries, "monitor")
    assert pending["pending"] == 0
    assert sorted(alert_urls(hook.bodies)) == sorted(world.matching)  # all of them, each once
    assert await redis.xlen(entries + ":dead") == 0


async def test_a_poison_entry_goes_to_the_dead_letter_stream_after_max_deliveries(env, tmp_path, redis, keys,
                                                                                  redis_url):
    srv, hook = env
    poison = "/p/always-busy.html"
    world = FeedWorld.build(srv, feeds=2, extra_pages={poison: {"status": 503}})
    # fetch_page: always: the page or nothing (with auto, the default, a page that keeps failing is matched on the
    # feed's text instead, tests/integration/test_feed_text.py)
    config = write_config(tmp_path, redis_url=redis_url, prefix=keys.prefix, world=world, hook=hook.url(),
                          interval=INTERVAL, source=", fetch_page: always",
                          # claim_idle 2 s: a healthy entry still in hand after claim_idle is taken over by
                          # another instance (delivery + 1); 0.5 s was shorter than a page's first extraction on a
                          # loaded 2-core machine, and the healthy entries were dead-lettered too ("delivered too
                          # often")
                          extra="pipeline: {tick: 0.2, claim_idle: 2, max_deliveries: 3}\n"
                                             "service: {listen: null}")
    instances = start(tmp_path, config)
    dead = keys.stream("entries") + ":dead"
    try:
        await wait_started(instances)
        await wait_until(lambda: redis.xlen(dead), timeout=40, what="a dead letter")
        await wait_until(lambda: all(srv.requests[p] for p in world.pages), timeout=40, what="every page fetched")
        await wait_until(lambda: settled(redis, keys), timeout=30, what="streams drained")
    finally:
        codes = await stop_all(instances)
    assert codes == [0, 0, 0]
    letters = await redis.xrange(dead)
    assert len(letters) == 1, [(r["error"], r["deliveries"]) for _i, r in letters]
    [(_id, record)] = letters
    assert srv.url(poison) in record["data"]
    assert "503" in record["error"]
    assert record["deliveries"] == "3"  # handled three times, dead-lettered after the third (the log says the same)
    assert srv.requests[poison] == 3  # no hot loop: exactly max_deliveries attempts
    assert sorted(alert_urls(hook.bodies)) == sorted(world.matching)


async def test_three_instances_together_never_send_one_site_more_than_per_host_requests(env, tmp_path, redis, keys,
                                                                                        redis_url):
    srv, hook = env
    world = FeedWorld.build(srv, page_delay=0.5)  # slow pages: the instances' fetches overlap
    config = write_config(tmp_path, redis_url=redis_url, prefix=keys.prefix, world=world, hook=hook.url(),
                          interval=INTERVAL, fetch=", per_host: 4",
                          # 2 pages at a time per instance: one instance cannot take every entry at once (with 16
                          # slots the first to start could, when the machine is loaded), and 3 x 2 > per_host
                          extra="pipeline: {tick: 0.2, lease: 30, claim_idle: 60, page_concurrency: 2}\n"
                                "service: {listen: null}")
    instances = start(tmp_path, config)
    try:
        await wait_started(instances)
        await wait_until(lambda: all(srv.requests[p] for p in world.pages), timeout=60, what="every page fetched")
        await wait_until(lambda: settled(redis, keys), timeout=30, what="streams drained")
    finally:
        codes = await stop_all(instances)
    assert codes == [0, 0, 0], [i.log()[-2000:] for i in instances]
    fetchers = [i.name for i in instances if "rule virus-watch fired" in i.log()]
    assert len(fetchers) >= 2, "the pages were not shared between instances"
    # one site (every feed and page is on this one server): at most per_host at once, counted by the server;
    # each instance alone may have 2 in flight, so without the shared limit three of them reach up to 6
    assert srv.peak_in_flight <= 4
    assert srv.peak_in_flight >= 2  # the limit was reached for, not avoided by running one request at a time
    assert {p: srv.requests[p] for p in world.pages} == {p: 1 for p in world.pages}
    assert sorted(alert_urls(hook.bodies)) == sorted(world.matching)
