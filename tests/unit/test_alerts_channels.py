"""Channel settings: durations, digest schedules, quiet hours, secrets in URLs, tags (pure, no I/O but files)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from monitor.alerts.channels import resolve_channel_names, resolve_channel_urls, resolve_secrets
from monitor.errors import ConfigError
from monitor.settings import (AlertSettings, ChannelSettings, DigestSchedule, QuietHours, parse_duration,
                              with_builtin_channels)

BERLIN = ZoneInfo("Europe/Berlin")


def at(*args: int) -> float:
    return datetime(*args, tzinfo=BERLIN).timestamp()


@pytest.mark.parametrize("text,seconds", [("90", 90), ("10m", 600), ("1h", 3600), ("500ms", 0.5), (2.5, 2.5),
                                          ("1d", 86400)])
def test_durations_read_with_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "-5m", "5y", -5])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("field", ["throttle", "digest"])
def test_a_zero_throttle_or_digest_window_is_refused(field):
    with pytest.raises(ValidationError) as info:
        ChannelSettings(urls=["json://127.0.0.1/x"], **{field: "0s"})
    assert field in str(info.value)


def test_daily_digest_is_due_next_at_local_time_across_a_dst_change():
    schedule = DigestSchedule.parse("daily 08:00 Europe/Berlin")
    assert schedule.next_due(at(2026, 10, 24, 9, 0)) == at(2026, 10, 25, 8, 0)  # the night clocks go back
    assert schedule.next_due(at(2026, 10, 25, 7, 59)) == at(2026, 10, 25, 8, 0)
    assert schedule.next_due(at(2026, 10, 25, 8, 0)) == at(2026, 10, 26, 8, 0)


def test_interval_digest_is_due_one_window_after_the_first_item():
    assert DigestSchedule.parse("1h").next_due(1000.0) == 4600.0


def test_quiet_hours_across_midnight_end_next_morning():
    quiet = QuietHours.parse("22:00-07:00 Europe/Berlin")
    assert quiet.end_if_quiet(at(2026, 11, 20, 23, 30)) == at(2026, 11, 21, 7, 0)
    assert quiet.end_if_quiet(at(2026, 11, 21, 3, 0)) == at(2026, 11, 21, 7, 0)
    assert quiet.end_if_quiet(at(2026, 11, 21, 7, 0)) is None
    assert quiet.end_if_quiet(at(2026, 11, 21, 12, 0)) is None


def test_quiet_hours_within_a_day():
    quiet = QuietHours.parse("12:00-13:30")  # UTC
    assert quiet.end_if_quiet(datetime(2026, 1, 1, 12, 10, tzinfo=ZoneInfo("UTC")).timestamp()) == \
        datetime(2026, 1, 1, 13, 30, tzinfo=ZoneInfo("UTC")).timestamp()


@pytest.mark.parametrize("field,value", [("throttle", "often"), ("digest", "weekly"),
                                         ("digest", "daily 25:00"), ("quiet_hours", "22-07"),
                                         ("quiet_hours", "22:00-07:00 Mars/Olympus"), ("format", "pdf"),
                                         ("templates", {"body": "x.j2"}), ("colour", "red")])
def test_bad_channel_settings_are_config_errors(field, value):
    with pytest.raises(ValidationError) as info:
        ChannelSettings(urls=["json://127.0.0.1/x"], **{field: value})
    assert field in str(info.value)


def test_url_without_scheme_is_refused_without_echoing_it():
    with pytest.raises(ValidationError) as info:
        ChannelSettings(urls=["hunter2-secret-token"])
    assert "scheme:// missing" in str(info.value)
    assert "hunter2" not in str(info.value).split("input_value")[0]


def test_alert_settings_forbid_unknown_keys():
    with pytest.raises(ValidationError):
        AlertSettings(retries=3)  # type: ignore[call-arg]


def test_secrets_come_from_files_env_and_credentials_directory(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "bot").write_text("123:ABC")
    env = {"NTFY_TOKEN": "tk_1", "CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    url = "json://u:{file:%s}@h/${NTFY_TOKEN}/{credential:bot}" % (tmp_path / "pw")
    assert resolve_secrets(url, where="x", environ=env) == "json://u:s3cret@h/tk_1/123:ABC"


def test_every_unresolvable_secret_is_reported_at_once(tmp_path):
    channels = {"a": ChannelSettings(urls=["json://h/${MISSING}"]),
                "b": ChannelSettings(urls=["json://h/ok", f"json://u:{{file:{tmp_path}/nope}}@h/"]),
                "c": ChannelSettings(urls=["tgram://{credential:bot}/1"])}
    with pytest.raises(ConfigError) as info:
        resolve_channel_urls(channels, environ={})
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("channels.a.urls[0]: environment variable MISSING")
    assert problems[1].startswith("channels.b.urls[1]: cannot read secret file")
    assert "CREDENTIALS_DIRECTORY" in problems[2]


def test_rules_may_name_channels_or_tags_and_unknown_names_are_kept():
    channels = {"slack": ChannelSettings(urls=["json://h/1"], tags=["team"]),
                "mail": ChannelSettings(urls=["json://h/2"], tags=["team", "desk"]),
                "sms": ChannelSettings(urls=["json://h/3"])}
    assert resolve_channel_names(["team", "sms", "slack", "nowhere"], channels) == ["slack", "mail", "sms",
                                                                                      "nowhere"]


def test_builtin_console_and_audit_channels_can_be_redefined(tmp_path):
    builtin = with_builtin_channels({}, str(tmp_path))
    assert builtin["audit"].urls == [f"jsonl://{tmp_path / 'alerts.jsonl'}"]
    mine = ChannelSettings(urls=["json://h/x"])
    assert with_builtin_channels({"console": mine}, str(tmp_path))["console"] is mine
