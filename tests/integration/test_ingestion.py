"""Ingestion of real feeds through the pipeline (loopback server, worker processes, Redis): every item of a feed whose
items share a page reaches the entries stream once, under a key that stays the same at the next poll; tracking
parameters configured in monitor.yaml are dropped; an anchored entry fetches its page."""

from __future__ import annotations

import json
from pathlib import Path

from servers import LoopbackServer

from monitor.config import load_config
from monitor.models import Entry
from monitor.net import Fetcher
from monitor.pipeline import Pipeline
from monitor.rules import RuleWatcher
from monitor.store import Keys
from monitor.workers import WorkerPool

RULES = "rules:\n  - {id: zebra, title: Zebra, any: [zebra]}\n"


def build_pipeline(tmp_path: Path, redis, keys: Keys, redis_url: str, *, feeds: list[str],
                   extra: str = "", pipeline: str = "claim_idle: 0.2") -> Pipeline:
    """A pipeline built from a monitor.yaml the way the daemon builds it."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.yaml").write_text(RULES)
    listed = ", ".join(f'{{id: f{n}, url: "{url}"}}' for n, url in enumerate(feeds))
    path = tmp_path / "monitor.yaml"
    path.write_text(f"""
data_dir: {tmp_path / 'data'}
redis: {{url: "{redis_url}", prefix: "{keys.prefix}"}}
sources: {{feeds: [{listed}]}}
fetch: {{allow_private_addresses: true, timeout: 20}}
rules: {{path: {rules}, watch: false}}
pipeline: {{{pipeline}}}
{extra}
""")
    config = load_config(path, environ={})
    return Pipeline(config=config, redis=redis, keys=Keys(config.redis.prefix), fetcher=Fetcher(config.fetch),
                    pool=WorkerPool(processes=1), rules=RuleWatcher(config.rules.path), consumer="test")


async def close(pipeline: Pipeline) -> None:
    pipeline.pool.close()
    await pipeline.fetcher.close()


async def stream_payloads(redis, keys: Keys, name: str = "entries") -> list[dict]:
    return [json.loads(fields[b"data"] if b"data" in fields else fields["data"])
            for _, fields in await redis.xrange(keys.stream(name))]


async def test_items_sharing_a_page_each_reach_the_stream_once_and_stay_seen(tmp_path, redis, keys, redis_url,
                                                                            corpus):
    real = corpus / "feeds" / "real"
    async with LoopbackServer() as srv:
        srv.route("/scripting.rss", (real / "netnewswire__scriptingNews.rss").read_bytes(),
                  content_type="application/rss+xml", etag=None, last_modified=None)
        srv.route("/taverncast.rss", (real / "rss-parser__itunes-missing-image.rss").read_bytes(),
                  content_type="application/rss+xml", etag=None, last_modified=None)
        pipeline = build_pipeline(tmp_path, redis, keys, redis_url,
                                  feeds=[srv.url("/scripting.rss"), srv.url("/taverncast.rss")])
        try:
            scripting, taverncast = pipeline.feeds.values()
            first = (await pipeline.poll_source(scripting), await pipeline.poll_source(taverncast))
            second = (await pipeline.poll_source(scripting), await pipeline.poll_source(taverncast))
        finally:
            await close(pipeline)
    assert first == (48, 130)  # before issue 12: (7, 9); the others merged into those
    assert second == (0, 0)  # the keys of the items sharing a page are the same at the next poll
    urls = [entry["url"] for entry in await stream_payloads(redis, keys)]
    assert len(urls) == len(set(urls)) == 178
    assert "http://scripting.com/2017/06/24.html#a100601" in urls


async def test_configured_tracking_parameters_are_dropped_from_entry_urls(tmp_path, redis, keys, redis_url):
    items = "".join(f"<item><title>t{n}</title><link>https://news.example.org/{n}.html?{q}</link></item>"
                    for n, q in enumerate(["xtor=RSS-3&amp;id=1", "from=newsletter-7", "ref=rss", "ref=home"]))
    feed = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>').encode()
    async with LoopbackServer() as srv:
        srv.route("/feed.xml", feed, content_type="application/rss+xml")
        pipeline = build_pipeline(tmp_path, redis, keys, redis_url, feeds=[srv.url("/feed.xml")],
                                  extra='dedup: {tracking_params: [defaults, "from=newsletter*"]}')
        try:
            [source] = pipeline.feeds.values()
            assert await pipeline.poll_source(source) == 4
        finally:
            await close(pipeline)
    assert [entry["url"] for entry in await stream_payloads(redis, keys)] == [
        "https://news.example.org/0.html?id=1", "https://news.example.org/1.html", "https://news.example.org/2.html",
        "https://news.example.org/3.html?ref=home"]


async def test_an_anchored_entry_fetches_its_page_and_keeps_its_anchor(tmp_path, redis, keys, redis_url, corpus):
    page = (corpus / "pages" / "trafilatura" / "tagesschau.de.rheinmetall.html").read_bytes()
    async with LoopbackServer() as srv:
        items = "".join(f"<item><title>post {a}</title><link>{srv.url('/2017/06/24.html')}#{a}</link>"
                        f"<guid>{srv.url('/2017/06/24.html')}#{a}</guid></item>" for a in ("a010650", "a020644"))
        srv.route("/day.rss", f'<rss version="2.0"><channel><title>Day</title>{items}</channel></rss>'.encode(),
                  content_type="application/rss+xml")
        srv.route("/2017/06/24.html", page, content_type="text/html; charset=utf-8")
        pipeline = build_pipeline(tmp_path, redis, keys, redis_url, feeds=[srv.url("/day.rss")])
        try:
            [source] = pipeline.feeds.values()
            assert await pipeline.poll_source(source) == 2
            found = [Entry.from_dict(payload) for payload in await stream_payloads(redis, keys)]
            articles = [await pipeline.fetch_article(entry) for entry in found]
        finally:
            await close(pipeline)
    assert [a.url for a in articles] == [srv.url("/2017/06/24.html#a010650"), srv.url("/2017/06/24.html#a020644")]
    assert all("Rheinmetall" in a.text for a in articles)
    assert srv.requests["/2017/06/24.html"] == 2  # the fragment is not part of the request



RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://news.example.org/</link>'
       b"<item><title>one</title><link>https://news.example.org/1.html</link></item></channel></rss>")


async def test_a_feed_claimed_before_its_due_time_is_polled_at_that_time(tmp_path, redis, keys, redis_url):
    import asyncio
    import time

    async with LoopbackServer() as srv:
        srv.route("/f.rss", RSS, content_type="application/rss+xml")
        srv.route("/g.rss", RSS, content_type="application/rss+xml")
        pipeline = build_pipeline(tmp_path, redis, keys, redis_url, feeds=[srv.url("/f.rss"), srv.url("/g.rss")],
                                  pipeline="claim_idle: 0.2, tick: 2")
        try:
            await pipeline.sync_feeds()
            due = time.time() + 1.0
            await redis.zadd(keys.due, {"f0": due, "f1": time.time() + 60})
            claimed = await pipeline.poller.claim_due(now=time.time())  # the next look is 2 s (tick) away
            assert [(feed.id, at) for feed, at in claimed] == [("f0", due)]
            pipeline.poller.start(*claimed[0])
            deadline = time.monotonic() + 10
            while not srv.requests["/f.rss"] and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            polled = time.time()
            await asyncio.gather(*pipeline.poller.in_flight)
            # a claimed poll still waiting for its time is handed back on shutdown, due at once
            [(later, at)] = await pipeline.poller.claim_due(now=time.time() + 59)
            pipeline.poller.start(later, at)
            for task in list(pipeline.poller.in_flight):
                task.cancel()
            await asyncio.gather(*pipeline.poller.in_flight, return_exceptions=True)
            await pipeline.poller.release()
            handed_back = await redis.zscore(keys.due, "f1")
        finally:
            await close(pipeline)
    assert due <= polled < due + 0.5  # on time: neither before its due time nor at the next look
    assert srv.requests["/g.rss"] == 0 and handed_back <= time.time()
