"""Alerts end to end against real receivers: webhook (json://), SMTP (mailto://), MQTT; real Redis."""

from __future__ import annotations

import asyncio
import os

import pytest

from monitor.settings import AlertSettings, ChannelSettings
from monitor.alerts.deliver import Deliverer
from monitor.alerts.history import AlertHistory
from monitor.alerts.outbox import Outbox
from monitor.streams import Stream
try:
    from tests.receivers import (MqttSubscriber, SmtpReceiver, WebhookReceiver, arms_match, mqtt_reachable,
                                 quick_alerts, wire_copy)
except ModuleNotFoundError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from receivers import (MqttSubscriber, SmtpReceiver, WebhookReceiver, arms_match, mqtt_reachable,
                           quick_alerts, wire_copy)


def fast(**kw) -> AlertSettings:
    return quick_alerts(**{"default_channels": ["hook"], **kw})


def parts(redis, keys, channels, settings=None, consumer="d1"):
    settings = settings or fast()
    return (Outbox(redis, keys, settings=settings, channels=channels),
            Deliverer(redis, keys, settings=settings, channels=channels, consumer=consumer))


async def submit_story(outbox, copies: range, *, story="story-1", quantity=14, rule_id="arms-pledges"):
    alerts = []
    for i in copies:
        article = wire_copy(i)
        alerts.append(await outbox.submit(arms_match(quantity, rule_id=rule_id), article, story_id=story,
                                          sources=[(article.source, article.url)]))
    return alerts


async def test_thirty_copies_of_one_story_send_one_alert_listing_every_source(redis, keys):
    async with WebhookReceiver() as hook:
        with SmtpReceiver() as smtp:
            channels = {"hook": ChannelSettings(urls=[hook.url(), smtp.url()])}
            outbox, deliverer = parts(redis, keys, channels)
            alerts = await submit_story(outbox, range(30))
            await deliverer.run(asyncio.Event(), burst=True)
            smtp.wait_for(1)

    assert [a.kind for a in alerts if a is not None] == ["new"]
    assert len(hook.bodies) == 1
    message = hook.bodies[0]["message"]
    assert "Sources (30)" in message
    assert all(f"https://site{i}.example/news/leopard-{i}" in message for i in range(30))
    assert len(smtp.messages) == 1
    html = smtp.messages[0].get_body(("html",)).get_content()
    assert "Sources (30)" in html and "<b>Leopard 2</b>" in html
    shown = await AlertHistory(redis, keys).show(alerts[0].id)
    assert len(shown["sources"]) == 30
    assert shown["deliveries"]["hook"]["status"] == "sent"
    assert {t["status"] for t in shown["deliveries"]["hook"]["targets"].values()} == {"sent"}


async def test_changed_quantity_sends_one_update_saying_what_changed(redis, keys):
    async with WebhookReceiver() as hook:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[hook.url()])})
        await submit_story(outbox, range(3), quantity=14)
        await deliverer.run(asyncio.Event(), burst=True)
        same = await submit_story(outbox, range(3, 6), quantity=14)
        changed = await submit_story(outbox, range(6, 9), quantity=20)
        await deliverer.run(asyncio.Event(), burst=True)

    assert same == [None, None, None]
    assert [a.kind if a else None for a in changed] == ["update", None, None]
    assert changed[0].changes == {"quantity": [14, 20]}
    assert len(hook.bodies) == 2
    update = hook.bodies[1]
    assert update["title"].startswith("[HIGH] Update: Arms pledges")
    assert "What changed:" in update["message"] and "quantity: 14 -> 20" in update["message"]


async def test_receiver_down_then_up_gets_every_alert_exactly_once(redis, keys):
    hook = WebhookReceiver()  # not started: connections are refused
    outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[hook.url()])},
                              fast(retry_attempts=50))
    for story in range(5):
        await submit_story(outbox, range(story, story + 1), story=f"story-{story}")
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    history = AlertHistory(redis, keys)
    try:
        for _ in range(500):  # until every alert failed at least twice
            states = [(await history.deliveries(a["id"])).get("hook", {}) for a in await history.list(10)]
            if len(states) == 5 and all(s.get("attempts", 0) >= 2 for s in states):
                break
            await asyncio.sleep(0.02)
        assert all(s["status"] == "retrying" for s in states)
        await hook.start()
        hook.fail(3)  # up, but the first three answers are 500s
        await hook.wait_for(5)
        await asyncio.sleep(0.3)  # a window in which a duplicate would show up
    finally:
        stop.set()
        await task
        await hook.stop()

    assert hook.failed == 3
    ids = [b["message"].split("\n")[1] for b in hook.bodies]
    assert len(hook.bodies) == 5, ids
    assert sorted(a["channels"]["hook"] for a in await history.list(10)) == ["sent"] * 5
    assert await deliverer.due_count("hook") == 0


