"""Feed text as the article (fetch_page auto|always|never), the fallback when the page fails, the per-source article
counts, burst-mode retries within one run and their log lines: real Redis, loopback feed and page servers, a webhook.

Feed documents are written here around real text (seed 000, an article scraped from the web) or are real feeds from
tests/data/corpus whose links are pointed at the loopback server.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from monitor.alerts.history import History
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.net import Fetcher
from monitor.pipeline import Pipeline
from monitor.rules import RuleWatcher
from monitor.store import Keys
from monitor.workers import WorkerPool
from receivers import WebhookReceiver
from servers import LoopbackServer

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "seeds" / "000_1bb014922f46a2c7.txt").read_text()
HEADLINE = "US urges allies to 'dig deep' with arms in Ukraine's fight against Russia"
BODY = SEED.split(HEADLINE, 1)[1].strip()  # the article without the breadcrumb and headline lines
SUMMARY = " ".join(BODY.split())[:1990]  # as much as an entry's summary keeps (2,000 characters): the pledge is in it
CLOSED = "http://127.0.0.1:9/"  # the discard port: nothing listens, the connection is refused


def rss(items: list[dict[str, str]]) -> bytes:
    """An RSS 2.0 document; an item has title, link and optionally description / content (content:encoded)."""
    out = []
    for item in items:
        out.append(f"<item><title>{escape(item['title'])}</title><link>{escape(item['link'])}</link>"
                   f"<guid>{escape(item['link'])}</guid>"
                   + (f"<description>{escape(item['description'])}</description>" if "description" in item else "")
                   + (f"<content:encoded><![CDATA[<p>{item['content']}</p>]]></content:encoded>"
                      if "content" in item else "") + "</item>")
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Loopback Wire</title>'
            f"<link>http://127.0.0.1/</link><description>test</description>{''.join(out)}</channel></rss>").encode()


def build(tmp_path: Path, redis, keys: Keys, redis_url: str, hook: str, feeds: str, *, pipeline: str = "",
          service: str = "") -> Pipeline:
    path = tmp_path / "monitor.yaml"
    path.write_text(f"""
