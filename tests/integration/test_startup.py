"""Start-up failures through the real CLI: one clear line on stderr (one JSON object with --log-format json), a
non-zero exit, no traceback. Also the configuration's channels and secrets, checked before anything starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MONITOR_BIN = Path(sys.executable).with_name("monitor")

RULE = """rules:
  - id: tank-watch
    title: Tanks
    channels: [{channel}]
    any: [tank]
"""


def monitor(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("NOPE_PASS", "CREDENTIALS_DIRECTORY")}
    environ.update(env or {})
    return subprocess.run([str(MONITOR_BIN), *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=environ)


def setup(tmp_path: Path, extra: str = "", *, channel: str = "desk") -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "tanks.yaml").write_text(RULE.format(channel=channel))
    config = tmp_path / "monitor.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nrules: {{path: {rules}}}\n"
                      "channels:\n  desk: {urls: ['console://']}\n" + extra)
    return config


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """stderr without the INFO lines logged before the failure."""
    return [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line
            and '"level": "INFO"' not in line]


def assert_one_error(result: subprocess.CompletedProcess, *, fmt: str, contains: list[str]) -> None:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr and "╭" not in result.stderr, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    if fmt == "json":
        record = json.loads(lines[0])
        assert record["level"] == "ERROR"
        text = record["msg"]
    else:
        assert lines[0].startswith("error: ")
        text = lines[0]
    for part in contains:
        assert part in text, text


@pytest.fixture(params=["text", "json"])
def fmt(request) -> str:
    return request.param


def run_args(config: Path, fmt: str) -> list[str]:
    return ["run", "--config", str(config), *(["--log-format", "json"] if fmt == "json" else [])]


def test_port_in_use_is_one_line_naming_the_address(tmp_path, fmt):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = setup(tmp_path, f"service: {{listen: '127.0.0.1:{port}'}}\n")
        result = monitor(*run_args(config, fmt), cwd=tmp_path)
    assert_one_error(result, fmt=fmt, contains=[f"service.listen 127.0.0.1:{port}", "address already in use"])
    assert result.returncode == 2
    assert not (tmp_path / "data").exists()  # failed before the embedded Redis was started


def test_redis_unreachable_is_one_line_naming_the_url_without_its_password(tmp_path, fmt):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = setup(tmp_path, f"redis: {{url: 'redis://:hunter2secret@127.0.0.1:{port}/0', connect_timeout: 1s}}\n"
                             "service: {listen: null}\n")
    result = monitor(*run_args(config, fmt), cwd=tmp_path)
    assert_one_error(result, fmt=fmt, contains=[f"127.0.0.1:{port}", "no answer within 1s"])
    assert result.returncode == 3
    assert "hunter2secret" not in result.stderr


def test_unresolvable_secret_is_one_line_naming_file_channel_and_variable(tmp_path, fmt):
    config = setup(tmp_path, "  mail: {urls: ['mailtos://u:${NOPE_PASS}@example.org']}\nservice: {listen: null}\n")
    result = monitor(*run_args(config, fmt), cwd=tmp_path)
    assert_one_error(result, fmt=fmt, contains=[f"{config}: channels.mail.urls[0]", "NOPE_PASS is not set"])
    assert result.returncode == 2
    assert not (tmp_path / "data").exists()


def test_bad_configuration_is_one_line_with_file_line_and_key(tmp_path, fmt):
    config = setup(tmp_path, "sources:\n  intervall: 5m\n")
    result = monitor(*run_args(config, fmt), cwd=tmp_path)
    assert_one_error(result, fmt=fmt, contains=[f"{config}:6:3: sources.intervall: unknown setting"])
    assert result.returncode == 2


def test_several_configuration_errors_are_one_json_object_listing_them(tmp_path):
    config = setup(tmp_path, "sources:\n  intervall: 5m\nfetch:\n  timout: 3\n")
    result = monitor(*run_args(config, "json"), cwd=tmp_path)
    assert_one_error(result, fmt="json", contains=["2 error(s) in the configuration"])
    record = json.loads(error_lines(result)[0])
    assert [p.split(": ", 1)[1] for p in record["problems"]] == [
        "sources.intervall: unknown setting (check the spelling)", "fetch.timout: unknown setting (check the spelling)"]


def test_rule_naming_an_unknown_channel_stops_the_start_with_file_and_line(tmp_path, fmt):
    config = setup(tmp_path, "service: {listen: null}\n", channel="dsek")
    result = monitor(*run_args(config, fmt), cwd=tmp_path)
    assert_one_error(result, fmt=fmt, contains=["tanks.yaml:4:16: rule tank-watch: unknown channel 'dsek'",
                                                "did you mean desk?"])
    assert result.returncode == 2


def test_unknown_default_channel_is_a_configuration_error_at_its_line(tmp_path):
    config = setup(tmp_path, "alerts:\n  default_channels: [audit, slack]\n")
    result = monitor("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{config}:6:29: alerts.default_channels.1: unknown channel 'slack'" in result.stderr


def test_check_reports_the_rules_unknown_channel_with_file_and_line(tmp_path):
    config = setup(tmp_path, channel="slack")
    result = monitor("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "tanks.yaml:4:16: rule tank-watch: unknown channel 'slack'" in result.stderr


def test_rules_test_reports_an_unknown_channel_of_the_configuration(tmp_path):
    config = setup(tmp_path, channel="slack")
    result = monitor("rules", "test", str(tmp_path / "rules"), "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "tanks.yaml:4:16: rule tank-watch: unknown channel 'slack'" in result.stdout


def test_check_fails_on_a_secret_that_run_could_not_resolve(tmp_path):
    config = setup(tmp_path, "  mail: {urls: ['mailtos://u:${NOPE_PASS}@example.org', "
                             "'json://{credential:hook}@127.0.0.1/x']}\n")
    result = monitor("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "channels.mail.urls[0]: environment variable NOPE_PASS is not set" in result.stderr
    assert "channels.mail.urls[1]: {credential:hook} needs $CREDENTIALS_DIRECTORY" in result.stderr

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "monitor_hook").write_text("s3cret\n")  # as systemd names a file of LoadCredential=monitor:/folder
    result = monitor("check", "--config", str(config), cwd=tmp_path,
                     env={"NOPE_PASS": "x", "CREDENTIALS_DIRECTORY": str(creds)})
    assert result.returncode == 0, result.stderr
    assert "secrets resolved" in result.stdout and "s3cret" not in result.stdout + result.stderr


def test_replay_with_a_bad_duration_is_one_line_not_a_traceback(tmp_path):
    config = setup(tmp_path)
    result = monitor("rules", "replay", "--since", "7x", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --since: not a duration: '7x' (use e.g. 30s, 15m, 2h, 7d)"


def test_version_is_printed():
    from monitor import __version__

    result = monitor("--version", cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == f"monitor {__version__}"