async def test_one_channel_down_does_not_delay_the_others(redis, keys):
    down = WebhookReceiver()  # never started
    async with WebhookReceiver() as up:
        channels = {"down": ChannelSettings(urls=[down.url()]), "up": ChannelSettings(urls=[up.url()])}
        outbox, deliverer = parts(redis, keys, channels,
                                  fast(default_channels=["down", "up"], retry_attempts=50, retry_base=5))
        for story in range(4):
            await submit_story(outbox, range(story, story + 1), story=f"story-{story}")
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer.run(stop))
        await up.wait_for(4)
        stop.set()
        await task

    assert len(up.bodies) == 4
    assert await deliverer.due_count("down") == 4  # all four still waiting for their retry
    assert await deliverer.due_count("up") == 0


class FirstAnswerLate(WebhookReceiver):
    """A slow service: its first request is answered (and its body recorded) `late` seconds after it came in, or
    when `release` is set; the others at once. `late` stays under apprise's own read timeout."""

    def __init__(self, late: float = 2.0) -> None:
        super().__init__()
        self.late = late
        self.first_in, self.release = asyncio.Event(), asyncio.Event()
        self._seen = 0

    async def _handle(self, request):
        self._seen += 1
        if self._seen == 1:
            self.first_in.set()
            try:
                await asyncio.wait_for(self.release.wait(), self.late)
            except asyncio.TimeoutError:
                pass
        return await super()._handle(request)


async def test_an_alert_routed_while_a_slow_send_runs_is_sent_at_once_not_after_it(redis, keys):
    """A channel's sends are a sliding window: a free send slot takes the next alert as soon as it is routed; it
    does not wait for the sends already running to end (a batch held up by its slowest send)."""
    async with FirstAnswerLate() as hook:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[hook.url()])}, fast(send_timeout=20))
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer.run(stop))
        try:
            await submit_story(outbox, range(0, 1), story="story-0")
            await asyncio.wait_for(hook.first_in.wait(), 10)  # the first send is in flight, the service is slow
            await submit_story(outbox, range(1, 2), story="story-1")
            bodies = await hook.wait_for(2)
        finally:
            hook.release.set()
            stop.set()
            await task
    # the second alert was answered while the first still waited for its answer
    assert ["site1.example" in b["message"] for b in bodies] == [True, False], [b["message"][-300:] for b in bodies]
    assert await deliverer.due_count("hook") == 0


async def test_an_alert_is_routed_while_the_routing_of_an_earlier_one_waits(redis, keys):
    """The daemon routes several outbox messages at once: an alert whose routing waits (here for the test to
    release it) does not hold up the next one, which is sent first."""
    async with WebhookReceiver() as hook:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[hook.url()])})
        release, route = asyncio.Event(), deliverer.router.route

        async def held_back(alert, channel):
            if alert.story_id == "story-0":
                await release.wait()
            return await route(alert, channel)

        deliverer.router.route = held_back
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer.run(stop))
        try:
            await submit_story(outbox, range(0, 1), story="story-0")
            await submit_story(outbox, range(1, 2), story="story-1")
            first = list(await hook.wait_for(1))  # routing one at a time would wait here for story-0 forever
            release.set()
            bodies = await hook.wait_for(2)
        finally:
            release.set()
            stop.set()
            await task
    assert ["site1.example" in b["message"] for b in first] == [True]
    assert ["site0.example" in b["message"] for b in bodies] == [False, True]
    assert await deliverer.due_count("hook") == 0


