"""Hostile input on the real poll and page paths (loopback server, worker processes, Redis): entity expansion hidden by
an EBCDIC encoding, and a page of 9.5 MB whose text must not reach the event loop whole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from fleet import Instance, free_port, rss, stop_all, wait_started
from servers import LoopbackServer, flat_html_page

from monitor.archive import ArticleArchive
from monitor.config import load_config
from monitor.dedup import shingles
from monitor.models import Entry
from monitor.settings import ArchiveSettings, StorySettings
from monitor.net import Fetcher
from monitor.pipeline import Pipeline
from monitor.rules import RuleWatcher
from monitor.store import Keys, connect
from monitor.workers import WorkerPool

RULES = "rules:\n  - {id: zebra, title: Zebra, any: [zebra]}\n"


def build_pipeline(tmp_path: Path, redis, keys: Keys, redis_url: str, *, feeds: list[str], extra: str = "",
                   pool: WorkerPool | None = None) -> Pipeline:
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
pipeline: {{claim_idle: 0.2}}
{extra}
""")
    config = load_config(path, environ={})
    return Pipeline(config=config, redis=redis, keys=Keys(config.redis.prefix), fetcher=Fetcher(config.fetch),
                    pool=pool or WorkerPool(processes=1, memory_limit_mb=config.workers.memory_limit_mb),
                    rules=RuleWatcher(config.rules.path), consumer="test")


async def close(pipeline: Pipeline) -> None:
    pipeline.pool.close()
    await pipeline.fetcher.close()


async def stream_payloads(redis, keys: Keys, name: str = "entries") -> list[dict]:
    return [json.loads(fields[b"data"] if b"data" in fields else fields["data"])
            for _, fields in await redis.xrange(keys.stream(name))]


# --- item 2: entity expansion through an encoding that is not ASCII-compatible ---------------------------------------

def ebcdic_entity_bomb(link: str) -> bytes:
    """An RSS document in cp037 (EBCDIC) whose one title is 10^5 x "lol" once its nested entities expand."""
    entities = '<!ENTITY e0 "lol">' + "".join(f'<!ENTITY e{i} "{("&e%d;" % (i - 1)) * 10}">' for i in range(1, 6))
    text = (f'<?xml version="1.0" encoding="cp037"?><!DOCTYPE rss [{entities}]>\n'
            '<rss version="2.0"><channel><title>EBCDIC wire</title>'
            f"<item><title>&e5;</title><description>&e5;</description><link>{link}</link></item>"
            "</channel></rss>")
    return text.encode("cp037")


async def test_an_ebcdic_feed_with_nested_entities_is_polled_without_expanding_them(tmp_path, redis, keys, redis_url):
    async with LoopbackServer() as srv:
        body = ebcdic_entity_bomb(srv.url("/story/1"))
        assert b"<!DOCTYPE" not in body and len(body) < 1000  # nothing for a byte-level look to find
        srv.route("/ebcdic.xml", body, content_type="application/rss+xml")
        pipeline = build_pipeline(tmp_path, redis, keys, redis_url, feeds=[srv.url("/ebcdic.xml")])
        try:
            [feed] = pipeline.feeds.values()
            assert await pipeline.poll_source(feed) == 1
        finally:
            await close(pipeline)
    [entry] = await stream_payloads(redis, keys)
    assert entry["url"] == srv.url("/story/1")
    assert "lol" not in entry["title"] + entry["summary"]
    assert len(json.dumps(entry)) < 1000
    state = await pipeline.feed_store.state(feed.id)
    assert state.error_streak == 0


# --- characters that are none: a reference to a surrogate in XML, a lone surrogate in a JSON Feed ---------------------

async def test_feeds_with_references_to_no_character_or_lone_surrogates_lose_no_entry(tmp_path, redis, keys,
                                                                                      redis_url):
    """One `&#xD800;` made feedparser raise and the whole feed "not a feed"; a JSON Feed's "\\ud800" reached the
    stores and the matcher as a lone surrogate, which no encoder takes. Every entry is polled, read from the feed's
    text (its page is not there) and matched; the character that was none is U+FFFD."""
    async with LoopbackServer() as srv:
        items = "".join(f"<item><title>Zebra &#xD800; {n}</title><link>{srv.url(f'/x/{n}')}</link>"
                        f"<description>a zebra &#99999999999; herd {n}</description></item>" for n in (1, 2))
        srv.route("/refs.xml", f'<?xml version="1.0"?><rss version="2.0"><channel><title>Refs</title>{items}'
                               "</channel></rss>".encode(), content_type="application/rss+xml")
        item = {"id": "j1", "url": srv.url("/j/1"), "title": "Zebra \\ud800 news",
                "content_text": "A zebra \\udcff crossed the road."}
        feed = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Lone", "items": [item]})
        srv.route("/lone.json", feed.replace("\\\\u", "\\u").encode(), content_type="application/feed+json")
        pipeline = build_pipeline(tmp_path, redis, keys, redis_url, feeds=[srv.url("/refs.xml"),
                                                                            srv.url("/lone.json")])
        try:
            assert [await pipeline.poll_source(f) for f in pipeline.feeds.values()] == [2, 1]
            payloads = await stream_payloads(redis, keys)
            assert sorted(p["title"] for p in payloads) == ["Zebra \ufffd 1", "Zebra \ufffd 2", "Zebra \ufffd news"]
            for payload in payloads:
                article = await pipeline.article_for(Entry.from_dict(payload), last_try=True)
                assert "\ufffd" in article.text
                assert [m.rule_id for m in await pipeline.match_article(article)] == ["zebra"]
        finally:
            await close(pipeline)


