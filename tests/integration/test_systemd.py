"""The systemd units pass `systemd-analyze verify` and `security`, start as documented (an unprivileged port per
instance, credentials and documentation the install steps create), and the daemon speaks sd_notify correctly."""

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
OPERATIONS = ROOT / "docs" / "operations.md"
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
    """A template unit is checked through an instance name as the docs use it (monitor@9301.service)."""
    return unit.rename(unit.with_name(unit.name.replace("@", "@9301"))) if "@" in unit.name else unit


def settings(name: str, key: str) -> list[str]:
    """Every value of `key=` in the shipped unit `name`."""
    text = (ROOT / "deploy" / name).read_text()
    return [line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith(key + "=")]


def install_steps() -> str:
    """The shell commands of the install section of docs/operations.md (its first code block)."""
    return re.search(r"```sh\n(.*?)```", OPERATIONS.read_text(), re.S).group(1)


def created_by_install_steps(path: str) -> bool:
    """Whether a command of the install steps creates `path` (install -d, install -D ... -t, tee, cp)."""
    for line in install_steps().splitlines():
        command = line.split("#", 1)[0]
        if re.search(r"\b(install|tee|cp|mkdir)\b", command) and re.search(
                rf"(^|\s){re.escape(path)}/?(\s|$)", command):
            return True
    return False


def test_every_instance_the_docs_start_listens_on_an_unprivileged_port():
    listen = [v for v in settings("monitor@.service", "Environment") if v.startswith("MONITOR_SERVICE__LISTEN=")]
    assert len(listen) == 1
    instances = re.findall(r"monitor@(\w+)", OPERATIONS.read_text())
    assert instances, "docs/operations.md starts no instance of monitor@.service"
    for name in instances:
        value = listen[0].split("=", 1)[1].replace("%i", name)
        config = load_config(None, environ={"MONITOR_SERVICE__LISTEN": value})  # the daemon accepts it
        port = int(config.service.listen.rpartition(":")[2])
        assert port >= 1024, f"monitor@{name} would listen on {value}: refused under DynamicUser= (no privilege)"


@pytest.mark.parametrize("name", UNITS)
def test_every_credential_is_created_by_the_install_steps(name):
    credentials = settings(name, "LoadCredential")
    assert credentials, "the unit passes no credentials"
    for value in credentials:
        _id, _, path = value.partition(":")
        assert created_by_install_steps(path), f"{name}: LoadCredential={value}: docs/operations.md never creates " \
                                               f"{path}, and a missing one stops the unit from starting"


@pytest.mark.parametrize("name", UNITS)
def test_documentation_points_at_what_the_install_steps_put_there(name):
    for uri in " ".join(settings(name, "Documentation")).split():
        assert uri.startswith("file:"), f"{name}: Documentation={uri}: not something this project installs"
        path = uri.removeprefix("file:")
        folder, file = path.rsplit("/", 1)
        assert (ROOT / "docs" / file).is_file(), f"{name}: Documentation={uri}: no docs/{file} in the repository"
        assert created_by_install_steps(folder) or created_by_install_steps(path), \
            f"{name}: Documentation={uri}: docs/operations.md does not install it"


def test_the_shipped_rules_examples_pass_after_the_documented_copy(tmp_path):
    """The install steps' commands that put rules under /etc/monitor/rules, run into a scratch folder: `monitor
    rules test` on the copy passes (examples name files beside the rules, which a copy of *.yaml alone loses)."""
    etc = tmp_path / "etc"
    (etc / "rules").mkdir(parents=True)
    copies = [line.split("#", 1)[0].replace("sudo ", "").replace("/etc/monitor", str(etc))
              for line in install_steps().splitlines() if "/etc/monitor/rules" in line and " cp " in f" {line}"]
    assert copies, "docs/operations.md copies no rules to /etc/monitor/rules"
    for command in copies:
        subprocess.run(command, shell=True, check=True, cwd=ROOT)
    result = subprocess.run([str(MONITOR_BIN), "rules", "test", str(etc / "rules")], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

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
channels:
  audit: {{urls: ["jsonl://{tmp_path / 'alerts.jsonl'}"]}}
  analysts: {{urls: ["jsonl://{tmp_path / 'alerts.jsonl'}"]}}
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
    daemon.live.heartbeat = time.monotonic()
    await daemon.jobs.watchdog()
    assert receive_all(sock, until="WATCHDOG=1", timeout=1) == ["WATCHDOG=1"]
    daemon.live.heartbeat = time.monotonic() - 3600  # the tick loop has not run for an hour
    await daemon.jobs.watchdog()
    assert receive_all(sock, until="WATCHDOG=1", timeout=0.5) == []
    sock.close()
