"""Analysts edit rules while the daemon runs: a broken file keeps the old rules matching; a fixed one goes live."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from receivers import free_port

ROOT = Path(__file__).resolve().parents[2]
MONITOR_BIN = Path(sys.executable).with_name("monitor")
SEED_PLEDGE = ROOT / "seeds" / "000_1bb014922f46a2c7.txt"

KEYWORD_RULE = """
rules:
  - id: zelensky-switzerland
    title: Zelensky and Switzerland
    severity: info
    channels: [audit]
    all: [Zelensky, Switzerland]
"""


def wait_until(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)
    except OSError:
        return {}


def section(port: int, name: str) -> dict:
    """One section of /healthz, for the waits: {} while the daemon does not answer within health()'s 2 s (a rule
    reload compiling on a busy machine), so the wait polls again instead of failing on a missing key."""
    return health(port).get(name) or {}


def audit_rules(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["rule_id"] for line in path.read_text().splitlines() if line.strip()]


def test_broken_rule_file_keeps_old_rules_matching_and_fixed_file_goes_live(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    port = free_port()
    audit = tmp_path / "data" / "alerts.jsonl"
    config = tmp_path / "monitor.yaml"
    config.write_text(f"""
data_dir: {tmp_path / 'data'}
sources: {{interval: 1s, directories: [{{path: {inbox}}}]}}
rules: {{path: {rules}}}
channels: {{analysts: {{urls: ["jsonl://{audit}"]}}}}
alerts: {{default_channels: [audit]}}
service: {{listen: "127.0.0.1:{port}"}}
pipeline: {{tick: 0.2}}
""")
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([str(MONITOR_BIN), "run", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: health(port).get("ok"), timeout=60, what="the daemon to be healthy")
        pledges = rules / "arms-pledges.yaml"
        good = pledges.read_text()
        pledges.write_text(good[: good.index("sentence:(") + len("sentence:(")])  # half-written: the query is cut
        failed = wait_until(lambda: section(port, "rules").get("last_reload_failed") and health(port), timeout=30,
                            what="the failed reload to show in /healthz")
        assert "arms-pledges.yaml" in failed["rules"]["last_error"]
        assert failed["rules"]["count"] == 3

        shutil.copy(SEED_PLEDGE, inbox / "leopard.txt")  # the old rules still match
        wait_until(lambda: "arms-pledge" in audit_rules(audit), timeout=60, what="an arms-pledge alert")

        pledges.write_text(good)
        (rules / "zelensky.yaml").write_text(KEYWORD_RULE)
        wait_until(lambda: section(port, "rules").get("count") == 4, timeout=30, what="the fixed rules to go live")
        assert health(port)["rules"]["last_reload_failed"] is False
        (inbox / "leopard-again.txt").write_text(SEED_PLEDGE.read_text() + "\nA different closing line.\n")
        wait_until(lambda: "zelensky-switzerland" in audit_rules(audit), timeout=60,
                   what="the new rule to fire on a new article")

        (rules / "zelensky.yaml").write_text("rules:\n  - id: x\n    titel: typo\n")
        proc.send_signal(signal.SIGHUP)  # an explicit reload finds the typo too
        failed = wait_until(lambda: section(port, "rules").get("last_reload_failed") and health(port), timeout=30,
                            what="the SIGHUP reload to fail")
        assert "zelensky.yaml:3:" in failed["rules"]["last_error"]
        assert failed["rules"]["count"] == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def metric(port: int, sample: str) -> float:
    """The value of one sample (`name{labels}` as Prometheus prints it) on /metrics; 0 when absent."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.rsplit(" ", 1)[0] == sample:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_unknown_channel_on_hot_reload_and_a_broken_configuration_on_sighup_keep_the_running_ones(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "zelensky.yaml").write_text(KEYWORD_RULE)
    port = free_port()
    config = tmp_path / "monitor.yaml"
    good = f"""
data_dir: {tmp_path / 'data'}
sources: {{interval: 1s}}
rules: {{path: {rules}}}
alerts: {{default_channels: [audit]}}
service: {{listen: "127.0.0.1:{port}"}}
pipeline: {{tick: 0.2}}
"""
    config.write_text(good)
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([str(MONITOR_BIN), "run", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: health(port).get("ok"), timeout=60, what="the daemon to be healthy")
        (rules / "zelensky.yaml").write_text(KEYWORD_RULE.replace("channels: [audit]", "channels: [slack]"))
        failed = wait_until(lambda: section(port, "rules").get("last_reload_failed") and health(port), timeout=30,
                            what="the reload naming an unknown channel to fail")
        assert "zelensky.yaml:6:16: rule zelensky-switzerland: unknown channel 'slack'" in failed["rules"]["last_error"]
        assert failed["ok"] and failed["rules"]["count"] == 1  # the old rule keeps matching

        config.write_text(good.replace("sources:", "sourcess:"))
        proc.send_signal(signal.SIGHUP)
        failed = wait_until(lambda: section(port, "config").get("last_reload_failed") and health(port), timeout=30,
                            what="the configuration reload to fail")
        assert f"{config}:3:1: sourcess: unknown setting" in failed["config"]["last_error"]
        assert "last configuration reload failed; previous configuration active" in failed["warnings"]
        assert failed["ok"]  # a warning, as a failed rule reload: the running configuration stays
        assert metric(port, 'monitor_config_reloads_total{result="failed"}') == 1.0

        config.write_text(good)
        proc.send_signal(signal.SIGHUP)
        fixed = wait_until(lambda: (c := section(port, "config")) and not c["last_reload_failed"] and health(port),
                           timeout=30, what="the fixed configuration to load")
        assert "last configuration reload failed; previous configuration active" not in fixed["warnings"]
        assert metric(port, 'monitor_config_reloads_total{result="ok"}') == 1.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