# --- item 3: a 9.5 MB page: the text handed on is capped, the main process stays small, the worker is bounded ---------

BIG_PAGE = 9_500_000  # bytes: under fetch.max_bytes (10 MB); about 9.4 M characters of text


def peak_rss_mib(pid: int) -> float:
    """The kernel's high-water mark of the process's resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


async def test_a_9_5_mb_page_is_matched_on_capped_text_while_the_daemon_stays_small_and_answers_healthz(
        tmp_path, redis, keys, redis_url):
    port = free_port()
    async with LoopbackServer() as srv, aiohttp.ClientSession() as session:
        srv.route("/big.html", flat_html_page(BIG_PAGE), content_type="text/html; charset=utf-8")
        srv.route("/feed.xml", rss("Big", [("A very long report", srv.url("/big.html"))]),
                  content_type="application/rss+xml")
        config = daemon_config(tmp_path, redis_url, keys, feed=srv.url("/feed.xml"), port=port)
        inst = Instance(config, "big", tmp_path)
        answers: list[tuple[int, bool]] = []  # (status, whether the big entry was in flight at the time)
        try:
            await wait_started([inst])
            extracted = 'monitor_articles_total{outcome="extracted"} 1.0'
            while True:
                in_flight = srv.requests["/big.html"] > 0
                async with session.get(f"http://127.0.0.1:{port}/healthz",
                                       timeout=aiohttp.ClientTimeout(total=60)) as resp:
                    if answers or resp.status == 200:  # 503 "starting" until systemd would hear READY=1
                        answers.append((resp.status, in_flight))
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    if extracted in await resp.text():
                        break
                assert inst.alive(), inst.log()[-3000:]
                await asyncio.sleep(0.1)
            main_peak = peak_rss_mib(inst.proc.pid)
        finally:
            await stop_all([inst])
    print(f"main process peak {main_peak:.0f} MiB; {len(answers)} healthz answers, {sum(f for _, f in answers)} in flight")
    assert srv.requests["/big.html"] == 1
    assert all(status == 200 for status, _ in answers), answers
    assert sum(in_flight for _, in_flight in answers) >= 2  # it kept answering while the page was being handled
    article = await ArticleArchive(redis, keys, settings=ArchiveSettings()).get(srv.url("/big.html"))
    assert 190_000 < len(article.text) <= 200_000  # extract.max_text_chars, cut in the worker
    raw = connect(redis_url, decode_responses=False)
    try:  # the story record starts with its shingle count, 4 bytes big-endian (store/scripts/assign_story.lua)
        story_size = int.from_bytes((await raw.get(keys("{stories}", "s", article.story_id)))[:4], "big")
    finally:
        await raw.aclose()
    assert story_size == len(shingles(article.text, StorySettings().shingle_words))  # MinHash saw the cut text
    assert main_peak < 600, f"main process peaked at {main_peak:.0f} MiB"
    assert "article text cut from" in inst.log()


async def test_a_worker_over_its_memory_bound_is_replaced_and_only_that_entry_fails_with_the_reason(
        tmp_path, redis, keys, redis_url, corpus):
    small = (corpus / "pages" / "trafilatura" / "bbc.com.52241221.html").read_bytes()
    async with LoopbackServer() as srv:
        for path in ("/small-1.html", "/small-2.html"):
            srv.route(path, small, content_type="text/html")
        srv.route("/big.html", flat_html_page(BIG_PAGE), content_type="text/html")
        items = [(p, srv.url(p)) for p in ("/small-1.html", "/big.html", "/small-2.html")]
        srv.route("/feed.xml", rss("Mixed", items), content_type="application/rss+xml")
        # parsing the big page grows a worker by about 240 MiB, a small page by under 100 (imports included)
        pipeline = build_pipeline(tmp_path, redis, keys, redis_url, feeds=[srv.url("/feed.xml")],
                                  extra="workers: {processes: 1, memory_limit_mb: 150}")
        try:
            assert await pipeline.run_once() == 3
            dead = await pipeline.entries.dead()
            stats = await pipeline.source_stats.get("f0")
            archived = [await pipeline.archive.get(srv.url(p)) for p in ("/small-1.html", "/small-2.html")]
        finally:
            await close(pipeline)
    assert dead == []  # fetch_page auto: matched on its feed text instead
    assert (stats.failed, stats.last_error_url) == (1, srv.url("/big.html"))
    assert stats.last_error == ("WorkerOutOfMemory: extract_article took the worker over its memory bound "
                                "of 150 MiB (workers.memory_limit_mb); the worker was replaced")
    assert all(article is not None and len(article.text) > 1000 for article in archived)
    assert pipeline.pool.over_memory == 1
    assert srv.requests["/big.html"] == 1


def daemon_config(tmp_path: Path, redis_url: str, keys: Keys, *, feed: str, port: int, extra: str = "") -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.yaml").write_text(RULES)
    path = tmp_path / "monitor.yaml"
    path.write_text(f"""
data_dir: {tmp_path / 'data'}
redis: {{url: "{redis_url}", prefix: "{keys.prefix}"}}
sources: {{feeds: [{{id: big, url: "{feed}", interval: 3600}}]}}
fetch: {{allow_private_addresses: true, timeout: 30}}
extract: {{timeout: 120}}
rules: {{path: {rules}, watch: false}}
workers: {{processes: 1}}
pipeline: {{tick: 0.5}}
service: {{listen: "127.0.0.1:{port}"}}
{extra}
""")
    return path
