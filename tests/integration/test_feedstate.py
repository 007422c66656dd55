"""FeedStore on a real Redis: registration, atomic claims with leases, success/error bookkeeping, seen-URL dedup."""

from __future__ import annotations

import asyncio

import pytest

from monitor.errors import PermanentError, RetryAfter, TransientError
from monitor.feedstate import FIRST_POLL_SPREAD, FeedStore
from monitor.models import Entry, Feed
from monitor.store import connect

NOW = 1_700_000_000.0


def feeds(*ids: str) -> list[Feed]:
    return [Feed(id=i, url=f"https://{i}.example.org/rss", name=i.upper()) for i in ids]


def entry(feed_id: str, url: str) -> Entry:
    return Entry(feed_id=feed_id, url=url, title=url)


@pytest.fixture
def store(redis, keys) -> FeedStore:
    return FeedStore(redis, keys)


async def test_new_feeds_are_due_within_the_first_poll_spread(store):
    await store.sync_feeds(feeds("a", "b"), now=NOW)
    assert await store.claim_due(now=NOW - 1, limit=10, lease=60) == []
    assert sorted(await store.claim_due(now=NOW + FIRST_POLL_SPREAD, limit=10, lease=60)) == ["a", "b"]
    state = await store.state("a")
    assert (state.url, state.name, state.next_check) == ("https://a.example.org/rss", "A", NOW + FIRST_POLL_SPREAD + 60)


async def test_claimed_feed_is_leased_and_comes_back_after_the_lease(store):
    await store.sync_feeds(feeds("a"), now=NOW)
    later = NOW + FIRST_POLL_SPREAD
    assert await store.claim_due(now=later, limit=10, lease=300) == ["a"]
    assert await store.claim_due(now=later + 299, limit=10, lease=300) == []
    assert await store.claim_due(now=later + 300, limit=10, lease=300) == ["a"]  # the claimer died: taken again


async def test_claim_due_at_takes_the_feeds_due_before_the_next_look_each_with_its_due_time(store, redis, keys):
    await store.sync_feeds(feeds("a", "b", "c"), now=NOW)
    await redis.zadd(keys.due, {"a": NOW - 3.0, "b": NOW + 0.4, "c": NOW + 1.5})  # c is due after the next look
    claimed = await store.claim_due_at(now=NOW, ahead=1.0, limit=10, lease=300)
    assert claimed == [("a", NOW - 3.0), ("b", NOW + 0.4)]
    assert await store.claim_due_at(now=NOW, ahead=1.0, limit=10, lease=300) == []  # leased
    assert await redis.zscore(keys.due, "b") == NOW + 300  # the lease counts from now, not from the look-ahead
    assert await store.claim_due_at(now=NOW + 1.0, ahead=1.0, limit=10, lease=300) == [("c", NOW + 1.5)]


async def test_claim_due_takes_at_most_limit(store):
    await store.sync_feeds(feeds(*"abcdefg"), now=NOW)
    first = await store.claim_due(now=NOW + 60, limit=3, lease=600)
    rest = await store.claim_due(now=NOW + 60, limit=10, lease=600)
    assert len(first) == 3 and len(rest) == 4 and not set(first) & set(rest)


async def test_two_concurrent_claimers_never_get_one_feed_twice(store, redis_url, keys):
    ids = [f"f{n:03d}" for n in range(300)]
    await store.sync_feeds(feeds(*ids), now=NOW)
    other_client = connect(redis_url)
    other = FeedStore(other_client, keys)

    async def drain(s: FeedStore) -> list[str]:
        got: list[str] = []
        while batch := await s.claim_due(now=NOW + 60, limit=7, lease=600):
            got += batch
            await asyncio.sleep(0)
        return got

    try:
        mine, theirs = await asyncio.gather(drain(store), drain(other))
    finally:
        await other_client.aclose()
    assert sorted(mine + theirs) == ids  # every feed claimed exactly once
    assert mine and theirs  # both really took part


async def test_claim_for_once_takes_every_configured_feed(store):
    await store.sync_feeds(feeds("a", "b"), now=NOW)
    assert await store.claim(["a", "b", "unknown"], now=NOW, lease=600) == ["a", "b"]
    assert await store.claim_due(now=NOW + FIRST_POLL_SPREAD, limit=10, lease=60) == []  # leased


async def test_unconfigured_feed_leaves_the_schedule_but_keeps_its_state(store):
    await store.sync_feeds(feeds("a", "b"), now=NOW)
    nxt = await store.record_success("a", now=NOW, interval=900, jitter=0, etag='"e1"', last_modified=None,
                                     new_entries=4, title="Feed A")
    await store.sync_feeds(feeds("b"), now=NOW)
    assert await store.claim_due(now=NOW + 10_000, limit=10, lease=60) == ["b"]
    assert [s.feed_id for s in await store.states()] == ["b"]
    kept = await store.state("a")
    assert (kept.etag, kept.entries_seen, kept.title, kept.next_check) == ('"e1"', 4, "Feed A", None)

    await store.sync_feeds(feeds("a", "b"), now=NOW + 5)  # configured again: its schedule is restored
    assert (await store.state("a")).next_check == nxt


async def test_success_stores_validators_and_resets_the_error_streak(store):
    await store.sync_feeds(feeds("a"), now=NOW)
    await store.record_error("a", TransientError("boom"), now=NOW, interval=100)
    nxt = await store.record_success("a", now=NOW, interval=900, jitter=60, etag='"x"',
                                     last_modified="Wed, 21 Oct 2015 07:28:00 GMT", new_entries=2)
    assert NOW + 900 <= nxt <= NOW + 960
    s = await store.state("a")
    assert (s.etag, s.last_modified, s.error_streak, s.last_success, s.next_check, s.entries_seen) == (
        '"x"', "Wed, 21 Oct 2015 07:28:00 GMT", 0, NOW, nxt, 2)
    await store.record_success("a", now=NOW + 1, interval=900, jitter=0, etag=None, last_modified=None,
                               new_entries=1)
    s = await store.state("a")
    assert (s.etag, s.last_modified, s.entries_seen) == (None, None, 3)  # validators the server dropped go too


