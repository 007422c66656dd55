"""Throttle, digests and quiet hours per channel, with state in Redis (a new Deliverer sees it), real webhook."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.settings import AlertSettings, ChannelSettings
from monitor.alerts.deliver import Deliverer
from monitor.alerts.history import AlertHistory
from monitor.alerts.outbox import Outbox

try:
    from tests.receivers import WebhookReceiver, arms_match, wire_copy
except ModuleNotFoundError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from receivers import WebhookReceiver, arms_match, wire_copy

BERLIN = ZoneInfo("Europe/Berlin")


class Clock:
    """Time the test moves by hand, so windows of an hour take no time."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def settings() -> AlertSettings:
    return AlertSettings(default_channels=["hook"], retry_base=0.05, claim_idle=0.1, poll_interval=0.02)


def make(redis, keys, channel: ChannelSettings, clock: Clock, consumer: str = "d1"):
    channels = {"hook": channel}
    return (Outbox(redis, keys, settings=settings(), channels=channels, clock=clock),
            Deliverer(redis, keys, settings=settings(), channels=channels, consumer=consumer, clock=clock))


async def fire(outbox, n: int, *, start: int = 0, rule_id: str = "arms-pledges"):
    for i in range(start, start + n):
        article = wire_copy(i, title=f"Pledge number {i}")
        await outbox.submit(arms_match(rule_id=rule_id), article, story_id=f"story-{i}",
                            sources=[(article.source, article.url)])


async def test_throttled_channel_sends_one_message_per_window_and_counts_the_rest(redis, keys):
    clock = Clock(datetime(2026, 11, 20, 12, 0, tzinfo=BERLIN).timestamp())
    async with WebhookReceiver() as hook:
        outbox, deliverer = make(redis, keys, ChannelSettings(urls=[hook.url()], throttle="10m"), clock)
        await fire(outbox, 4)
        await deliverer.run(asyncio.Event(), burst=True)
        first_window = len(hook.bodies)
        clock.now += 5 * 60
        await fire(outbox, 2, start=4)
        _, restarted = make(redis, keys, ChannelSettings(urls=[hook.url()], throttle="10m"), clock, "d2")
        await restarted.run(asyncio.Event(), burst=True)  # throttle state survives a new deliverer
        still_first_window = len(hook.bodies)
        clock.now += 6 * 60
        await fire(outbox, 1, start=6)
        await restarted.run(asyncio.Event(), burst=True)

    assert (first_window, still_first_window, len(hook.bodies)) == (1, 1, 2)
    assert "Pledge number 0" in hook.bodies[0]["message"]
    assert "Pledge number 6" in hook.bodies[1]["message"]
    assert "+5 more alerts for this rule held back by the throttle" in hook.bodies[1]["message"]
    statuses = sorted(a["channels"]["hook"] for a in await AlertHistory(redis, keys).list(20))
    assert statuses == ["sent"] * 2 + ["throttled"] * 5


async def test_throttle_is_per_rule(redis, keys):
    clock = Clock(1_800_000_000.0)
    async with WebhookReceiver() as hook:
        outbox, deliverer = make(redis, keys, ChannelSettings(urls=[hook.url()], throttle="1h"), clock)
        await fire(outbox, 2, rule_id="rule-a")
        await fire(outbox, 2, start=2, rule_id="rule-b")
        await deliverer.run(asyncio.Event(), burst=True)
    assert len(hook.bodies) == 2


async def test_hourly_digest_arrives_once_with_all_its_items(redis, keys):
    clock = Clock(1_800_000_000.0)
    async with WebhookReceiver() as hook:
        outbox, deliverer = make(redis, keys, ChannelSettings(urls=[hook.url()], digest="1h"), clock)
        await fire(outbox, 5)
        await deliverer.run(asyncio.Event(), burst=True)
        before = len(hook.bodies)
        assert await deliverer.flush_due_digests(clock.now + 1800) == 0  # not due yet
        assert await deliverer.flush_due_digests(clock.now + 3601) == 1
        assert await deliverer.flush_due_digests(clock.now + 3700) == 0  # taken once only
        await deliverer.run(asyncio.Event(), burst=True)

    assert before == 0
    assert len(hook.bodies) == 1
    digest = hook.bodies[0]
    assert digest["title"] == "Digest: 5 alerts (hook)"
    assert all(f"Pledge number {i}" in digest["message"] for i in range(5))
    history = AlertHistory(redis, keys)
    alerts = await history.list(10)
    assert sorted(a["channels"]["hook"] for a in alerts) == ["digested"] * 5 + ["sent"]


async def test_daily_digest_is_due_at_the_local_time(redis, keys):
    clock = Clock(datetime(2026, 11, 20, 9, 0, tzinfo=BERLIN).timestamp())
    async with WebhookReceiver() as hook:
        outbox, deliverer = make(redis, keys,
                                 ChannelSettings(urls=[hook.url()], digest="daily 08:00 Europe/Berlin"), clock)
        await fire(outbox, 2)
        await deliverer.run(asyncio.Event(), burst=True)
        assert hook.bodies == []
        next_morning = datetime(2026, 11, 21, 8, 0, tzinfo=BERLIN).timestamp()
        assert await deliverer.flush_due_digests(next_morning - 60) == 0
        assert await deliverer.flush_due_digests(next_morning) == 1
        await deliverer.run(asyncio.Event(), burst=True)
    assert len(hook.bodies) == 1 and "Digest: 2 alerts" in hook.bodies[0]["title"]


async def test_quiet_hours_hold_alerts_and_send_them_as_a_digest_when_they_end(redis, keys):
    clock = Clock(datetime(2026, 11, 20, 23, 30, tzinfo=BERLIN).timestamp())
    async with WebhookReceiver() as hook:
        channel = ChannelSettings(urls=[hook.url()], quiet_hours="22:00-07:00 Europe/Berlin")
        outbox, deliverer = make(redis, keys, channel, clock)
        await fire(outbox, 3)
        await deliverer.run(asyncio.Event(), burst=True)
        during = len(hook.bodies)
        morning = datetime(2026, 11, 21, 7, 0, tzinfo=BERLIN).timestamp()
        assert await deliverer.flush_due_digests(morning - 1) == 0
        clock.now = morning + 60
        assert await deliverer.flush_due_digests() == 1
        await fire(outbox, 1, start=3)  # daytime: sent at once
        await deliverer.run(asyncio.Event(), burst=True)

    assert during == 0
    titles = sorted(b["title"] for b in hook.bodies)
    assert len(titles) == 2
    assert titles[0].startswith("Digest: 3 alerts") and "Pledge number 3" in titles[1]
