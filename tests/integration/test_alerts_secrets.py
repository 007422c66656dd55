"""No secret from a channel URL appears in logs (DEBUG on), in Redis (history, streams) or in the audit file."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest

from monitor.settings import AlertSettings, ChannelSettings
from monitor.alerts.deliver import Deliverer
from monitor.alerts.history import AlertHistory
from monitor.alerts.outbox import Outbox
from monitor.errors import ConfigError

try:
    from tests.receivers import SmtpReceiver, WebhookReceiver, arms_match, wire_copy
except ModuleNotFoundError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from receivers import SmtpReceiver, WebhookReceiver, arms_match, wire_copy

HOOK_CANARY = "canaryHOOKpw7f3e9a"
MAIL_CANARY = "canaryMAILpw41c0d2"
ENV_CANARY = "canaryENVtok99a8b7"
BAD_CANARY = "canaryBADtok5e6f70"


async def redis_dump(redis, keys) -> str:
    """Every value under the test's prefix, as text."""
    out = []
    async for key in redis.scan_iter(match=keys.prefix + "*"):
        kind = await redis.type(key)
        if kind == "string":
            out.append(await redis.get(key))
        elif kind == "hash":
            out.append(str(await redis.hgetall(key)))
        elif kind == "list":
            out.append(str(await redis.lrange(key, 0, -1)))
        elif kind == "zset":
            out.append(str(await redis.zrange(key, 0, -1)))
        elif kind == "set":
            out.append(str(await redis.smembers(key)))
        elif kind == "stream":
            out.append(str(await redis.xrange(key)))
    return "\n".join(out)


async def test_canary_secrets_never_reach_logs_history_or_audit(redis, keys, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret_file = tmp_path / "hook-password"
    secret_file.write_text(HOOK_CANARY + "\n")
    audit = tmp_path / "audit.jsonl"
    async with WebhookReceiver(user="monitor", password=HOOK_CANARY) as hook, \
            WebhookReceiver("/down") as down:
        with SmtpReceiver(user="monitor", password=MAIL_CANARY) as smtp:
            await down.stop()  # refuses connections: failures get logged and recorded
            channels = {"team": ChannelSettings(urls=[
                f"json://monitor:{{file:{secret_file}}}@127.0.0.1:{hook.port}/hook",
                smtp.url(),
                f"json://monitor:${{TOKEN}}@127.0.0.1:{down.port}/down",
                f"notavalidscheme://{BAD_CANARY}@example.invalid/",
                f"jsonl://{audit}",
            ])}
            settings = AlertSettings(default_channels=["team"], retry_attempts=2, retry_base=0.01,
                                     retry_max_delay=0.02, claim_idle=0.1)
            outbox = Outbox(redis, keys, settings=settings, channels=channels)
            deliverer = Deliverer(redis, keys, settings=settings, channels=channels, consumer="d1",
                                  environ={"TOKEN": ENV_CANARY})
            [alert] = [await outbox.submit(arms_match(), wire_copy(0), story_id="s", sources=[])]
            for _ in range(100):
                await deliverer.run(asyncio.Event(), burst=True)
                if (await AlertHistory(redis, keys).delivery(alert.id, "team") or {}).get("status") == "dead":
                    break
                await asyncio.sleep(0.01)
            smtp.wait_for(1)

    # the secrets were really used: authenticated receivers accepted the message
    assert len(hook.bodies) == 1 and hook.failed == 0
    assert len(smtp.messages) == 1
    shown = await AlertHistory(redis, keys).show(alert.id)
    record = shown["deliveries"]["team"]
    assert record["status"] == "dead"  # the down and the invalid URL never succeed
    assert [t["status"] for _, t in sorted(record["targets"].items())] == ["sent", "sent", "failed", "failed", "sent"]
    everything = "\n".join([caplog.text, str(shown), await redis_dump(redis, keys), audit.read_text()])
    assert "monitor:****@127.0.0.1" in str(shown)  # privacy form is what is kept
    for canary in (HOOK_CANARY, MAIL_CANARY, ENV_CANARY, BAD_CANARY):
        assert canary not in everything, canary


async def test_missing_secret_file_is_a_config_error_naming_channel_and_file(redis, keys, tmp_path):
    channels = {"team": ChannelSettings(urls=[f"json://u:{{file:{tmp_path}/nope}}@127.0.0.1/x"])}
    with pytest.raises(ConfigError) as info:
        Deliverer(redis, keys, settings=AlertSettings(), channels=channels, consumer="x")
    assert "channels.team.urls[0]" in str(info.value) and f"{tmp_path}/nope" in str(info.value)



HEADER_CANARY = "canaryHDRtok3b1d5e"
BASIC_CANARY = "canaryBASICpw8c2a41"
TG_CANARY = "AAHcanaryTGtok0123456789abcdefghijk"
SLACK_CANARY = "canarySLACKtok27d4e1f0"
FEED_CANARY = "canaryFEEDtok61e0c3"


async def redis_dump_all(redis) -> str:
    """Every key and value in the test Redis (all prefixes), streams entry by entry."""
    out = []
    async for key in redis.scan_iter():
        kind = await redis.type(key)
        read = {"string": redis.get, "hash": redis.hgetall, "set": redis.smembers, "stream": redis.xrange,
                "list": lambda k: redis.lrange(k, 0, -1), "zset": lambda k: redis.zrange(k, 0, -1)}.get(kind)
        out.append(f"{key} {await read(key) if read else ''}")
    return "\n".join(out)


@pytest.fixture
def loopback_only(monkeypatch):
    """Every host name resolves to 127.0.0.1 (port 443 there refuses): Telegram's and Slack's plugins run their
    real code, log what they log, and nothing leaves the machine."""
    import socket

    real = socket.getaddrinfo

    def local(host, *args, **kwargs):
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local)


