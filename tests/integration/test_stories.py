"""Story clusters on realistic data: republished copies of corpus articles join one story, distinct articles don't.

Copies imitate syndication: the other site's own boilerplate before and after, the text cut to 60-80%, the headline
lightly edited and one sentence rewritten. The generator is seeded, so every run sees the same copies.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.dedup import StoryIndex, url_hash
from monitor.settings import StorySettings
from monitor.extract import NoArticle, extract_article
from monitor.models import Article
from monitor.store import Keys, connect

BOILERPLATE = [
    "Subscribe to the {site} newsletter for the latest headlines delivered to your inbox every morning.",
    "Share this article on Facebook, Twitter, LinkedIn or by email. Print this page.",
    "Related: more stories from the {site} world desk that you may have missed this week.",
    "Advertisement. Scroll to continue reading.",
    "Copyright 2024 The Associated Press. All rights reserved. This material may not be published, broadcast, "
    "rewritten or redistributed without permission.",
    "Sign up for {site} breaking news alerts, download our app and follow us on social media.",
    "Most read on {site}: ten things to know before the markets open; weather warning for the weekend.",
    "Reporting by our correspondents; additional reporting by wire agencies. Edited by the {site} news desk.",
    "We use cookies to improve your experience on {site}. By continuing you accept our privacy policy.",
    "Read more: the latest on this developing story and reactions from around the world.",
]
# Two corpus pages that are the same EFE wire story on two Chilean sites: a real near-duplicate.
WIRE_PAIR = ("cooperativa.cl", "24horas.cl")
BASE_STORIES = 4
DISTINCT = 40
COPIES = 30


def republish(article: Article, rng: random.Random, n: int) -> Article:
    """One syndicated copy of `article` on another site."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", article.text) if s.strip()]
    budget = len(article.text) * rng.uniform(0.6, 0.8)
    body = []
    for sentence in sentences:  # cut at a sentence end once 60-80% of the text is in
        if body and sum(map(len, body)) >= budget:
            break
        body.append(sentence)
    body[rng.randrange(len(body))] = "A spokesperson declined to comment on the report when contacted on Friday."
    site = f"Copy site {n}"
    chrome = random.Random(n).sample(BOILERPLATE, 6)  # each site has its own header and footer lines
    before = [line.format(site=site) for line in chrome[:rng.randint(1, 3)]]
    after = [line.format(site=site) for line in chrome[3:3 + rng.randint(1, 3)]]
    title = rng.choice([article.title.upper(), article.title + " | Daily Wire", "UPDATE: " + article.title])
    return replace(article, url=f"https://copy{n}.example/news/{url_hash(article.url)}",
                   source=site, title=title, text="\n".join(before + body + after))


@pytest.fixture(scope="module")
def articles(corpus: Path) -> list[Article]:
    """Extracted corpus pages with at least 1,500 characters of text, in manifest order; the first BASE_STORIES
    have at least 2,500 (a wire story's length: on shorter texts our boilerplate can outweigh what is left)."""
    pages = json.loads((corpus / "pages" / "manifest.json").read_text())["pages"]
    found = []
    for page in pages:
        try:
            article = extract_article((corpus / "pages" / page["file"]).read_bytes(), url=page["url"],
                                      content_type="text/html", source=page["url"].split("/")[2])
        except NoArticle:
            continue
        if len(article.text) >= (2500 if len(found) < BASE_STORIES else 1500):
            found.append(article)
        if len(found) >= BASE_STORIES + DISTINCT and any(WIRE_PAIR[1] in a.url for a in found):
            break
    return found


def index(redis, keys: Keys, **settings) -> StoryIndex:
    return StoryIndex(redis, keys, settings=StorySettings(**settings))


