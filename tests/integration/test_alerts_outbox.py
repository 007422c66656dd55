"""The outbox against real Redis: once per (rule, story), updates on changed facts, recovery from a failed submit."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError

from monitor.settings import AlertSettings
from monitor.alerts.history import AlertHistory
from monitor.alerts.outbox import INFLIGHT_GRACE, Outbox
from monitor.errors import TransientError
from monitor.streams import Stream

try:
    from tests.receivers import arms_match, wire_copy
except ModuleNotFoundError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from receivers import arms_match, wire_copy


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def outbox(redis, keys, clock=None) -> Outbox:
    return Outbox(redis, keys, settings=AlertSettings(), channels={}, clock=clock or Clock())


async def stream_payloads(redis, keys) -> list[dict]:
    return [p for _, p in await _entries(redis, keys)]


async def _entries(redis, keys):
    import json

    return [(i, json.loads(f["data"])) for i, f in await redis.xrange(keys.stream("alerts"))]


async def test_concurrent_copies_from_two_instances_make_one_alert(redis, keys):
    a, b = outbox(redis, keys), outbox(redis, keys)
    copies = [wire_copy(i) for i in range(30)]
    results = await asyncio.gather(*((a if i % 2 else b).submit(arms_match(), art, story_id="s",
                                                                 sources=[(art.source, art.url)])
                                     for i, art in enumerate(copies)), return_exceptions=True)
    # A copy that arrives while the first alert is being written is retried later (as the stream redelivers it)
    for i, result in enumerate(results):
        if isinstance(result, TransientError):
            results[i] = await a.submit(arms_match(), copies[i], story_id="s",
                                        sources=[(copies[i].source, copies[i].url)])
    assert not any(isinstance(r, BaseException) for r in results), results
    assert [r.kind for r in results if r is not None] == ["new"]
    assert len(await stream_payloads(redis, keys)) == 1
    history = AlertHistory(redis, keys)
    assert len(await history.sources(results[[r is not None for r in results].index(True)].id)) == 30


async def test_the_same_change_seen_by_two_instances_at_once_makes_one_update(redis, keys):
    a, b = outbox(redis, keys), outbox(redis, keys)
    await a.submit(arms_match(14), wire_copy(0), story_id="s", sources=[])
    results = await asyncio.gather(a.submit(arms_match(20), wire_copy(1), story_id="s", sources=[]),
                                   b.submit(arms_match(20), wire_copy(2), story_id="s", sources=[]))
    updates = [r for r in results if r is not None]
    assert len(updates) == 1 and updates[0].changes == {"quantity": [14, 20]}
    assert [p["kind"] for p in await stream_payloads(redis, keys)] == ["new", "update"]


async def test_same_story_for_another_rule_is_another_alert(redis, keys):
    box = outbox(redis, keys)
    first = await box.submit(arms_match(rule_id="r1"), wire_copy(0), story_id="s", sources=[])
    second = await box.submit(arms_match(rule_id="r2"), wire_copy(0), story_id="s", sources=[])
    assert first and second and first.id != second.id


async def test_alert_stored_but_not_published_is_published_by_the_next_copy(redis, keys):
    clock = Clock()
    box = outbox(redis, keys, clock)
    await redis.set(keys.stream("alerts"), "not a stream")  # XADD now fails for real: WRONGTYPE
    with pytest.raises(ResponseError):
        await box.submit(arms_match(), wire_copy(0), story_id="s", sources=[])
    await redis.delete(keys.stream("alerts"))
    assert await box.submit(arms_match(), wire_copy(1), story_id="s", sources=[]) is None  # may be in flight
    clock.now += INFLIGHT_GRACE
    again = await box.submit(arms_match(), wire_copy(2), story_id="s", sources=[])  # a copy, nothing new
    assert again is not None and again.kind == "new"
    assert [p["id"] for p in await stream_payloads(redis, keys)] == [again.id]
    assert await box.submit(arms_match(), wire_copy(3), story_id="s", sources=[]) is None
    assert (await AlertHistory(redis, keys).show(again.id))["published"] is True


async def test_stale_unpublished_alerts_are_republished_by_the_sweep(redis, keys):
    box = outbox(redis, keys)
    await redis.set(keys.stream("alerts"), "not a stream")
    with pytest.raises(ResponseError):
        await box.submit(arms_match(), wire_copy(0), story_id="s", sources=[])
    await redis.delete(keys.stream("alerts"))
    assert await box.republish_stale(older_than=3600) == 0  # too recent to be called stale
    assert await box.republish_stale(older_than=0) == 1
    assert await box.republish_stale(older_than=0) == 0
    assert len(await stream_payloads(redis, keys)) == 1


async def test_first_submit_that_died_after_its_key_is_completed_by_the_next(redis, keys):
    from monitor.alerts.outbox import alert_base_id

    box = outbox(redis, keys)
    base = alert_base_id("arms-pledges", "s")
    await redis.set(box.ak.once(base), base)  # what a crash right after SET NX leaves behind
    alert = await box.submit(arms_match(), wire_copy(0), story_id="s", sources=[])
    assert alert is not None and alert.id == base and alert.kind == "new"


async def test_history_lists_newest_first_and_shows_evidence(redis, keys):
    box = outbox(redis, keys)
    await box.submit(arms_match(14), wire_copy(0), story_id="s1", sources=[("Site 0", wire_copy(0).url)])
    await box.submit(arms_match(14), wire_copy(1), story_id="s2", sources=[])
    listed = await AlertHistory(redis, keys).list(10)
    assert [a["story_id"] for a in listed] == ["s2", "s1"]
    shown = await AlertHistory(redis, keys).show(listed[1]["id"])
    assert shown["fields"] == {"quantity": 14} and shown["entities"]["donor"] == ["Denmark", "Netherlands"]
    assert shown["sources"] == [["Site 0", wire_copy(0).url]]
    assert "text" not in (await AlertHistory(redis, keys).alert(listed[1]["id"])).article
    assert await AlertHistory(redis, keys).show("nope") is None
    assert await Stream(redis, keys, "alerts", consumer="x").length() == 2
