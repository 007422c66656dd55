"""A channel's send processes: forked by `start` (the daemon's start-up) with their names, used by the sends, and
never forked for a channel that only writes locally. Real webhook receiver."""

from __future__ import annotations

import platform

import pytest

from monitor.alerts.channelset import ChannelSet
from monitor.alerts.sending import SEND_SLOTS, SendProcesses
from monitor.settings import ChannelSettings

try:
    from tests.integration.test_workers import _children_named, _parents
    from tests.receivers import WebhookReceiver
except ModuleNotFoundError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from integration.test_workers import _children_named, _parents
    from receivers import WebhookReceiver

pytestmark = pytest.mark.skipif(platform.system() != "Linux", reason="process names and /proc are Linux's")


async def test_start_forks_the_send_processes_of_remote_channels_and_the_sends_use_them(tmp_path):
    async with WebhookReceiver() as hook:
        channels = ChannelSet.build({"hook": ChannelSettings(urls=[hook.url()]),
                                     "file": ChannelSettings(urls=[f"jsonl://{tmp_path}/alerts.jsonl"])},
                                    data_dir=str(tmp_path))
        before = _children_named("monitor-send")
        processes = SendProcesses(channels)
        try:
            processes.start()
            forked = _children_named("monitor-send", at_least=len(before) + SEND_SLOTS) - before
            assert len(forked) == SEND_SLOTS, _parents(forked)  # the webhook channel's; none for the local jsonl:// one
            target = channels["hook"].targets[0]
            for n in range(3):
                answer = await processes.send("hook", target.apprise, alert_id=f"a{n}", timeout=30, body="b",
                                              title="t")
                assert answer["ok"], answer
            await hook.wait_for(3)
            assert _children_named("monitor-send") - before == forked  # the sends forked nothing more
        finally:
            processes.close()
    assert not (_children_named("monitor-send") & forked)
