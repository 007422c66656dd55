"""The article archive on a real Redis: round trip, replay order and paging, retention, odd inputs."""

from __future__ import annotations

import base64
import json
import zlib

import brotli
import pytest

from monitor.archive import ArticleArchive, CorruptArchiveEntry
from monitor.settings import ArchiveSettings
from monitor.dedup import url_hash
from monitor.models import Article
from monitor.store import Keys, connect

DAY = 86400.0
T0 = 1_700_000_000.0


def article(n: int, **fields) -> Article:
    values = {"url": f"https://news.example/story/{n}", "feed_id": "f1", "title": f"Story {n}",
              "text": f"Text of story {n}. Kyiv, Ukraine — «quotes» and ümlauts. " * 20}
    return Article(**{**values, **fields})


def archive(redis, keys: Keys, **settings) -> ArticleArchive:
    return ArticleArchive(redis, keys, settings=ArchiveSettings(**settings))


async def test_put_then_get_returns_the_same_article(redis, keys: Keys):
    store = archive(redis, keys)
    original = article(1, author="A. Writer", published="2024-05-01", language="en", story_id="s1",
                       fingerprint="f" * 32)
    await store.put(original, now=T0)
    assert await store.get(original.url) == original
    assert await store.get("https://news.example/story/404") is None


async def test_get_finds_the_article_by_a_non_canonical_form_of_its_url(redis, keys: Keys):
    store = archive(redis, keys)
    await store.put(article(2), now=T0)
    got = await store.get("HTTPS://News.Example:443/story/2?utm_source=rss#comments")
    assert got is not None and got.title == "Story 2"


async def test_entries_are_compressed_binary(redis, redis_url: str, keys: Keys):
    """Brotli bytes behind a 5-byte header (format, when put), not base64 text (a third longer)."""
    store = archive(redis, keys)
    await store.put(article(3), now=T0 + 0.7)
    client = connect(redis_url, decode_responses=False)
    try:
        raw = await client.get(keys("archive", url_hash(article(3).url)))
    finally:
        await client.aclose()
    assert raw[:5] == bytes([1]) + int(T0).to_bytes(4, "big")
    stored = json.loads(brotli.decompress(raw[5:]))
    assert Article.from_dict(stored) == article(3)
    assert "author" not in stored and "published" not in stored  # fields at their default are left out
    assert stored["fingerprint"] == ""  # none given, though the text has one: kept as given


async def test_the_texts_own_fingerprint_is_left_out_and_restored(redis, redis_url: str, keys: Keys):
    from monitor.dedup import fingerprint

    store = archive(redis, keys)
    own = article(4, fingerprint=fingerprint(article(4).text))
    titled = article(5, text=" ", fingerprint=fingerprint("Story 5"))  # a blank text: the title's
    for item in (own, titled):
        await store.put(item, now=T0)
        assert await store.get(item.url) == item
    client = connect(redis_url, decode_responses=False)
    try:
        raw = await client.get(keys("archive", url_hash(own.url)))
    finally:
        await client.aclose()
    assert "fingerprint" not in json.loads(brotli.decompress(raw[5:]))
    assert len(raw) < len(article(3).to_json()) / 2  # the repeated text compresses well


async def test_entries_and_index_of_the_versions_before_are_still_read(redis, redis_url: str, keys: Keys):
    """What the versions before wrote: a ZSET url hash -> when put, entries as zlib bytes or base64 text of them.
    Replay lists them first, then this version's; an old entry put again is listed once, at its new time."""
    store = archive(redis, keys)
    client = connect(redis_url, decode_responses=False)
    try:
        for n, encode in ((1, lambda raw: base64.b64encode(raw).decode("ascii")), (2, lambda raw: raw), (3, bytes)):
            raw = zlib.compress(article(n).to_json().encode("utf-8"), 6)
            await client.set(keys("archive", url_hash(article(n).url)), encode(raw))
            await client.zadd(keys.archive_index, {url_hash(article(n).url): T0 + n})
    finally:
        await client.aclose()
    await store.put(article(4), now=T0 + 10)
    await store.put(article(3, title="Story 3, updated"), now=T0 + 20)
    assert await store.get(article(1).url) == article(1)
    assert await store.get(article(2).url) == article(2)
    assert [a.title async for a in store.since(T0)] == ["Story 1", "Story 2", "Story 4", "Story 3, updated"]
    assert [a.title async for a in store.since(T0 + 2, batch=1)] == ["Story 2", "Story 4", "Story 3, updated"]
    assert await store.prune(now=T0 + 30 * DAY + 2.5) == 2  # the index before is pruned too
    assert [a.title async for a in store.since(0)] == ["Story 4", "Story 3, updated"]