def as_stored_before(redis, stories: StoryIndex, layout: str, article: Article):
    """(the older version's script, registered; the article's story id, signature, fingerprint and band values, as
    that version computed them) for a test that stores a story in the layout before."""
    from monitor.dedup import band_values, fingerprint, minhash_signature, shingles

    script = redis.register_script((Path(__file__).parents[1] / "data" / "layouts" / layout).read_text())
    shingle_set = shingles(article.text, 5)
    sig = minhash_signature(shingle_set, StorySettings().num_perm)
    return (script, url_hash(article.url)[:16], sig, len(shingle_set), fingerprint(article.text),
            band_values(sig, stories.bands, stories.rows))


async def test_thirty_republished_copies_of_a_story_join_that_story(redis, keys: Keys, articles: list[Article]):
    stories = index(redis, keys)
    rng = random.Random(20240601)
    for original in articles[:BASE_STORIES]:
        first = await stories.assign(original)
        assert first.new_story and first.first_url == original.url
        joined = set()
        for n in range(COPIES):
            copy = republish(original, rng, n)
            got = await stories.assign(copy)
            assert not got.new_story, f"copy {n} of {original.url} started a new story"
            joined.add(got.story_id)
        assert joined == {first.story_id}
        members = await stories.members(first.story_id)
        assert members[0] == (original.source, original.url)
        assert [url for _, url in members[1:]] == [republish(original, random.Random(0), n).url
                                                   for n in range(COPIES)]


async def test_distinct_articles_each_start_their_own_story(redis, keys: Keys, articles: list[Article]):
    stories = index(redis, keys)
    outcomes = {}
    for article in articles:
        if WIRE_PAIR[1] in article.url:
            continue  # the same wire story as its partner: see the next test
        outcomes[article.url] = await stories.assign(article)
    assert len(outcomes) >= DISTINCT
    false_joins = [url for url, got in outcomes.items() if not got.new_story]
    assert false_joins == []
    assert len({got.story_id for got in outcomes.values()}) == len(outcomes)


async def test_the_same_wire_story_on_two_sites_is_one_story(redis, keys: Keys, articles: list[Article]):
    stories = index(redis, keys)
    first, second = (next(a for a in articles if site in a.url) for site in WIRE_PAIR)
    a = await stories.assign(first)
    b = await stories.assign(second)
    assert a.new_story and not b.new_story and not b.exact_duplicate
    assert b.story_id == a.story_id and b.first_url == first.url
    assert b.similarity >= 0.5


async def test_exact_copy_at_another_url_is_an_exact_duplicate(redis, keys: Keys, articles: list[Article]):
    stories = index(redis, keys)
    original = articles[0]
    first = await stories.assign(original)
    copy = replace(original, url="https://mirror.example/a", source="Mirror",
                   text=original.text.upper().replace(".", " . "))  # same words, other case and punctuation
    got = await stories.assign(copy)
    assert got.exact_duplicate and not got.new_story
    assert (got.story_id, got.similarity, got.first_url) == (first.story_id, 1.0, original.url)
    assert got.fingerprint == first.fingerprint != ""
    assert await stories.members(first.story_id) == [(original.source, original.url), ("Mirror", copy.url)]


async def test_redelivered_article_is_not_listed_twice(redis, keys: Keys, articles: list[Article]):
    stories = index(redis, keys)
    first = await stories.assign(articles[1])
    again = await stories.assign(articles[1])
    assert again.story_id == first.story_id and again.exact_duplicate
    assert len(await stories.members(first.story_id)) == 1


async def test_rewritten_article_at_the_same_url_stays_in_its_story(redis, keys: Keys, articles: list[Article]):
    stories = index(redis, keys)
    first = await stories.assign(articles[2])
    rewritten = replace(articles[2], text=articles[3].text)  # nothing left in common but the URL
    got = await stories.assign(rewritten)
    assert got.story_id == first.story_id and not got.new_story and got.similarity < 0.5


