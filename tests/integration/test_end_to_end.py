"""The whole path on real parts: loopback feed and pages -> pipeline -> Redis -> rules -> webhook and SMTP.

The feed document is written here (its links must point at the loopback server); the pages are the seed articles and
corpus pages, byte for byte.
"""

from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from monitor.config import load_config
from monitor.net import Fetcher
from monitor.pipeline import Pipeline
from monitor.rules import RuleWatcher
from monitor.workers import WorkerPool
from receivers import SmtpReceiver, WebhookReceiver
from servers import LoopbackServer

ROOT = Path(__file__).resolve().parents[2]
SEED_PLEDGE = ROOT / "seeds" / "000_1bb014922f46a2c7.txt"
SEED_SPECULATION = ROOT / "seeds" / "004_a6bc03643da2e262.txt"
CORPUS_PAGES = ["trafilatura/bbc.com.52241221.html", "zyte/05844573ca7e1fba.html"]


def rss(items: list[tuple[str, str]]) -> bytes:
    when = format_datetime(datetime(2025, 4, 20, 18, 0, tzinfo=timezone.utc))
    body = "".join(f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>{escape(u)}</guid>"
                   f"<pubDate>{when}</pubDate></item>" for t, u in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Loopback Wire</title>'
            f"<link>http://127.0.0.1/</link><description>test</description>{body}</channel></rss>").encode()


def write_config(tmp_path: Path, *, redis_url: str, prefix: str, feed_url: str, hook: str, mail: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(f"""
data_dir: {tmp_path / 'data'}
redis: {{url: "{redis_url}", prefix: "{prefix}"}}
sources:
  feeds: [{{url: "{feed_url}", name: Loopback Wire}}]
fetch: {{allow_private_addresses: true, timeout: 10}}
rules: {{path: {ROOT / 'rules'}}}
channels:
  analysts: {{urls: ["{hook}", "{mail}"]}}
alerts: {{default_channels: [analysts], retry_base: 0.05, retry_max_delay: 0.2}}
pipeline: {{claim_idle: 0.2}}
""")
    return path


class Daemonless:
    """A pipeline built the way the daemon builds it, for one test; `restart()` builds a fresh one."""

    def __init__(self, config_path: Path, redis) -> None:
        self.config_path, self.redis = config_path, redis
        self.pipeline: Pipeline | None = None

    async def start(self) -> Pipeline:
        from monitor.store import Keys

        config = load_config(self.config_path, environ={})
        self.pipeline = Pipeline(config=config, redis=self.redis, keys=Keys(config.redis.prefix),
                                 fetcher=Fetcher(config.fetch), pool=WorkerPool(processes=1),
                                 rules=RuleWatcher(config.rules.path), consumer="test")
        return self.pipeline

    async def stop(self) -> None:
        if self.pipeline:
            self.pipeline.pool.close()
            await self.pipeline.fetcher.close()

    async def restart(self) -> Pipeline:
        await self.stop()
        return await self.start()


@pytest.fixture
async def world(tmp_path, redis, keys, redis_url, corpus):
    async with LoopbackServer() as srv, WebhookReceiver() as hook:
        with SmtpReceiver() as smtp:
            srv.route("/news/leopard.txt", SEED_PLEDGE.read_bytes(), content_type="text/plain; charset=utf-8")
            srv.route("/news/milley.txt", SEED_SPECULATION.read_bytes(), content_type="text/plain; charset=utf-8")
            items = [("Leopard tanks for Ukraine", srv.url("/news/leopard.txt?utm_source=rss")),
                     ("Milley on North Korean arms", srv.url("/news/milley.txt"))]
            for name in CORPUS_PAGES:
                path = f"/pages/{Path(name).name}"
                srv.route(path, (corpus / "pages" / name).read_bytes(), content_type="text/html")
                items.append((Path(name).stem, srv.url(path)))
            feed = srv.route("/feed.xml", rss(items), content_type="application/rss+xml")
            config = write_config(tmp_path, redis_url=redis_url, prefix=keys.prefix, feed_url=srv.url("/feed.xml"),
                                  hook=hook.url(), mail=smtp.url())
            app = Daemonless(config, redis)
            await app.start()
            yield app, srv, feed, hook, smtp, items
            await app.stop()


async def test_a_pledge_in_a_feed_reaches_webhook_and_email_once(world):
    app, srv, feed, hook, smtp, items = world
    new = await app.pipeline.run_once()
    assert new == len(items)
    [alert] = await hook.wait_for(1)
    assert "New arms pledge" in alert["title"]
    for name in ("Leopard 2", "Denmark", "Netherlands"):
        assert name in alert["message"]
    assert srv.url("/news/leopard.txt") in alert["message"]  # the canonical URL: utm_source dropped
    [mail] = smtp.wait_for(1)
    assert "Leopard" in mail.get_body(("plain", "html")).get_content()
    assert len(hook.bodies) == 1  # seed 004 (speculation) and the corpus pages did not fire the pledge rule


async def test_next_cycle_sends_nothing_and_an_unchanged_feed_is_not_parsed_again(world):
    app, srv, feed, hook, smtp, items = world
    await app.pipeline.run_once()
    await hook.wait_for(1)
    pages_fetched = sum(srv.requests[p] for p in srv.requests if p != "/feed.xml")
    assert await app.pipeline.run_once() == 0
    assert srv.responses_304 == 1
    assert srv.request_headers["/feed.xml"][1].get("If-None-Match") == feed.current_etag()
    assert sum(srv.requests[p] for p in srv.requests if p != "/feed.xml") == pages_fetched
    assert len(hook.bodies) == 1 and len(smtp.messages) == 1


async def test_a_restart_does_not_alert_again(world):
    app, srv, feed, hook, smtp, items = world
    await app.pipeline.run_once()
    await hook.wait_for(1)
    pipeline = await app.restart()
    feed.body = feed.body.replace(b"<title>Loopback Wire</title>", b"<title>Loopback Wire (updated)</title>")
    assert await pipeline.run_once() == 0  # changed feed, parsed again, every entry already seen
    assert srv.responses_304 == 0
    assert len(hook.bodies) == 1 and len(smtp.messages) == 1


async def test_the_same_text_under_a_second_url_alerts_once(world):
    app, srv, feed, hook, smtp, items = world
    srv.route("/mirror/leopard-copy.txt", SEED_PLEDGE.read_bytes(), content_type="text/plain")
    feed.body = rss(items + [("Copy", srv.url("/mirror/leopard-copy.txt"))])
    await app.pipeline.run_once()
    await hook.wait_for(1)
    assert srv.requests["/mirror/leopard-copy.txt"] == 1
    assert len(hook.bodies) == 1


async def test_a_page_that_yields_nothing_is_recorded_not_retried(world):
    app, srv, feed, hook, smtp, items = world
    srv.route("/empty.html", b"<html><body><nav>menu</nav></body></html>", content_type="text/html")
    feed.body = rss(items + [("Empty", srv.url("/empty.html"))])
    await app.pipeline.run_once()
    await app.pipeline.run_once()
    # fetch_page auto: the entry is matched on its headline instead; the page failure is counted for the source
    assert await app.pipeline.entries.dead() == []
    stats = await app.pipeline.source_stats.get(app.pipeline.feeds.popitem()[0])
    assert (stats.failed, stats.last_error_url) == (1, srv.url("/empty.html"))
    assert "NoArticle" in stats.last_error and "only 4 characters" in stats.last_error
    assert srv.requests["/empty.html"] == 1
