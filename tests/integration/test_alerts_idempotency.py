"""The alert id reaches every receiver (so it can drop a repeat); a crash resends only URLs caught mid-send; a
service that drips is cut off at send_timeout with its request, socket and thread. Real receivers, real Redis."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from monitor.settings import AlertSettings, ChannelSettings
from monitor.alerts.deliver import Deliverer
from monitor.alerts.history import AlertHistory
from monitor.alerts.outbox import Outbox

try:
    from tests.receivers import DripReceiver, SmtpReceiver, WebhookReceiver, arms_match, quick_alerts, wire_copy
except ModuleNotFoundError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from receivers import DripReceiver, SmtpReceiver, WebhookReceiver, arms_match, quick_alerts, wire_copy


def settings(**kw) -> AlertSettings:
    return quick_alerts(**kw)


async def test_every_channel_payload_carries_the_alert_id(redis, keys):
    async with WebhookReceiver() as hook, WebhookReceiver("/doc") as doc, WebhookReceiver("/") as ntfy:
        with SmtpReceiver() as smtp:
            channels = {"team": ChannelSettings(urls=[hook.url(), smtp.url(), f"ntfy://127.0.0.1:{ntfy.port}/news"]),
                        "machines": ChannelSettings(urls=[doc.url()], format="json")}
            cfg = settings(default_channels=["team", "machines"])
            outbox = Outbox(redis, keys, settings=cfg, channels=channels)
            deliverer = Deliverer(redis, keys, settings=cfg, channels=channels, consumer="d1")
            alert = await outbox.submit(arms_match(), wire_copy(0), story_id="s1", sources=[])
            await deliverer.run(asyncio.Event(), burst=True)
            [mail] = smtp.wait_for(1)

    [body], [headers] = hook.bodies, hook.headers
    assert body["alert_id"] == alert.id and headers["X-Monitor-Alert-Id"] == alert.id  # apprise's JSON webhook
    assert body["message"].endswith(f"id: {alert.id}")
    assert doc.bodies[0]["id"] == alert.id and doc.headers[0]["X-Monitor-Alert-Id"] == alert.id  # format: json
    assert mail["X-Monitor-Alert-Id"] == alert.id
    assert f"id: {alert.id}" in mail.get_body(("plain", "html")).get_content()
    assert ntfy.bodies[0]["message"].endswith(f"id: {alert.id}")  # text-only services: the last line


async def test_crash_mid_send_resends_only_the_url_that_was_sending(redis, keys, caplog):
    """URL 0 answers at once, URL 1 drips; the deliverer dies while URL 1 is in flight. After the lease the next
    deliverer sends again to URL 1 only (same alert id), not to URL 0, whose answer was already written."""
    async with WebhookReceiver() as fast_hook, DripReceiver(slow=1, every=0.5) as slow_hook:
        channels = {"team": ChannelSettings(urls=[fast_hook.url(), slow_hook.url()])}
        cfg = settings(default_channels=["team"], send_timeout=60)
        outbox = Outbox(redis, keys, settings=cfg, channels=channels)
        first = Deliverer(redis, keys, settings=cfg, channels=channels, consumer="d1")
        alert = await outbox.submit(arms_match(), wire_copy(0), story_id="s1", sources=[])
        stop = asyncio.Event()
        crashed = asyncio.create_task(first.run(stop))
        await fast_hook.wait_for(1)
        marks = keys("{alerts}", "sending", alert.id, "team")  # AlertKeys.inflight
        for _ in range(100):  # bounded: until URL 1's request is in flight and URL 0's answer is written
            if slow_hook.requests and '"sent"' in (await redis.hget(marks, "0") or ""):
                break
            await asyncio.sleep(0.05)
        crashed.cancel()  # the process dies: no outcome written
        await asyncio.gather(crashed, return_exceptions=True)

        later = Deliverer(redis, keys, settings=cfg, channels=channels, consumer="d2",
                          clock=lambda: time.time() + first.lease + 1)  # the dead deliverer's claim lease ran out
        caplog.set_level(logging.WARNING)
        await later.run(asyncio.Event(), burst=True)

    assert len(fast_hook.bodies) == 1  # not sent twice
    assert slow_hook.alert_ids == [alert.id, alert.id]  # the repeat carries the key to drop it by
    state = await AlertHistory(redis, keys).delivery(alert.id, "team")
    assert state["status"] == "sent" and [t["status"] for _, t in sorted(state["targets"].items())] == ["sent"] * 2
    assert "stopped during the send" in caplog.text


async def test_send_timeout_ends_a_dripping_request_and_frees_its_thread_and_socket(redis, keys):
    async with DripReceiver(every=0.25) as drip:  # ~20 s to answer in full
        channels = {"slow": ChannelSettings(urls=[drip.url()])}
        cfg = settings(default_channels=["slow"], retry_attempts=1, send_timeout=1)
        outbox = Outbox(redis, keys, settings=cfg, channels=channels)
        deliverer = Deliverer(redis, keys, settings=cfg, channels=channels, consumer="d1")
        threads_before = threading.active_count()
        alerts = [await outbox.submit(arms_match(), wire_copy(i), story_id=f"s{i}", sources=[]) for i in range(3)]
        await deliverer.run(asyncio.Event(), burst=True)
        await drip.wait_closed(timeout=8)  # bounded; far less than the 20 s the answers would take
        for _ in range(100):  # bounded: pebble's watcher threads end with their processes
            if threading.active_count() <= threads_before:
                break
            await asyncio.sleep(0.05)
        threads_after = threading.active_count()
        open_after, hung_up, completed = drip.open, drip.hung_up, drip.completed

    assert drip.requests == 3
    assert open_after == 0 and hung_up == 3 and completed == 0  # every request was ended, not left to drip
    assert threads_after <= threads_before
    history = AlertHistory(redis, keys)
    for alert in alerts:
        state = await history.delivery(alert.id, "slow")
        assert state["status"] == "dead" and "TIMEOUT" in state["error"]


async def test_a_channel_sends_again_after_its_send_processes_were_killed_at_the_deadline(redis, keys):
    """Both of a channel's send processes are killed at send_timeout (the service drips); the processes that replace
    them send the channel's next alerts in full: a kill never leaves the channel without a working process."""
    async with DripReceiver(slow=2, every=0.25) as drip:  # the first 2 requests drip, the rest answer at once
        channels = {"team": ChannelSettings(urls=[drip.url()])}
        cfg = settings(default_channels=["team"], retry_attempts=1, send_timeout=1)
        outbox = Outbox(redis, keys, settings=cfg, channels=channels)
        deliverer = Deliverer(redis, keys, settings=cfg, channels=channels, consumer="d1")
        alerts = [await outbox.submit(arms_match(), wire_copy(i), story_id=f"s{i}", sources=[]) for i in range(5)]
        await deliverer.run(asyncio.Event(), burst=True)
        await drip.wait_closed(timeout=8)  # bounded: the two killed requests' connections are closed
        hung_up, completed = drip.hung_up, drip.completed

    assert drip.requests == 5 and hung_up == 2 and completed == 3
    history = AlertHistory(redis, keys)
    states = [(await history.delivery(alert.id, "team"))["status"] for alert in alerts]
    assert sorted(states) == ["dead", "dead", "sent", "sent", "sent"]