async def test_instances_racing_on_one_new_story_create_it_once(redis_url: str, keys: Keys,
                                                                articles: list[Article]):
    clients = [connect(redis_url) for _ in range(6)]
    try:
        rng = random.Random(7)
        copies = [republish(articles[0], rng, n) for n in range(12)]
        results = await asyncio.gather(*(index(clients[n % 6], keys).assign(c) for n, c in enumerate(copies)))
        assert sum(r.new_story for r in results) == 1
        assert len({r.story_id for r in results}) == 1
        assert len(await index(clients[0], keys).members(results[0].story_id)) == 12
    finally:
        for client in clients:
            async for key in client.scan_iter(match=keys.prefix + "*"):
                await client.delete(key)
            await client.aclose()


async def test_every_story_key_expires_within_retention(redis, keys: Keys, articles: list[Article]):
    stories = index(redis, keys, retention_days=2)
    await stories.assign(articles[0])
    await stories.assign(republish(articles[0], random.Random(1), 0))
    found = [key async for key in redis.scan_iter(match=keys.prefix + "*")]
    assert len(found) > 40  # fingerprints, band buckets, story hash, members
    for key in found:
        assert 0 < await redis.ttl(key) <= 2 * 86400, key


async def test_works_with_a_client_that_returns_bytes(redis_url: str, keys: Keys, articles: list[Article]):
    client = connect(redis_url, decode_responses=False)
    try:
        stories = index(client, keys)
        first = await stories.assign(articles[0])
        got = await stories.assign(republish(articles[0], random.Random(3), 1))
        assert got.story_id == first.story_id and isinstance(got.story_id, str)
        assert (await stories.members(first.story_id))[0] == (articles[0].source, articles[0].url)
    finally:
        async for key in client.scan_iter(match=keys.prefix + "*"):
            await client.delete(key)
        await client.aclose()


async def test_article_without_text_or_title_is_a_story_of_its_own(redis, keys: Keys):
    stories = index(redis, keys)
    a = await stories.assign(Article(url="https://x.example/1"))
    b = await stories.assign(Article(url="https://x.example/2"))
    assert a.new_story and b.new_story and a.story_id != b.story_id and a.fingerprint == ""


async def test_a_story_keeps_only_what_joining_and_alerts_read(redis, redis_url: str, keys: Keys,
                                                               articles: list[Article]):
    """One string per story (shingle count, binary signature, the copies); band values and fingerprints are fields
    of hash buckets, not a key each."""
    stories = index(redis, keys)
    first = await stories.assign(articles[0])
    copy = republish(articles[0], random.Random(4), 0)
    await stories.assign(copy)
    client = connect(redis_url, decode_responses=False)
    try:
        record = await client.get(keys("{stories}", "s", first.story_id))
        found = [key.decode() async for key in client.scan_iter(match=keys.prefix + "*")]
    finally:
        await client.aclose()
    num_perm = StorySettings().num_perm
    assert record[8:10] == (4 * num_perm).to_bytes(2, "big")  # the signature binary, not hex
    assert record[10 + 4 * num_perm:].decode() == (
        f"{articles[0].source}\x1f{articles[0].url}\x1e{copy.source}\x1f{copy.url}\x1e")
    kinds = {key[len(keys.prefix):].split(":")[1] for key in found}
    assert kinds == {"s", "bn", "fk", "bm"}  # no story hash, no members list, no key per band or fingerprint
    fields = [field async for key in redis.scan_iter(match=keys.prefix + "{stories}:bn:*")
              for field in await redis.execute_command("HKEYS", key, NEVER_DECODE=True)]
    assert len(fields) == stories.bands and {len(f) for f in fields} == {5}  # one story's bands (the copy joined)
    assert len(await stories.members(first.story_id)) == 2


