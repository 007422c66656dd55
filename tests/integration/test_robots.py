"""robots.txt on the real page path: a loopback site's robots.txt, the pipeline's page fetches counted at the server.

Disallowed pages are never requested and end as a permanent failure saying so; the group for our user-agent token
wins over '*'; `fetch.robots: false` and a source's `robots: false` turn it off; Crawl-delay spaces the requests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fleet import TimedServer, rss

from monitor.config import load_config
from monitor.errors import PermanentError, TransientError
from monitor.net import Fetcher
from monitor.settings import FetchSettings
from monitor.pipeline import Pipeline
from monitor.robots import ROBOTS_TTL, RobotsDisallowed, RobotsUnreachable
from monitor.rules import RuleWatcher
from monitor.store import Keys
from monitor.workers import WorkerPool

SEED = (Path(__file__).resolve().parents[2] / "seeds" / "000_1bb014922f46a2c7.txt").read_bytes()
ROBOTS = b"""# the '*' group keeps everyone out of /news/; ours (matched by the token 'monitor') is more specific
User-agent: *
Disallow: /news/

User-agent: monitor
Disallow: /news/secret-1.txt
Disallow: /news/secret-2.txt
Disallow: /news/*-embargo.txt$
Allow: /news/
"""
ALLOWED = ["/news/a.txt", "/news/b.txt", "/news/c-embargo.txt.html"]
DISALLOWED = ["/news/secret-1.txt", "/news/secret-2.txt", "/news/2025-embargo.txt"]


@pytest.fixture
async def site():
    async with TimedServer() as srv:
        srv.route("/robots.txt", ROBOTS, content_type="text/plain")
        for path in ALLOWED + DISALLOWED:
            srv.route(path, SEED, content_type="text/plain; charset=utf-8")
        yield srv


def pipeline_for(tmp_path: Path, redis, redis_url: str, keys: Keys, feeds: list[str], *, fetch: str = "") -> Pipeline:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.yaml").write_text("rules:\n  - {id: zebra, title: Zebra, any: [zebra]}\n")
    path = tmp_path / "monitor.yaml"
    path.write_text(f"""
data_dir: {tmp_path / 'data'}
redis: {{url: "{redis_url}", prefix: "{keys.prefix}"}}
sources: {{feeds: [{", ".join(feeds)}]}}
fetch: {{allow_private_addresses: true, timeout: 10{fetch}}}
rules: {{path: {rules}, watch: false}}
pipeline: {{claim_idle: 0.2}}
""")
    config = load_config(path, environ={})
    return Pipeline(config=config, redis=redis, keys=Keys(config.redis.prefix), fetcher=Fetcher(config.fetch),
                    pool=WorkerPool(processes=1), rules=RuleWatcher(config.rules.path), consumer="test")


async def run_once(pipeline: Pipeline) -> list[dict]:
    """One cycle; the dead-lettered entries (payload and `_error`)."""
    try:
        await pipeline.run_once()
        return [m.payload for m in await pipeline.entries.dead()]
    finally:
        pipeline.pool.close()
        await pipeline.fetcher.close()


def feed_entry(srv: TimedServer, name: str, paths: list[str], extra: str = "") -> str:
    srv.route(f"/{name}.xml", rss(name, [(p, srv.url(p)) for p in paths]), content_type="application/rss+xml")
    return f'{{id: {name}, url: "{srv.url(f"/{name}.xml")}"{extra}}}'


async def test_pages_that_robots_txt_disallows_are_never_fetched_and_fail_with_the_reason(
        site, tmp_path, redis, keys, redis_url):
    feed = feed_entry(site, "wire", ALLOWED + DISALLOWED, extra=", fetch_page: always")  # no feed-text fallback
    dead = await run_once(pipeline_for(tmp_path, redis, redis_url, keys, [feed]))
    assert {path: site.requests[path] for path in DISALLOWED} == {path: 0 for path in DISALLOWED}
    assert {path: site.requests[path] for path in ALLOWED} == {path: 1 for path in ALLOWED}
    assert site.requests["/robots.txt"] == 1  # once for the site, however many pages
    assert sorted(d["url"] for d in dead) == sorted(site.url(p) for p in DISALLOWED)
    for record in dead:
        assert record["_error"] == (f"RobotsDisallowed: {record['url']}: disallowed by robots.txt "
                                    f"({site.url('/robots.txt')}, user-agent monitor)")


async def test_robots_false_for_one_source_or_for_all_fetches_their_pages(site, tmp_path, redis, keys, redis_url):
    own = feed_entry(site, "own", DISALLOWED[:2], extra=", robots: false, fetch_page: always")  # the operator's site
    other = feed_entry(site, "other", DISALLOWED[2:], extra=", fetch_page: always")
    dead = await run_once(pipeline_for(tmp_path, redis, redis_url, keys, [own, other]))
    assert [site.requests[p] for p in DISALLOWED] == [1, 1, 0]
    assert [d["url"] for d in dead] == [site.url(DISALLOWED[2])]

    keys2 = Keys(keys.prefix + "all-off:")
    everything = feed_entry(site, "everything", DISALLOWED)
    robots_fetched = site.requests["/robots.txt"]
    dead = await run_once(pipeline_for(tmp_path, redis, redis_url, keys2, [everything],
                                     fetch=", robots: false"))
    assert dead == [] and [site.requests[p] for p in DISALLOWED] == [2, 2, 1]
    assert site.requests["/robots.txt"] == robots_fetched  # not even asked
    async for key in redis.scan_iter(match=keys2.prefix + "*"):
        await redis.delete(key)


async def test_crawl_delay_spaces_the_page_requests_to_the_site(tmp_path, redis, keys, redis_url):
    pages = [f"/slow/{n}.txt" for n in range(4)]
    async with TimedServer() as srv:
        srv.route("/robots.txt", b"User-agent: monitor\nCrawl-delay: 0.5\n", content_type="text/plain")
        for path in pages:
            srv.route(path, SEED, content_type="text/plain")
        feed = feed_entry(srv, "slow", pages)
        assert await run_once(pipeline_for(tmp_path, redis, redis_url, keys, [feed])) == []
    starts = sorted(t for path in pages for t in srv.times[path])
    assert len(starts) == 4
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) > 0.4, gaps  # 0.5 s apart, less what the first connection's set-up may have delayed it


async def test_robots_txt_is_read_once_per_site_until_it_expires(site):
    async with Fetcher(FetchSettings(allow_private_addresses=True)) as fetcher:
        fetcher.robots.ttl = 2.0  # a day in production (ROBOTS_TTL)
        for path in ALLOWED:
            await fetcher.get(site.url(path), robots=True)
        assert site.requests["/robots.txt"] == 1
        await asyncio.sleep(2.1)
        for path in ALLOWED:
            await fetcher.get(site.url(path), robots=True)
    assert site.requests["/robots.txt"] == 2
    assert ROBOTS_TTL == 86400


async def test_a_redirect_into_a_disallowed_path_is_not_followed(site):
    site.route("/go", status=302, headers={"Location": DISALLOWED[0]})
    async with Fetcher(FetchSettings(allow_private_addresses=True)) as fetcher:
        with pytest.raises(RobotsDisallowed, match=r"/go \(redirected to .*/news/secret-1.txt\): disallowed by"):
            await fetcher.get(site.url("/go"), robots=True)
        feed_page = await fetcher.get(site.url(DISALLOWED[0]))  # feeds and explicit fetches do not ask
    assert site.requests[DISALLOWED[0]] == 1 and feed_page.status == 200


@pytest.mark.parametrize("status, outcome", [(404, None), (403, None), (500, RobotsUnreachable),
                                             (503, RobotsUnreachable)])
async def test_robots_txt_missing_allows_everything_and_unreachable_holds_the_pages_back(status, outcome):
    async with TimedServer() as srv, Fetcher(FetchSettings(allow_private_addresses=True)) as fetcher:
        srv.route("/robots.txt", status=status)
        srv.route("/page.txt", SEED, content_type="text/plain")
        if outcome is None:
            assert (await fetcher.get(srv.url("/page.txt"), robots=True)).status == 200
            assert srv.requests["/page.txt"] == 1
        else:
            with pytest.raises(outcome, match=r"/page.txt: robots.txt of the site could not be read \(.*HTTP 5"):
                await fetcher.get(srv.url("/page.txt"), robots=True)
            with pytest.raises(outcome):  # asked again only after a while, not for every page
                await fetcher.get(srv.url("/page.txt"), robots=True)
            assert srv.requests["/page.txt"] == 0 and srv.requests["/robots.txt"] == 1
            assert issubclass(outcome, TransientError) and not issubclass(outcome, PermanentError)
