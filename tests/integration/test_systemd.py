"""The systemd units pass `systemd-analyze verify` and `security`, and the daemon speaks sd_notify correctly."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.systemd import Notifier

ROOT = Path(__file__).resolve().parents[2]
UNITS = ["monitor.service", "monitor@.service"]
MONITOR_BIN = Path(sys.executable).with_name("monitor")


def need_systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing in CI")
        pytest.skip("systemd-analyze not installed")
    return path


def unit_copy(tmp_path: Path, name: str) -> Path:
    """The unit as shipped, with ExecStart pointing at this checkout's console script (verify checks it exists)."""
    text = (ROOT / "deploy" / name).read_text()
    target = tmp_path / name
    target.write_text(text.replace("/opt/monitor/venv/bin/monitor", str(MONITOR_BIN)))
    return target


@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies_without_warnings(tmp_path, name):
    tool = need_systemd_analyze()
    unit = instance(unit_copy(tmp_path, name))
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("name", UNITS)
def test_unit_exposure_is_two_or_lower(tmp_path, name):
    tool = need_systemd_analyze()
    unit = instance(unit_copy(tmp_path, name))
    result = subprocess.run([tool, "security", "--offline=yes", str(unit)], capture_output=True, text=True,
                            timeout=60)
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert found, result.stdout[-500:] + result.stderr
    assert float(found.group(1)) <= 2.0


def instance(unit: Path) -> Path:
    """A template unit is checked through an instance name (monitor@1.service)."""
    return unit.rename(unit.with_name(unit.name.replace("@", "@1"))) if "@" in unit.name else unit


def bind_notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    return sock


def receive_all(sock: socket.socket, *, until: str, timeout: float) -> list[str]:
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            messages.append(sock.recv(4096).decode())
        except socket.timeout:
            continue
        if any(until in m for m in messages):
            break
    return messages


def test_daemon_says_ready_pings_watchdog_and_says_stopping(tmp_path):
    sock = bind_notify_socket(tmp_path)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"""
data_dir: {tmp_path / 'data'}
sources:
  directories: [{{path: {ROOT / 'seeds'}}}]
rules: {{path: {ROOT / 'rules'}}}
channels: {{audit: {{urls: ["jsonl://{tmp_path / 'alerts.jsonl'}"]}}}}
alerts: {{default_channels: [audit]}}
service: {{listen: null}}
pipeline: {{tick: 0.2}}
""")
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="1000000")
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([str(MONITOR_BIN), "run", "--config", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready = receive_all(sock, until="READY=1", timeout=60)
        assert any("READY=1" in m for m in ready), ready
        pings = receive_all(sock, until="never", timeout=2.0)
        assert sum("WATCHDOG=1" in m for m in pings) >= 2, pings
        proc.send_signal(signal.SIGTERM)
        stopping = receive_all(sock, until="STOPPING=1", timeout=20)
        assert any("STOPPING=1" in m for m in stopping), stopping
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


async def test_watchdog_is_silent_when_the_scheduler_stalls(tmp_path):
    sock = bind_notify_socket(tmp_path)
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"})
    config = load_config(None, environ={"MONITOR_PIPELINE__TICK": "1"})
    daemon = Daemon(config, notifier=notifier)
    daemon.heartbeat = time.monotonic()
    await daemon._watchdog()
    assert receive_all(sock, until="WATCHDOG=1", timeout=1) == ["WATCHDOG=1"]
    daemon.heartbeat = time.monotonic() - 3600  # the tick loop has not run for an hour
    await daemon._watchdog()
    assert receive_all(sock, until="WATCHDOG=1", timeout=0.5) == []
    sock.close()