async def test_replay_since_lists_articles_oldest_first_from_the_start_time(redis, keys: Keys):
    store = archive(redis, keys)
    for n in (5, 1, 4, 2, 3):
        await store.put(article(n), now=T0 + n * 60)
    got = [a.title async for a in store.since(T0 + 2 * 60)]
    assert got == ["Story 2", "Story 3", "Story 4", "Story 5"]


async def test_replay_pages_through_many_articles_with_equal_times(redis, keys: Keys):
    store = archive(redis, keys)
    for n in range(23):
        await store.put(article(n), now=T0 + (n // 10))  # runs of 10 articles share one timestamp
    got = [a.url async for a in store.since(T0, batch=4)]
    assert sorted(got) == sorted(article(n).url for n in range(23))
    assert len(got) == 23


async def test_putting_an_article_again_replaces_it_and_moves_it_to_its_new_time(redis, keys: Keys):
    store = archive(redis, keys)
    await store.put(article(1), now=T0)
    await store.put(article(2), now=T0 + 10)
    await store.put(article(1, title="Story 1, updated"), now=T0 + 20)
    await store.put(article(3), now=T0 + 2 * 3600)  # another hour's list
    await store.put(article(2, title="Story 2, updated"), now=T0 + 2 * 3600 + 5)
    await store.put(article(2, title="Story 2, again"), now=T0 + 2 * 3600 + 5)  # a retry in the same second
    assert [a.title async for a in store.since(T0)] == ["Story 1, updated", "Story 3", "Story 2, again"]


async def test_long_texts_are_cut_to_the_limit(redis, keys: Keys):
    store = archive(redis, keys, max_text_chars=1000)
    await store.put(article(1), now=T0)
    got = await store.get(article(1).url)
    assert got is not None and len(got.text) == 1000 and got.text == article(1).text[:1000]


async def test_prune_drops_articles_older_than_retention(redis, keys: Keys):
    store = archive(redis, keys, retention_days=7)
    await store.put(article(1), now=T0)
    await store.put(article(2), now=T0 + 3 * DAY)
    assert await store.prune(now=T0 + 8 * DAY) == 1
    assert [a.title async for a in store.since(0)] == ["Story 2"]
    assert await store.prune(now=T0 + 8 * DAY) == 0


async def test_every_archive_key_expires_within_retention(redis, keys: Keys):
    store = archive(redis, keys, retention_days=2)
    await store.put(article(1), now=T0)
    found = [key async for key in redis.scan_iter(match=keys.prefix + "*")]
    assert len(found) == 3  # the entry, its hour's list, the list of hours
    for key in found:
        assert 0 < await redis.ttl(key) <= 2 * DAY


async def test_replay_skips_expired_and_corrupt_entries(redis, keys: Keys, caplog: pytest.LogCaptureFixture):
    store = archive(redis, keys)
    for n in (1, 2, 3):
        await store.put(article(n), now=T0 + n)
    await redis.delete(keys("archive", url_hash(article(1).url)))
    await redis.set(keys("archive", url_hash(article(2).url)), "not base64 zlib json!")
    assert [a.title async for a in store.since(T0)] == ["Story 3"]
    assert "does not decode" in caplog.text
    with pytest.raises(CorruptArchiveEntry, match="does not decode"):
        await store.get(article(2).url)


async def test_works_with_a_client_that_returns_bytes(redis_url: str, keys: Keys):
    client = connect(redis_url, decode_responses=False)
    try:
        store = archive(client, keys)
        await store.put(article(1), now=T0)
        await store.put(article(2), now=T0 + 1)
        assert await store.get(article(1).url) == article(1)
        assert [a.title async for a in store.since(T0, batch=1)] == ["Story 1", "Story 2"]
    finally:
        async for key in client.scan_iter(match=keys.prefix + "*"):
            await client.delete(key)
        await client.aclose()


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError):
        ArchiveSettings(retention=3)


async def test_no_record_is_kept_for_an_article_no_rule_fired_on(redis, keys: Keys):
    from monitor.replay import matched_key, record_matched

    url = "https://example.org/a"
    await record_matched(redis, keys, url, ["rule-b", "rule-a"], ttl=3600)
    assert await redis.get(matched_key(keys, url)) == '["rule-a", "rule-b"]'
    await record_matched(redis, keys, url, [], ttl=3600)  # the article again (edited): nothing fires now
    assert not await redis.exists(matched_key(keys, url))
    await record_matched(redis, keys, "https://example.org/b", [], ttl=3600)
    assert [key async for key in redis.scan_iter(match=keys.prefix + "matched:*")] == []