async def test_restart_between_send_and_ack_sends_no_duplicate(redis, keys):
    async with WebhookReceiver() as hook:
        channels = {"hook": ChannelSettings(urls=[hook.url()])}
        outbox, first = parts(redis, keys, channels, consumer="first")
        await submit_story(outbox, range(1))
        # the first deliverer reads the alert, routes it and sends it, then dies before acknowledging
        messages = await first.stream.read(count=10, block_ms=0)
        for message in messages:
            await first.handle(message)
        try:
            assert await first.send_due("hook") == 1
        finally:
            first.close()
        assert len(hook.bodies) == 1
        assert await first.stream.pending_count() == 1
        await asyncio.sleep(0.15)  # longer than claim_idle: the message is now up for reclaiming

        _, second = parts(redis, keys, channels, consumer="second")
        await second.run(asyncio.Event(), burst=True)

    assert len(hook.bodies) == 1
    assert await second.stream.pending_count() == 0


async def test_redelivered_outbox_message_is_not_sent_again(redis, keys):
    async with WebhookReceiver() as hook:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[hook.url()])})
        [alert] = await submit_story(outbox, range(1))
        await deliverer.run(asyncio.Event(), burst=True)
        await outbox.stream.publish(alert.to_dict())  # the same alert again (e.g. a republished stale one)
        await deliverer.run(asyncio.Event(), burst=True)
    assert len(hook.bodies) == 1


async def test_failed_channel_goes_to_dead_letter_and_retry_sends_it_once(redis, keys):
    async with WebhookReceiver() as hook:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[hook.url()])},
                                  fast(retry_attempts=3, retry_base=0.01, retry_max_delay=0.02))
        hook.fail(100)
        [alert] = await submit_story(outbox, range(1))
        history = AlertHistory(redis, keys)
        for _ in range(200):
            await deliverer.run(asyncio.Event(), burst=True)
            if (await history.delivery(alert.id, "hook") or {}).get("status") == "dead":
                break
            await asyncio.sleep(0.01)
        state = await history.delivery(alert.id, "hook")
        dead = await Stream(redis, keys, "alerts", consumer="cli").dead()
        hook.fail(0)
        assert await deliverer.retry_dead(alert.id) is True
        await deliverer.run(asyncio.Event(), burst=True)
        assert await deliverer.retry_dead(alert.id) is False  # nothing dead any more

    assert state["status"] == "dead" and state["attempts"] == 3 and hook.failed == 3
    assert "500" in state["error"] or "FAILURE" in state["error"]
    assert [(m.payload["alert_id"], m.payload["channel"]) for m in dead] == [(alert.id, "hook")]
    assert len(hook.bodies) == 1
    assert (await history.delivery(alert.id, "hook"))["status"] == "sent"


async def test_only_the_failed_url_of_a_channel_is_retried(redis, keys):
    async with WebhookReceiver("/a") as good, WebhookReceiver("/b") as flaky:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[good.url(), flaky.url()])})
        flaky.fail(2)
        await submit_story(outbox, range(1))
        for _ in range(100):
            await deliverer.run(asyncio.Event(), burst=True)
            if flaky.bodies:
                break
            await asyncio.sleep(0.02)
    assert len(good.bodies) == 1 and len(flaky.bodies) == 1 and flaky.failed == 2


async def test_alert_reaches_mqtt_subscriber(redis, keys):
    if not mqtt_reachable():
        if os.environ.get("CI"):
            pytest.fail("MQTT broker at 127.0.0.1:1883 not reachable (required in CI)")
        pytest.skip("no MQTT broker at 127.0.0.1:1883")
    topic = f"monitor-test/{keys.prefix.strip(':').replace(':', '-')}"
    with MqttSubscriber(topic) as sub:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[f"mqtt://127.0.0.1:1883/{topic}"])})
        await submit_story(outbox, range(1))
        await deliverer.run(asyncio.Event(), burst=True)
        payloads = await asyncio.to_thread(sub.wait_for, 1)
    assert len(payloads) == 1
    assert "Arms pledges" in payloads[0] and "Leopard 2" in payloads[0]