data_dir: {tmp_path / 'data'}
redis: {{url: "{redis_url}", prefix: "{keys.prefix}"}}
sources: {{feeds: [{feeds}]}}
fetch: {{allow_private_addresses: true, timeout: 10, connect_timeout: 2}}
rules: {{path: {ROOT / 'rules'}, watch: false}}
channels: {{analysts: {{urls: ["{hook}"]}}}}
alerts: {{default_channels: [analysts], retry_base: 0.05, retry_max_delay: 0.2}}
pipeline: {{claim_idle: 300, burst_backoff: 0.01{pipeline}}}
service: {{listen: null{service}}}
""")
    config = load_config(path, environ={})
    return Pipeline(config=config, redis=redis, keys=Keys(config.redis.prefix), fetcher=Fetcher(config.fetch),
                    pool=WorkerPool(processes=1), rules=RuleWatcher(config.rules.path), consumer="test")


@pytest.fixture
async def world(tmp_path, redis, keys, redis_url):
    built: list[Pipeline] = []
    async with LoopbackServer() as srv, WebhookReceiver() as hook:

        def make(items: list[dict[str, str]], options: str = "", **kw) -> Pipeline:
            srv.route("/feed.xml", rss(items), content_type="application/rss+xml")
            feeds = f'{{id: wire, name: Loopback Wire, url: "{srv.url("/feed.xml")}"{options}}}'
            built.append(build(tmp_path, redis, keys, redis_url, hook.url(), feeds, **kw))
            return built[-1]

        yield srv, hook, make
        for pipeline in built:
            pipeline.pool.close()
            await pipeline.fetcher.close()


def pledged(alerts: list[dict]) -> list[dict]:
    return [a for a in alerts if "New arms pledge" in a["title"]]


async def once(pipeline: Pipeline) -> None:
    """One run --once cycle; claim_idle is 300 s, so a retry waiting for XAUTOCLAIM would hang: give up at 120 s."""
    await asyncio.wait_for(pipeline.run_once(), 120)


async def test_full_text_in_the_feed_is_matched_and_the_page_never_fetched(world):
    srv, hook, make = world
    srv.route("/news/pledge.html", b"<html><body>never asked for</body></html>", content_type="text/html")
    pipeline = make([{"title": HEADLINE, "link": srv.url("/news/pledge.html"), "description": "Teaser.",
                      "content": escape(BODY).replace("\n\n", "</p><p>")}])
    await once(pipeline)
    [alert] = pledged(await hook.wait_for(1))
    assert srv.requests["/news/pledge.html"] == 0
    assert "Matched on the feed content (the page was not read)" in alert["message"]
    article = await pipeline.archive.get(srv.url("/news/pledge.html"))
    assert article.text_from == "feed content" and "Leopard 2" in article.text and "<p>" not in article.text
    [listed] = [a for a in await History(pipeline.redis, pipeline.keys).list(10) if a["rule_id"] == "arms-pledge"]
    shown = await History(pipeline.redis, pipeline.keys).render_show(listed["id"])
    assert "text:     from the feed content" in shown
    stats = await pipeline.source_stats.get("wire")
    assert (stats.ok, stats.feed_text, stats.failed) == (0, 1, 0)


async def test_fetch_page_always_reads_the_page_even_when_the_feed_has_the_text(world):
    srv, hook, make = world
    srv.route("/news/pledge.txt", SEED.encode(), content_type="text/plain; charset=utf-8")
    pipeline = make([{"title": HEADLINE, "link": srv.url("/news/pledge.txt"), "content": escape(BODY)}],
                    ", fetch_page: always")
    await once(pipeline)
    assert pledged(await hook.wait_for(1))
    assert srv.requests["/news/pledge.txt"] == 1
    assert (await pipeline.archive.get(srv.url("/news/pledge.txt"))).text_from == "page"
    assert (await pipeline.source_stats.get("wire")).ok == 1


async def test_a_page_refused_for_good_is_matched_on_the_feed_summary_and_counted(world):
    srv, hook, make = world
    srv.route("/news/walled.html", b"<html><body>Access denied</body></html>", status=403, content_type="text/html")
    pipeline = make([{"title": HEADLINE, "link": srv.url("/news/walled.html"), "description": SUMMARY}])
    await once(pipeline)
    [alert] = pledged(await hook.wait_for(1))
    assert "Matched on the feed summary" in alert["message"]
    assert srv.requests["/news/walled.html"] == 1  # a 403 is not retried
    assert await pipeline.entries.dead() == []
    stats = await pipeline.source_stats.get("wire")
    assert (stats.ok, stats.feed_text, stats.failed, stats.fail_streak) == (0, 1, 1, 1)
    assert stats.last_error_url == srv.url("/news/walled.html") and "403" in stats.last_error


async def test_a_headline_without_any_text_is_still_matched_on_its_title(world):
    srv, hook, make = world
    title = "Denmark and the Netherlands pledge 14 Leopard 2 tanks to Ukraine"
    pipeline = make([{"title": title, "link": srv.url("/news/gone.html")}])  # unknown path: 404
    await once(pipeline)
    assert pledged(await hook.wait_for(1))
    article = await pipeline.archive.get(srv.url("/news/gone.html"))
    assert (article.title, article.text, article.text_from) == (title, "", "feed title")


async def test_fetch_page_never_leaves_the_pages_alone(world):
    srv, hook, make = world
    srv.route("/news/pledge.txt", SEED.encode(), content_type="text/plain; charset=utf-8")
    pipeline = make([{"title": HEADLINE, "link": srv.url("/news/pledge.txt"), "description": SUMMARY}],
                    ", fetch_page: never")
    await once(pipeline)
    assert pledged(await hook.wait_for(1))
    assert srv.requests["/news/pledge.txt"] == 0
    assert (await pipeline.archive.get(srv.url("/news/pledge.txt"))).text_from == "feed summary"


async def test_a_page_that_keeps_failing_is_retried_within_the_run_then_matched_on_feed_text(world):
    srv, hook, make = world
    srv.route("/news/busy.html", b"busy", status=503, content_type="text/plain")
    pipeline = make([{"title": HEADLINE, "link": srv.url("/news/busy.html"), "description": SUMMARY}],
                    pipeline=", max_deliveries: 3")
    await once(pipeline)  # claim_idle is 300 s: the retries happened within the run, not after XAUTOCLAIM
    assert pledged(await hook.wait_for(1))
    assert srv.requests["/news/busy.html"] == 3
    assert await pipeline.entries.dead() == [] and await pipeline.entries.pending_count() == 0
    stats = await pipeline.source_stats.get("wire")
    assert (stats.failed, stats.feed_text) == (1, 1) and "503" in stats.last_error


async def test_always_dead_letters_after_the_last_delivery_with_one_log_line_per_failure(world, caplog):
    srv, hook, make = world
    srv.route("/news/busy.html", b"busy", status=503, content_type="text/plain")
    pipeline = make([{"title": HEADLINE, "link": srv.url("/news/busy.html"), "description": SUMMARY}],
                    ", fetch_page: always", pipeline=", max_deliveries: 3")
    with caplog.at_level(logging.INFO):
        await once(pipeline)
    assert srv.requests["/news/busy.html"] == 3
    [dead] = await pipeline.entries.dead()
    assert dead.deliveries == 3 and "503" in dead.payload["_error"]
    about = [r.getMessage() for r in caplog.records if "/news/busy.html" in r.getMessage()]
    assert len(about) == 3, about  # one line per failed delivery, not two
    assert all("of Loopback Wire [wire]" in line for line in about)  # the source by its name
    assert "(delivery 1 of 3), will retry in" in about[0] and "(delivery 2 of 3), will retry in" in about[1]
    assert "moved to dead-letter after 3 deliveries" in about[2]
    assert not any("delivery 3 of 3" in line for line in about)
    assert hook.bodies == []


async def test_a_real_feed_whose_pages_are_unreachable_reaches_the_rules_through_its_summaries(world, corpus):
    srv, hook, make = world
    body = (corpus / "feeds" / "real" / "feedreader__Rss20Reuters.xml").read_bytes()
    body = re.sub(rb"<link>https?://", b"<link>" + CLOSED.encode(), body)
    pipeline = make([])
    srv.route("/feed.xml", body, content_type="application/rss+xml")
    await once(pipeline)
    stats = await pipeline.source_stats.get("wire")
    assert (stats.ok, stats.feed_text, stats.failed) == (0, 10, 10)  # every entry, none lost
    assert "Connect call failed" in stats.last_error, stats.last_error
    assert await pipeline.entries.dead() == []
    assert list(pipeline.articles_failing) == ["wire"]  # 10 failures in a row >= articles_failing_after (3)
    archived = await pipeline.archive.get(stats.last_error_url)
    assert archived is not None and archived.text_from == "feed summary" and len(archived.text) > 100


async def test_a_source_whose_pages_all_fail_is_a_healthz_warning_and_an_operator_alert(world, tmp_path):
    srv, hook, make = world
    items = [{"title": f"Item {n}", "link": srv.url(f"/gone/{n}.html"), "description": "Short."} for n in range(3)]
    pipeline = make(items, service=", operator_channel: analysts")
    await once(pipeline)
    daemon = Daemon(pipeline.config)
    daemon.pipeline = daemon.jobs.pipeline = pipeline
    daemon.live.heartbeat = __import__("time").monotonic()
    await daemon.jobs.articles_health()
    await pipeline.deliverer.run(asyncio.Event(), burst=True)  # operator alerts go through the outbox
    ok, body = daemon.health()
    assert body["articles_failing"] == ["wire"]
    assert any(w.startswith("source Loopback Wire [wire]: article pages failing: PermanentError") and "404" in w
               for w in body["warnings"]), body["warnings"]
    [alert] = await hook.wait_for(1)
    assert alert["title"] == "monitor: articles of Loopback Wire [wire] failing" and "404" in alert["message"]
    await daemon.jobs.articles_health()  # checked again: no second alert
    await pipeline.source_stats.page_ok("wire")  # a page that works again
    await daemon.jobs.articles_health()
    await pipeline.deliverer.run(asyncio.Event(), burst=True)
    await hook.wait_for(2)
    assert [b["title"] for b in hook.bodies] == ["monitor: articles of Loopback Wire [wire] failing",
                                                "monitor: articles of Loopback Wire [wire] recovered"]
    assert daemon.health()[1]["articles_failing"] == []


async def monitor_cli(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    """The `monitor` command as a user runs it, without blocking the loop the loopback servers live in."""
    import os
    import sys

    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("monitor")), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def test_monitor_feeds_shows_the_counts_and_why_pages_failed_and_dead_entries_can_be_retried(
        tmp_path, redis, keys, redis_url):
    import json

    async with LoopbackServer() as srv, WebhookReceiver() as hook:
        srv.route("/a.xml", rss([{"title": HEADLINE, "link": srv.url("/a/walled.html"), "description": SUMMARY}]),
                  content_type="application/rss+xml")
        srv.route("/a/walled.html", b"denied", status=403, content_type="text/html")
        srv.route("/b.xml", rss([{"title": "Strict", "link": srv.url("/b/gone.html"), "description": "Short."}]),
                  content_type="application/rss+xml")
        feeds = (f'{{id: a, name: Wire A, url: "{srv.url("/a.xml")}"}}, '
                 f'{{id: b, url: "{srv.url("/b.xml")}", fetch_page: always}}')
        build(tmp_path, redis, keys, redis_url, hook.url(), feeds).pool.close()
        config = str(tmp_path / "monitor.yaml")
        code, _, err = await monitor_cli("run", "--once", "-c", config)
        assert code == 0, err[-3000:]
        assert pledged(await hook.wait_for(1))

        code, out, err = await monitor_cli("feeds", "--json", "-c", config)
        assert code == 0, err
        report = {r["id"]: r for r in json.loads(out)}
        assert {k: report["a"]["articles"][k] for k in ("ok", "feed_text", "failed")} == {
            "ok": 0, "feed_text": 1, "failed": 1}
        assert report["a"]["dead"] == 0 and "HTTP 403" in report["a"]["articles"]["last_error"]
        assert report["b"]["dead"] == 1 and report["b"]["articles"]["failed"] == 1
        gone = srv.url("/b/gone.html")
        assert report["b"]["articles"]["last_error"] == f"PermanentError: {gone}: HTTP 404 Not Found"  # in full
        code, wide, _ = await monitor_cli("feeds", "--wide", "-c", config)
        assert "feed text" in wide.splitlines()[0] and srv.url("/b/gone.html") in wide

        code, listed, _ = await monitor_cli("entries", "list", "--dead", "--feed", "b", "-c", config)
        [row] = listed.splitlines()[1:]
        assert srv.url("/b/gone.html") in row and " b " in row and " fetch " in row  # the stage it gave up in
        assert (await monitor_cli("entries", "list", "--dead", "--feed", "a", "-c", config))[1].strip() == \
            "no dead-lettered entries"
        srv.route("/b/gone.html", SEED.encode(), content_type="text/plain; charset=utf-8")  # the page is back
        code, out, err = await monitor_cli("entries", "retry", "--feed", "b", "-c", config)
        assert (code, out.strip()) == (0, "1 entry queued again"), err
        code, _, err = await monitor_cli("run", "--once", "-c", config)
        assert code == 0, err[-3000:]
        assert srv.requests["/b/gone.html"] == 2
        report = {r["id"]: r for r in json.loads((await monitor_cli("feeds", "--json", "-c", config))[1])}
        assert report["b"]["dead"] == 0 and report["b"]["articles"]["ok"] == 1
        code, _, err = await monitor_cli("entries", "retry", "--feed", "b", "-c", config)
        assert code == 1 and err.startswith("error: no dead-lettered entry")


async def test_run_once_where_every_source_failed_exits_1(tmp_path, redis, keys, redis_url):
    async with LoopbackServer() as srv, WebhookReceiver() as hook:
        srv.route("/broken.xml", b"oops", status=500)
        feeds = f'{{id: a, url: "{srv.url("/broken.xml")}"}}, {{id: b, url: "{srv.url("/missing.xml")}"}}'
        build(tmp_path, redis, keys, redis_url, hook.url(), feeds).pool.close()
        code, _, err = await monitor_cli("run", "--once", "-c", str(tmp_path / "monitor.yaml"))
        assert code == 1 and "every source failed to poll (2 sources; monitor feeds shows why)" in err, err[-2000:]
        srv.route("/missing.xml", rss([]), content_type="application/rss+xml")  # one source works: exit 0
        code, _, err = await monitor_cli("run", "--once", "-c", str(tmp_path / "monitor.yaml"))
        assert code == 0, err[-2000:]


async def test_an_outbox_retry_repeats_the_match_stage_only_and_never_fetches_the_page_again(world):
    """Another instance assigned this story and claimed its first alert, then died before writing it: the outbox
    asks for a retry (the first alert may still be being written). Only the "articles" message is tried again;
    the entry's page was fetched once, and once the dead claim is stale the retry sends the alert."""
    import time

    from monitor.alerts.outbox import INFLIGHT_GRACE, alert_base_id
    from monitor.models import Article

    srv, hook, make = world
    srv.route("/news/pledge.txt", SEED.encode(), content_type="text/plain; charset=utf-8")
    pipeline = make([{"title": HEADLINE, "link": srv.url("/news/pledge.txt")}], ", fetch_page: always")
    await pipeline.sync_feeds()
    assert await pipeline.poll_all() == 1
    await pipeline.entries.consume(pipeline.handle_entry, stop=asyncio.Event(), burst=True)
    assert srv.requests["/news/pledge.txt"] == 1 and await pipeline.entries.pending_count() == 0

    [message] = await pipeline.articles.read(count=10, block_ms=0)
    story = (await pipeline.stories.assign(Article.from_dict(message.payload))).story_id  # the other instance
    base_id = alert_base_id("arms-pledge", story)
    await pipeline.redis.set(pipeline.keys.alerts.once(base_id), f"{base_id}@{time.time():.3f}")
    assert await pipeline.articles.handle(pipeline.handle_article, message) is False  # the outbox: retry later
    assert hook.bodies == []

    pipeline.outbox.clock = lambda: time.time() + INFLIGHT_GRACE + 1  # time passes: the dead claim is stale
    assert await pipeline.articles.hand_back() == 1  # due again now rather than after claim_idle
    await asyncio.wait_for(pipeline.drain(), 120)
    [alert] = pledged(await hook.wait_for(1))
    assert "Leopard" in alert["message"]
    assert srv.requests["/news/pledge.txt"] == 1  # the retry did not fetch the page again
    assert await pipeline.articles.dead() == [] and await pipeline.articles.pending_count() == 0
    assert await pipeline.articles.length() == 0  # handled articles leave the stream
