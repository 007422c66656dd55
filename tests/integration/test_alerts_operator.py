"""Operator alerts (a feed failing, a source's pages failing) as an alert kind: queued by Outbox.submit_operator and
sent by the deliverer like any alert (retries, history, send timeout), to the operator channel only, once per key."""

from __future__ import annotations

import asyncio

from monitor.alerts.deliver import Deliverer
from monitor.alerts.history import History
from monitor.alerts.outbox import Outbox
from monitor.settings import AlertSettings, ChannelSettings

try:
    from tests.receivers import WebhookReceiver, arms_match, quick_alerts, wire_copy
except ModuleNotFoundError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from receivers import WebhookReceiver, arms_match, quick_alerts, wire_copy


def fast(**kw) -> AlertSettings:
    return quick_alerts(**{"default_channels": ["desk"], **kw})


async def deliver_until(deliverer: Deliverer, done, tries: int = 200) -> None:
    """Burst runs until `done()`: a retry is scheduled a moment later, and a burst leaves it scheduled."""
    for _ in range(tries):
        await deliverer.run(asyncio.Event(), burst=True)
        if done():
            return
        await asyncio.sleep(0.02)


async def test_an_operator_alert_reaches_the_operator_webhook_once_after_a_500_and_shows_in_history(redis, keys):
    async with WebhookReceiver("/ops") as ops, WebhookReceiver("/desk") as desk:
        # the throttle and quiet hours of the operator channel are for rule alerts: operator alerts go out at once
        channels = {"ops": ChannelSettings(urls=[ops.url()], throttle="1h", quiet_hours="00:00-23:59"),
                    "desk": ChannelSettings(urls=[desk.url()])}
        settings = fast()
        deliverer = Deliverer(redis, keys, settings=settings, channels=channels, consumer="d1")
        outbox = Outbox(redis, keys, settings=settings, channels=channels, store=deliverer.store)
        other_instance = Outbox(redis, keys, settings=settings, channels=channels)
        ops.fail(1)  # the first answer is a 500: the send is retried
        body = "Feed f1 (https://example.org/rss) has failed for 2.0 h (9 polls in a row).\nLast error: HTTP 503"
        first, second = await asyncio.gather(*(
            box.submit_operator(channel="ops", title="monitor: feed f1 failing", body=body,
                                key="feed-failing:f1:1700000000") for box in (outbox, other_instance)))
        await deliver_until(deliverer, lambda: len(ops.bodies) >= 1)
        recovered = await outbox.submit_operator(channel="ops", title="monitor: feed f1 recovered",
                                                 body="Feed f1 is polled successfully again.",
                                                 key="feed-recovered:f1:1700007200")
        await deliver_until(deliverer, lambda: len(ops.bodies) >= 2)
        await asyncio.sleep(0.1)
        await deliverer.run(asyncio.Event(), burst=True)  # nothing more to send: no repeat
        listing = await History(redis, keys).render_list()
        shown = await History(redis, keys).render_show((first or second).id)

    assert [a is None for a in (first, second)].count(True) == 1  # two instances, one alert for the key
    alert = first or second
    assert alert.kind == "operator" and recovered is not None and recovered.id != alert.id
    assert ops.failed == 1 and len(ops.bodies) == 2 and desk.bodies == []
    by_title = {b["title"]: b["message"] for b in ops.bodies}
    assert by_title["monitor: feed f1 failing"] == f"{body}\n\nid: {alert.id}"  # plainly: the body, the id last
    assert by_title["monitor: feed f1 recovered"] == f"Feed f1 is polled successfully again.\n\nid: {recovered.id}"
    assert alert.id in listing and "operator" in listing and "ops:sent" in listing
    assert "monitor: feed f1 failing" in listing
    assert "ops: sent (attempts 2)" in shown


async def test_a_json_operator_channel_receives_the_title_and_body_as_fields(redis, keys):
    async with WebhookReceiver() as ops:
        channels = {"ops": ChannelSettings(urls=[ops.url()], format="json")}
        deliverer = Deliverer(redis, keys, settings=fast(), channels=channels, consumer="d1")
        outbox = Outbox(redis, keys, settings=fast(), channels=channels, store=deliverer.store)
        alert = await outbox.submit_operator(channel="ops", title="monitor: articles of Site failing",
                                             body="the last 3 article pages all failed", key="articles:site:1")
        await deliverer.run(asyncio.Event(), burst=True)
    [doc] = ops.bodies
    assert (doc["id"], doc["kind"], doc["title"], doc["body"]) == (
        alert.id, "operator", "monitor: articles of Site failing", "the last 3 article pages all failed")


async def test_outbox_and_deliverer_share_one_store_and_rule_alerts_still_flow(redis, keys):
    async with WebhookReceiver("/desk") as desk:
        channels = {"desk": ChannelSettings(urls=[desk.url()])}
        deliverer = Deliverer(redis, keys, settings=fast(), channels=channels, consumer="d1")
        outbox = Outbox(redis, keys, settings=fast(), channels=channels, store=deliverer.store)
        await outbox.submit(arms_match(), wire_copy(0), story_id="s", sources=[])
        await deliverer.run(asyncio.Event(), burst=True)
    assert outbox.stream is deliverer.stream  # one Stream object on the alerts stream
    assert len(desk.bodies) == 1