async def test_retries_stop_at_the_maximum_age_even_with_attempts_left(redis, keys):
    now = [1_800_000_000.0]
    hook = WebhookReceiver()  # never started
    settings = fast(retry_attempts=50, retry_max_age=600, retry_base=1, retry_max_delay=1)
    channels = {"hook": ChannelSettings(urls=[hook.url()])}
    outbox = Outbox(redis, keys, settings=settings, channels=channels, clock=lambda: now[0])
    deliverer = Deliverer(redis, keys, settings=settings, channels=channels, consumer="d", clock=lambda: now[0])
    [alert] = await submit_story(outbox, range(1))
    await deliverer.run(asyncio.Event(), burst=True)
    history = AlertHistory(redis, keys)
    first = await history.delivery(alert.id, "hook")
    now[0] += 300
    await deliverer.run(asyncio.Event(), burst=True)
    second = await history.delivery(alert.id, "hook")
    now[0] += 301
    await deliverer.run(asyncio.Event(), burst=True)
    last = await history.delivery(alert.id, "hook")
    assert (first["status"], second["status"], last["status"]) == ("retrying", "retrying", "dead")
    assert last["attempts"] == 3
    assert 0.5 <= first["next_at"] - first["last_at"] <= 1.0  # base 1 s with jitter x0.5..1.0


async def test_default_console_and_audit_channels_print_and_append_one_json_line(redis, keys, tmp_path, capsys):
    settings = fast(default_channels=["console", "audit"])
    outbox = Outbox(redis, keys, settings=settings, channels={})
    deliverer = Deliverer(redis, keys, settings=settings, channels={}, consumer="d", data_dir=str(tmp_path))
    await submit_story(outbox, range(3))
    await deliverer.run(asyncio.Event(), burst=True)
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 1
    import json

    record = json.loads(lines[0])
    assert record["kind"] == "new" and record["match"]["fields"] == {"quantity": 14}
    assert len(record["sources"]) == 3 and record["title"].startswith("[HIGH] Arms pledges")
    out = capsys.readouterr().out
    assert out.count("[HIGH] Arms pledges: Denmark and Netherlands pledge Leopard 2 tanks") == 1


async def test_cli_views_show_status_sources_answers_and_dead_letters(redis, keys):
    from monitor.alerts.history import History

    async with WebhookReceiver() as hook:
        channels = {"hook": ChannelSettings(urls=[hook.url()]), "gone": ChannelSettings(urls=["json://127.0.0.1:1/x"])}
        outbox, deliverer = parts(redis, keys, channels, fast(default_channels=["hook", "gone", "typo"],
                                                              retry_attempts=1))
        alert = (await submit_story(outbox, range(2)))[0]
        await deliverer.run(asyncio.Event(), burst=True)
    history = History(redis, keys)
    listing = await history.render_list()
    shown = await history.render_show(alert.id)
    dead = await history.render_dead()
    assert alert.id in listing and "hook:sent" in listing and "gone:dead" in listing and "typo:dead" in listing
    assert "sources (2):" in shown and f"{hook.url()}" in shown and "hook: sent (attempts 1)" in shown
    assert "unknown channel 'typo'" in dead and "gone" in dead
    assert await history.render_show("nope") is None  # the CLI says so and exits 1


async def test_rule_naming_a_tag_reaches_every_channel_with_that_tag(redis, keys):
    async with WebhookReceiver("/a") as a, WebhookReceiver("/b") as b, WebhookReceiver("/c") as c:
        channels = {"a": ChannelSettings(urls=[a.url()], tags=["desk"]),
                    "b": ChannelSettings(urls=[b.url()], tags=["desk"]), "c": ChannelSettings(urls=[c.url()])}
        outbox, deliverer = parts(redis, keys, channels)
        article = wire_copy(0)
        await outbox.submit(arms_match(channels=("desk",)), article, story_id="s", sources=[])
        await deliverer.run(asyncio.Event(), burst=True)
    assert (len(a.bodies), len(b.bodies), len(c.bodies)) == (1, 1, 0)


async def test_channel_without_urls_is_recorded_dead_not_sent(redis, keys):
    outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[])})
    [alert] = await submit_story(outbox, range(1))
    await deliverer.run(asyncio.Event(), burst=True)
    state = await AlertHistory(redis, keys).delivery(alert.id, "hook")
    assert state["status"] == "dead" and "has no urls" in state["error"]