async def test_stories_stored_in_the_layout_before_are_still_joined(redis, keys: Keys, articles: list[Article]):
    """Stories the previous version wrote (one key per band and fingerprint, a story hash and a members list, by
    that version's script) are found, joined and listed until they expire; nothing new is written in that layout."""
    stories = index(redis, keys)
    old = articles[0]
    before, old_id, sig, n_shingles, fp, bands = as_stored_before(redis, stories, "assign_story_before_buckets.lua",
                                                                  old)
    await before(keys=[keys.story_fingerprint(fp), *(keys.story_band(b) for b in bands)],
                 args=[old_id, old.url, old.source, bytes.fromhex(sig), n_shingles, "0.5", 86400,
                       keys.story(), "1", "", repr(stories.jaccard_floor), stories.min_common])
    assert await redis.exists(keys.story(old_id), keys.story_members(old_id)) == 2
    await redis.hset(keys.story(old_id), "sig", sig)  # and a signature in hex, as two versions ago

    copy = republish(old, random.Random(9), 0)
    near = await stories.assign(copy)
    assert near.story_id == old_id and not near.new_story and near.first_url == old.url
    exact = await stories.assign(replace(old, url="https://mirror.example/x"))
    assert exact.story_id == old_id and exact.exact_duplicate
    again = await stories.assign(old)  # already a member: not listed twice
    assert again.story_id == old_id
    assert [url for _, url in await stories.members(old_id)] == [old.url, copy.url, "https://mirror.example/x"]
    assert not await redis.exists(keys("{stories}", "s", old_id))
    new = await stories.assign(articles[1])
    for story_id in (old_id, new.story_id, "0123456789abcdef"):  # queued on a pipeline (the pipeline's match stage)
        async with redis.pipeline(transaction=False) as pipe:
            assert stories.store.queue_members(pipe, story_id) == 1
            queued = await stories.store.members_from(*await pipe.execute(), story_id)
        assert queued == await stories.members(story_id)
    assert queued == []


async def test_band_buckets_stay_compact_as_they_fill_and_old_stories_are_still_found(redis, keys: Keys,
                                                                                    articles: list[Article]):
    """Past 80 band values a shard the period's buckets move up a level (twice the shards): every bucket stays a
    compact hash (at most 128 fields, Redis's listpack limit), and a story stored before the move is still found."""
    stories = index(redis, keys)
    first = await stories.assign(articles[0])
    rng = random.Random(7)
    vocabulary = [f"w{n}" for n in range(5000)]
    for n in range(560):  # ~42 band values a story: past 256 shards x 80
        await stories.assign(Article(url=f"https://filler.example/{n}",
                                     text=" ".join(rng.choice(vocabulary) for _ in range(150))))
    buckets = [key async for key in redis.scan_iter(match=keys.prefix + "{stories}:bn:*")]
    levels = {key.split(":")[-2] for key in buckets}
    assert {"0", "1"} <= levels
    sizes = [await redis.hlen(key) for key in buckets]
    assert max(sizes) <= 128 and sum(sizes) > 256 * 80
    copy = await stories.assign(republish(articles[0], random.Random(11), 0))
    assert copy.story_id == first.story_id and not copy.new_story


async def test_stories_whose_bands_were_stored_whole_are_still_joined(redis, keys: Keys, articles: list[Article]):
    """The version before kept each band value whole (8 bytes but the shard's) in bk: buckets, by that version's
    script; its stories are found by their bands, and new stories' bands go to bn: buckets of 5-byte fields."""
    from monitor.store.stories import _band_field, _fingerprint_field

    stories = index(redis, keys)
    old = articles[0]
    before, old_id, sig, n_shingles, fp, bands = as_stored_before(redis, stories, "assign_story_before_short_bands.lua",
                                                                  old)
    await before(keys=[keys.story_fingerprint(fp), *(keys.story_band(b) for b in bands)],
                 args=[old_id, old.url, old.source, bytes.fromhex(sig), n_shingles, "0.5", stories.ttl,
                       keys.story(), "1", int(time.time()), repr(stories.jaccard_floor), stories.min_common,
                       keys.stories_prefix, 30 * 86400 // 4, _fingerprint_field(fp),
                       *(_band_field(b) for b in bands)])
    whole = [key async for key in redis.scan_iter(match=keys.prefix + "{stories}:bk:*")]
    assert whole and not [key async for key in redis.scan_iter(match=keys.prefix + "{stories}:bn:*")]
    assert {len(field) for key in whole for field in await redis.execute_command("HKEYS", key, NEVER_DECODE=True)}\
        == {8}

    near = await stories.assign(republish(old, random.Random(9), 0))  # found through the whole bands
    assert near.story_id == old_id and not near.new_story and near.first_url == old.url
    other = await stories.assign(articles[1])
    assert other.new_story
    short = [key async for key in redis.scan_iter(match=keys.prefix + "{stories}:bn:*")]
    assert {len(field) for key in short for field in await redis.execute_command("HKEYS", key, NEVER_DECODE=True)}\
        == {5}
    again = await stories.assign(republish(articles[1], random.Random(10), 1))  # found through the short bands
    assert again.story_id == other.story_id and not again.new_story