async def test_stop_lets_a_send_in_flight_finish_and_a_cancel_abandons_it(redis, keys):
    """The daemon first sets stop: a send in flight finishes (the service may already have accepted it). After its
    shutdown grace it cancels: the channel's loop then abandons a send still in flight at once (its process killed,
    its connection closed), leaving it marked "sending" for the next deliverer, instead of waiting out the drip."""
    async with DripReceiver(every=0.02) as drip:  # ~1.6 s to answer in full
        channels = {"team": ChannelSettings(urls=[drip.url()])}
        cfg = settings(default_channels=["team"], send_timeout=60)
        outbox = Outbox(redis, keys, settings=cfg, channels=channels)
        history = AlertHistory(redis, keys)

        finished = await outbox.submit(arms_match(), wire_copy(0), story_id="s0", sources=[])
        stop = asyncio.Event()
        running = asyncio.create_task(Deliverer(redis, keys, settings=cfg, channels=channels, consumer="d1").run(stop))
        for _ in range(500):  # bounded (10 s): until the request is at the receiver
            if drip.requests:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(running, timeout=30)
        await drip.wait_closed(timeout=5)  # the receiver counts an answer after writing its last byte
        assert (drip.requests, drip.completed, drip.hung_up) == (1, 1, 0)
        assert (await history.delivery(finished.id, "team"))["status"] == "sent"

        abandoned = await outbox.submit(arms_match(15), wire_copy(1), story_id="s1", sources=[])
        running = asyncio.create_task(Deliverer(redis, keys, settings=cfg, channels=channels,
                                                consumer="d2").run(asyncio.Event()))
        for _ in range(500):
            if drip.requests == 2:
                break
            await asyncio.sleep(0.02)
        [loop] = [t for t in asyncio.all_tasks() if t.get_name() == "alerts-team"]  # the channel's loop
        loop.cancel()
        await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), timeout=30)
        await drip.wait_closed(timeout=5)
        assert (drip.requests, drip.completed, drip.hung_up) == (2, 1, 1)  # cut off, not left to drip
        marks = await redis.hgetall(keys("{alerts}", "sending", abandoned.id, "team"))  # AlertKeys.inflight
        assert '"sending"' in marks["0"]
        assert (await history.delivery(abandoned.id, "team"))["status"] != "sent"