async def test_header_token_and_basic_auth_secrets_never_appear_at_debug(redis, keys, caplog, capfd, loopback_only):
    caplog.set_level(logging.DEBUG)  # apprise's and urllib3's DEBUG records too
    async with WebhookReceiver(user="monitor", password=BASIC_CANARY) as hook:
        channels = {
            "hook": ChannelSettings(urls=[hook.url() + f"?+X-Api-Token={HEADER_CANARY}"]),
            "chat": ChannelSettings(urls=[f"tgram://123456789:{TG_CANARY}/987654/",
                                          f"slack://TCANARY01/BCANARY02/{SLACK_CANARY}/#general"]),
        }
        settings = AlertSettings(default_channels=["hook", "chat"], retry_attempts=1, send_timeout=10)
        outbox = Outbox(redis, keys, settings=settings, channels=channels)
        deliverer = Deliverer(redis, keys, settings=settings, channels=channels, consumer="d1")
        alert = await outbox.submit(arms_match(), wire_copy(0), story_id="s", sources=[])
        await deliverer.run(asyncio.Event(), burst=True)

    # the secrets were really used: the receiver checked the basic auth and got the header
    assert len(hook.bodies) == 1 and hook.headers[0]["X-Api-Token"] == HEADER_CANARY
    history = AlertHistory(redis, keys)
    shown = await history.show(alert.id)
    assert shown["deliveries"]["hook"]["status"] == "sent"
    assert shown["deliveries"]["chat"]["status"] == "dead"  # no Telegram or Slack on loopback
    assert "JSON POST URL" in caplog.text and "Telegram" in caplog.text  # apprise's own DEBUG lines were captured
    out, err = capfd.readouterr()
    everything = "\n".join([caplog.text, out, err, str(shown), str(await history.list(50)),
                            await redis_dump_all(redis)])
    basic = base64.b64encode(f"monitor:{BASIC_CANARY}".encode()).decode()
    for canary in (HEADER_CANARY, BASIC_CANARY, basic, TG_CANARY, "123456789:", SLACK_CANARY, "TCANARY01",
                   "BCANARY02"):
        assert canary not in everything, canary


async def test_feed_url_token_is_not_stored_in_redis(redis, keys):
    from monitor.feedstate import FeedStore
    from monitor.models import Feed

    store = FeedStore(redis, keys)
    await store.sync_feeds([Feed(id="f1", url=f"https://news.example/rss?token={FEED_CANARY}&x=1", name="F")],
                           now=1000.0)
    state = await store.state("f1")
    assert state.url.startswith("https://news.example/rss?token=") and "x=1" in state.url
    assert FEED_CANARY not in await redis_dump_all(redis)
