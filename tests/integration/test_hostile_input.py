"""Hostile input on the real poll and page paths (loopback server, worker processes, Redis): entity expansion hidden by
an EBCDIC encoding, and a page of 9.5 MB whose text must not reach the event loop whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servers import LoopbackServer

from monitor.config import load_config
from monitor.net import Fetcher
from monitor.pipeline import Pipeline
from monitor.rules import RuleWatcher
from monitor.store import Keys
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
                    pool=pool or WorkerPool(processes=1),
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