async def test_backoff_grows_exponentially_up_to_the_cap(store):
    await store.sync_feeds(feeds("a"), now=NOW)
    delays = [await store.record_error("a", PermanentError("HTTP 404"), now=NOW, interval=100, max_backoff=1000)
              - NOW for _ in range(6)]
    assert delays == [100, 200, 400, 800, 1000, 1000]
    s = await store.state("a")
    assert (s.error_streak, s.last_error_at, s.next_check) == (6, NOW, NOW + 1000)


async def test_retry_after_delay_is_honoured(store):
    await store.sync_feeds(feeds("a"), now=NOW)
    nxt = await store.record_error("a", RetryAfter("https://a.example.org/rss: HTTP 429", 5000), now=NOW,
                                   interval=100)
    assert nxt == NOW + 5000


async def test_last_error_is_stored_without_secrets(store):
    await store.sync_feeds(feeds("a"), now=NOW)
    error = TransientError("https://bob:hunter2@a.example.org/rss?api_key=k3y&x=1: HTTP 500")
    await store.record_error("a", error, now=NOW, interval=100)
    text = (await store.state("a")).last_error
    assert text.startswith("TransientError: https://bob:***@a.example.org/rss?api_key=***&x=1: HTTP 500")
    assert "hunter2" not in text and "k3y" not in text


async def new_entries(store, entries, *, now):
    """What Pipeline.poll_source does: the unseen entries (publish them), then mark them seen."""
    fresh = await store.unseen(entries)
    await store.mark_seen(fresh, now=now)
    return fresh


async def test_new_entries_dedup_across_feeds_and_restarts(store, redis_url, keys):
    one, two = entry("a", "https://x.org/1"), entry("a", "https://x.org/2")
    assert await new_entries(store, [one, two], now=NOW) == [one, two]
    same_in_b, three = entry("b", "https://x.org/2"), entry("b", "https://x.org/3")
    assert await new_entries(store, [same_in_b, three], now=NOW) == [three]

    client = connect(redis_url)  # a restarted instance: new connection, new store, same Redis
    try:
        again = FeedStore(client, keys)
        assert await new_entries(again, [one, three, entry("a", "https://x.org/4")], now=NOW + 1) == [
            entry("a", "https://x.org/4")]
    finally:
        await client.aclose()


async def test_expire_seen_forgets_only_old_urls(store):
    old, recent = entry("a", "https://x.org/old"), entry("a", "https://x.org/recent")
    await new_entries(store, [old], now=NOW)
    await new_entries(store, [recent], now=NOW + 100)
    assert await store.expire_seen(older_than=NOW + 50) == 1
    assert await new_entries(store, [old, recent], now=NOW + 200) == [old]


async def test_seen_urls_move_to_more_shards_as_they_grow_and_stay_seen(redis, keys):
    """Level 0 holds 256 x seen_per_shard URLs; past that new ones go to level 1 (512 shards), and so on, so a
    shard stays a small listpack hash; every level is still read, and an emptied level is no longer."""
    store = FeedStore(redis, keys, seen_per_shard=1)
    first = [entry("a", f"https://x.org/first/{n}") for n in range(300)]
    second = [entry("a", f"https://x.org/second/{n}") for n in range(300)]
    assert await new_entries(store, first, now=NOW) == first  # 0 kept before: all at level 0
    assert await new_entries(store, second, now=NOW + 100) == second  # 300 kept > 256: level 1
    level_one = [key async for key in redis.scan_iter(match=keys.prefix + "seen:url:1:*")]
    assert 200 < len(level_one) <= 300
    assert await redis.hget(keys.seen_levels, "n") == "600"
    again = FeedStore(redis, keys, seen_per_shard=1)
    assert await new_entries(again, first + second + [entry("a", "https://x.org/3")], now=NOW + 200) == [
        entry("a", "https://x.org/3")]  # level 2 now (601 kept > 512)
    assert await again.expire_seen(older_than=NOW + 150) == 600  # levels 0 and 1 emptied
    assert await redis.hget(keys.seen_levels, "n") == "1"
    assert sorted(await redis.hkeys(keys.seen_levels)) == ["2", "n"]  # level 1 retired, level 2 still read
    assert await new_entries(again, [second[0], entry("a", "https://x.org/3")], now=NOW + 300) == [second[0]]


async def test_urls_marked_seen_by_the_version_before_are_still_seen(store, redis, keys):
    """The version before kept every seen URL in the 256 hashes that are level 0 now: hash -> first-seen time."""
    from monitor.dedup import url_hash

    old = entry("a", "https://x.org/before")
    hashed = url_hash(old.url)
    await redis.hset(keys.seen_urls(hashed[:2]), hashed, repr(NOW))
    await redis.hset(keys.seen_levels, mapping={"n": 500_000, "5": 1})  # many kept: new URLs go to level 5
    assert await new_entries(store, [old, entry("a", "https://x.org/new")], now=NOW + 1) == [
        entry("a", "https://x.org/new")]
    assert await redis.exists(keys.seen_urls_at(5, int(url_hash("https://x.org/new")[:8], 16) >> 19))
    assert await store.expire_seen(older_than=NOW + 0.5) == 1
    assert await new_entries(store, [old], now=NOW + 2) == [old]