async def test_a_story_alike_in_a_bands_kept_bytes_is_passed_over(redis, keys: Keys, articles: list[Article]):
    """A bucket keeps 5 bytes of a band: a story whose band values agree in them but not in the rest (planted in an
    older period, which lookups read first, under every band of a story) is not taken for a candidate, and the
    real story is still found and joined."""
    import math
    import struct

    from monitor.dedup import band_values, minhash_signature, shingles
    from monitor.store.stories import MIN_PERIOD, _band_field

    stories = index(redis, keys)
    first = await stories.assign(articles[0])
    sig = minhash_signature(shingles(articles[0].text, 5), StorySettings().num_perm)
    period = max(MIN_PERIOD, math.ceil(stories.ttl / 4))
    older = int(time.time()) // period - 1
    rng = random.Random(3)
    other_sig = bytes(rng.randrange(256) for _ in range(len(sig) // 2))
    other_id = "00aa00aa00aa00aa"
    record = (struct.pack(">IIH", 400, older * period + 1, len(other_sig)) + other_sig
              + b"Other\x1fhttps://o.example/\x1e")
    await redis.execute_command("SET", keys.story_record(other_id), record, "EX", stories.ttl)
    await redis.hset(keys.stories_prefix + f"bm:bn:{older}", mapping={"lo": 0, "hi": 0, "n": 0})
    for band in band_values(sig, stories.bands, stories.rows):
        field = _band_field(band)
        bucket = keys.stories_prefix + f"bn:{older}:0:{field[-1]}"
        await redis.hset(bucket, field[:5], bytes.fromhex(other_id))
    copy = await stories.assign(republish(articles[0], random.Random(4), 0))
    assert copy.story_id == first.story_id and not copy.new_story


async def dump(client, prefix: str) -> dict[str, tuple[str, object, bool]]:
    """Every key under `prefix` (named without it): its type, its value and whether it expires."""
    found = {}
    async for key in client.scan_iter(match=prefix.encode() + b"*", count=1000):
        kind = (await client.type(key)).decode()
        value = {"string": client.get, "hash": client.hgetall,
                 "list": lambda k: client.lrange(k, 0, -1)}[kind](key)
        found[key[len(prefix):].decode("latin-1")] = (kind, await value, await client.ttl(key) > 0)
    return found


async def test_writes_kept_in_the_call_leave_what_a_meta_write_per_band_left(redis, redis_url: str, keys: Keys,
                                                                            articles: list[Article], monkeypatch):
    """The script keeps a period's level and count in the call and writes its meta once (store/scripts/
    assign_story.lua): over stories that move a period up a level in the middle of one story's bands, start a new
    period at the previous one's top level, join, copy exactly, come back under their own URL and are passed over
    where a live story is alike in a band's kept bytes, it answers as the version that wrote the meta at every band
    (tests/data/layouts/assign_story_before_batched_writes.lua) and leaves the same keys, values and expiries."""
    import math
    import struct
    import types

    import monitor.store.stories as stories_module
    from monitor.dedup import band_values, minhash_signature, shingles
    from monitor.store.stories import MIN_PERIOD, _band_field

    before = (Path(__file__).parents[1] / "data" / "layouts" / "assign_story_before_batched_writes.lua").read_text()
    rng = random.Random(5)
    vocabulary = [f"w{n}" for n in range(3000)]
    fillers = [Article(url=f"https://filler.example/{n}", text=" ".join(rng.choice(vocabulary) for _ in range(120)))
               for n in range(6)]
    edited = replace(articles[2], text=articles[3].text)  # the same URL, other content
    first_period = [articles[0], republish(articles[0], random.Random(1), 0),
                    replace(articles[0], url="https://m.example/0"), articles[1], articles[2], *fillers[:3], edited,
                    republish(articles[1], random.Random(2), 1)]
    second_period = [articles[5], republish(articles[0], random.Random(3), 2), *fillers[3:], articles[4]]
    ttl = StorySettings().retention_days * 86400
    period = max(MIN_PERIOD, math.ceil(ttl / 4))
    start = (int(time.time()) // period) * period + 10
    limit = 80 * 256

    async def run(prefix: str, script: str | None) -> tuple[list, dict]:
        store_keys = Keys(prefix=prefix)
        stories = index(redis, store_keys)
        if script is not None:
            stories.store._script = redis.register_script(script)
        p, sp = start // period, store_keys.stories_prefix
        await redis.hset(sp + f"bm:bn:{p}", mapping={"lo": 0, "hi": 0, "n": limit - 20})  # up a level in a story
        await redis.hset(sp + f"bm:fk:{p}", mapping={"lo": 0, "hi": 0, "n": limit - 2})  # and between stories
        await redis.expire(sp + f"bm:fk:{p}", ttl)
        # a live story alike in the kept bytes of half of articles[4]'s bands, at the level they are written to
        sig = minhash_signature(shingles(articles[4].text, 5), StorySettings().num_perm)
        other_sig = bytes(random.Random(8).randrange(256) for _ in range(len(sig) // 2))
        record = (struct.pack(">IIH", 400, start + period, len(other_sig)) + other_sig
                  + b"Other\x1fhttps://o.example/\x1e")
        await redis.execute_command("SET", store_keys.story_record("00bb00bb00bb00bb"), record, "EX", ttl)
        for band in band_values(sig, stories.bands, stories.rows)[::2]:
            field = _band_field(band)
            shard = int.from_bytes(field[-4:], "big") % 512
            await redis.hset(sp + f"bn:{p + 1}:1:{shard}", field[:5], bytes.fromhex("00bb00bb00bb00bb"))
        answers = []
        for now, batch in ((start, first_period), (start + period, second_period)):
            monkeypatch.setattr(stories_module, "time", types.SimpleNamespace(time=lambda: now))
            answers += [await stories.assign(article) for article in batch]
        client = connect(redis_url, decode_responses=False)
        try:
            return answers, await dump(client, prefix)
        finally:
            await client.aclose()

    old_answers, old_state = await run(keys.prefix + "old:", before)
    new_answers, new_state = await run(keys.prefix + "new:", None)
    assert new_answers == old_answers
    assert [a.new_story for a in new_answers] == [True, False, False, True, True, True, True, True, False, False,
                                                  True, False, True, True, True, True]
    assert new_answers[2].exact_duplicate and new_answers[8].story_id == new_answers[4].story_id
    assert new_state == old_state
    p = start // period
    levels = {name.split(":")[3] for name in new_state if name.startswith(f"{{stories}}:bn:{p}:")}
    assert levels == {"0", "1"}  # the first period moved up a level
    meta = new_state[f"{{stories}}:bm:bn:{p}"][1]
    assert (meta[b"lo"], meta[b"hi"]) == (b"0", b"1") and 0 < int(meta[b"n"]) < 80 * 256
    assert new_state[f"{{stories}}:bm:bn:{p + 1}"][1][b"lo"] == b"1"  # the next one starts there
    assert new_state[f"{{stories}}:bm:fk:{p}"][1][b"hi"] == b"1"
    planted = [name for name in new_state if name.startswith(f"{{stories}}:bn:{p + 1}:1:")
               and bytes.fromhex("00bb00bb00bb00bb") in new_state[name][1].values()]
    assert len(planted) > 10  # articles[4]'s bands alike in their kept bytes were passed over, not replaced