async def test_webhook_with_format_json_receives_the_alert_itself(redis, keys):
    async with WebhookReceiver() as hook:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[hook.url()], format="json")})
        alert = (await submit_story(outbox, range(2)))[0]
        await deliverer.run(asyncio.Event(), burst=True)
    [body] = hook.bodies
    assert {k: body[k] for k in ("id", "rule", "severity", "story", "fields", "url", "published")} == {
        "id": alert.id, "rule": "arms-pledges", "severity": "high", "story": "story-1", "fields": {"quantity": 14},
        "url": "https://site0.example/news/leopard-0", "published": "2026-11-20T09:30:00+00:00"}
    assert body["sources"] == [{"name": f"Site {i}", "url": f"https://site{i}.example/news/leopard-{i}"}
                               for i in range(2)]
    assert body["entities"]["donor"] == ["Denmark", "Netherlands"] and "version" not in body


def test_format_json_needs_webhook_urls():
    with pytest.raises(ValueError, match="format: json sends the alert as the body of a webhook"):
        ChannelSettings(urls=["mailto://u:p@example.org"], format="json")


@pytest.mark.parametrize("severity, kind", [("info", "info"), ("medium", "info"), ("high", "warning"),
                                            ("critical", "failure")])
async def test_severity_is_apprises_notification_type(redis, keys, severity, kind):
    from dataclasses import replace

    async with WebhookReceiver() as hook:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[hook.url()])})
        article = wire_copy(0)
        await outbox.submit(replace(arms_match(), severity=severity), article, story_id="s", sources=[])
        await deliverer.run(asyncio.Event(), burst=True)
    assert [b["type"] for b in hook.bodies] == [kind]


async def test_plain_text_of_an_email_and_of_a_digest_carries_the_article_link(redis, keys):
    import time

    with SmtpReceiver() as smtp:
        channels = {"mail": ChannelSettings(urls=[smtp.url(to="a@example.org")]),  # HTML with a text part
                    "text": ChannelSettings(urls=[smtp.url(to="b@example.org")], format="text"),
                    "daily": ChannelSettings(urls=[smtp.url(to="c@example.org")], digest="1h")}
        outbox, deliverer = parts(redis, keys, channels, fast(default_channels=list(channels)))
        await submit_story(outbox, range(2))
        await deliverer.run(asyncio.Event(), burst=True)
        await deliverer.flush_due_digests(time.time() + 7200)
        await deliverer.run(asyncio.Event(), burst=True)
        smtp.wait_for(3)
    plain = {m["To"]: m.get_body(("plain",)).get_content() for m in smtp.messages}
    assert sorted(plain) == ["a@example.org", "b@example.org", "c@example.org"]
    for to, text in plain.items():
        assert "https://site0.example/news/leopard-0" in text, (to, text)
    assert "https://site1.example/news/leopard-1" in plain["a@example.org"]  # the other source too


async def test_update_lists_what_changed_not_everything_known(redis, keys):
    async with WebhookReceiver() as hook:
        outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=[hook.url()])})
        article = wire_copy(0)
        await outbox.submit(arms_match(), article, story_id="s", sources=[])
        update = await outbox.submit(arms_match(donors=("Denmark", "Netherlands", "Norway")), wire_copy(1),
                                     story_id="s", sources=[])
        await deliverer.run(asyncio.Event(), burst=True)
    assert update.changes == {"donor": [["Denmark", "Netherlands"], ["Norway"]]}
    [message] = [b["message"] for b in hook.bodies if b["title"].startswith("[HIGH] Update:")]
    changed = message.split("What changed:\n", 1)[1].split("\n\n", 1)[0]
    assert changed == "- donor: Norway (new; before: Denmark, Netherlands)"  # not the union of all donors


async def test_an_alert_for_a_channel_no_longer_configured_is_counted_dead(redis, keys):
    from monitor import metrics

    def dead() -> float:
        return metrics.REGISTRY.get_sample_value("monitor_deliveries_total", {"channel": "removed",
                                                                              "result": "dead"}) or 0.0

    before = dead()
    outbox, deliverer = parts(redis, keys, {"hook": ChannelSettings(urls=["json://127.0.0.1:1/x"])},
                              fast(default_channels=["removed"]))  # written before the channel was removed
    [alert] = await submit_story(outbox, range(1))
    await deliverer.run(asyncio.Event(), burst=True)
    state = await AlertHistory(redis, keys).delivery(alert.id, "removed")
    assert state["status"] == "dead" and "unknown channel 'removed'" in state["error"]
    assert dead() == before + 1
