"""Helpers for tests that run real `monitor run` processes: a feed world on a loopback server, instances, waits.

Also starts private redis-server processes (a single AOF server for outage tests, a three-node Cluster).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable
from xml.sax.saxutils import escape

from servers import LoopbackServer

MONITOR_BIN = Path(sys.executable).with_name("monitor")
PAGES = Path(__file__).resolve().parent / "data" / "corpus" / "pages" / "trafilatura"

# Corpus pages (bytes as stored). The rule below fires on the first six and on none of the others.
MATCHING = ["thelocal.se.tattooed.html", "tagesspiegel.de.abstandsregeln.html", "cicero.de.pandemie.html",
            "freitag.de.morgen.html", "sciencesetavenir.fr.rumeur.html", "francais.radio.cz-ministre.html"]
OTHERS = ["fivethirtyeight.com.endorsement.html", "deutschlandfunk.de.titanic.html", "cbsnews.com.carolina.html",
          "newrepublic.com.neoliberalism.html", "phys.org.tool.html", "harpers.org.justice.html",
          "politico.com.retirement.html", "economist.com.thinking.html", "tagesschau.de.rheinmetall.html",
          "dw.com-elephants.html", "observer.com-LVMH.html", "uebermedien.de-Israel.html"]
RULE = """rules:
  - id: virus-watch
    title: Coronavirus mentioned
    severity: info
    any: [coronavirus, covid 19, pandemie, pandemic]
"""


def rss(title: str, items: list[tuple[str, str]]) -> bytes:
    when = format_datetime(datetime(2025, 4, 20, 18, 0, tzinfo=timezone.utc))
    body = "".join(f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>{escape(u)}</guid>"
                   f"<pubDate>{when}</pubDate></item>" for t, u in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>'
            f"<link>http://127.0.0.1/</link><description>test</description>{body}</channel></rss>").encode()


class TimedServer(LoopbackServer):
    """A LoopbackServer that also keeps the monotonic time of every request, per path."""

    def __init__(self) -> None:
        super().__init__()
        self.times: dict[str, list[float]] = {}

    async def _handle(self, request: Any) -> Any:
        self.times.setdefault(request.path, []).append(time.monotonic())
        return await super()._handle(request)


@dataclass
class FeedWorld:
    """Feeds /feed/<n>.xml, each linking pages /p/<name>; which pages the rule fires on."""

    server: TimedServer
    feeds: list[str] = field(default_factory=list)  # feed paths
    pages: list[str] = field(default_factory=list)  # page paths
    matching: list[str] = field(default_factory=list)  # page paths the rule fires on

    @classmethod
    def build(cls, server: TimedServer, *, feeds: int = 6, page_delay: float = 0.0,
              extra_pages: dict[str, Any] | None = None) -> "FeedWorld":
        world = cls(server)
        names = MATCHING + OTHERS
        for name in names:
            path = f"/p/{name}"
            server.route(path, (PAGES / name).read_bytes(), content_type="text/html", delay=page_delay)
            world.pages.append(path)
        world.matching = [f"/p/{n}" for n in MATCHING]
        for path, behaviour in (extra_pages or {}).items():
            server.route(path, **behaviour)
        links = world.pages + list(extra_pages or {})
        for n in range(feeds):
            mine = links[n::feeds]
            path = f"/feed/{n}.xml"
            server.route(path, rss(f"Feed {n}", [(p.rsplit("/", 1)[-1], server.url(p)) for p in mine]),
                         content_type="application/rss+xml")
            world.feeds.append(path)
        return world


def write_config(tmp_path: Path, *, redis_url: str, prefix: str, world: FeedWorld, hook: str,
                 interval: float = 2.0, extra: str = "", fetch: str = "", source: str = "") -> Path:
    """A monitor.yaml for the instances: the world's feeds, a rules folder with RULE, alerts to `hook`; `fetch`:
    more fetch settings (", per_host: 4"); `source`: more settings of every feed (", fetch_page: always")."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "virus.yaml").write_text(RULE)
    feeds = ", ".join(f'{{id: f{n}, url: "{world.server.url(p)}", interval: {interval}{source}}}'
                      for n, p in enumerate(world.feeds))
    path = tmp_path / "monitor.yaml"
    path.write_text(f"""
data_dir: {tmp_path / 'data'}
redis: {{url: "{redis_url}", prefix: "{prefix}"}}
sources:
  jitter: 0.05
  feeds: [{feeds}]
fetch: {{allow_private_addresses: true, timeout: 10{fetch}}}
rules: {{path: {rules}, watch: false}}
workers: {{processes: 1}}
channels:
  desk: {{urls: ["{hook}"]}}
alerts: {{default_channels: [desk], retry_base: 0.05, retry_max_delay: 0.2, send_timeout: 10, poll_interval: 0.2,
          claim_idle: 1}}
{extra}
""")
    return path


class Instance:
    """One `monitor run` process; its stderr goes to a log file."""

    def __init__(self, config: Path, name: str, log_dir: Path, *, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        environ = dict(os.environ, MONITOR_SERVICE__CONSUMER=name, **(env or {}))
        environ.pop("NOTIFY_SOCKET", None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(MONITOR_BIN), "run", "--config", str(config), *args], env=environ,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None


async def stop_all(instances: list[Instance], timeout: float = 30.0) -> list[int | None]:
    """SIGTERM to every live instance, then wait without blocking the event loop (the test's servers live there)."""
    for inst in instances:
        if inst.alive():
            inst.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(inst.alive() for inst in instances) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return [inst.stop(timeout=0.1) for inst in instances]


async def wait_until(check: Callable[[], Any], *, timeout: float, every: float = 0.1, what: str = "") -> Any:
    t0 = time.monotonic()
    try:
        return await _wait_until(check, timeout=timeout, every=every, what=what)
    finally:
        print(f"[wait] {what}: {time.monotonic() - t0:.1f}s")


async def _wait_until(check: Callable[[], Any], *, timeout: float, every: float = 0.1, what: str = "") -> Any:
    """Poll `check` (sync or async) until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}")
        await asyncio.sleep(every)


async def wait_started(instances: list[Instance], *, timeout: float = 60.0) -> None:
    def started() -> bool:
        for inst in instances:
            if not inst.alive():
                raise AssertionError(f"{inst.name} exited early with {inst.proc.returncode}:\n{inst.log()[-3000:]}")
        return all("started:" in inst.log() for inst in instances)

    await wait_until(started, timeout=timeout, what="instances to start")


async def settled(redis, keys: Any, streams: tuple[str, ...] = ("entries", "articles", "alerts")) -> bool:
    """Nothing undelivered or unacknowledged in the streams, and no channel send waiting."""
    for name in streams:
        key = keys.stream(name)
        if not await redis.exists(key):
            return False
        last = (await redis.xinfo_stream(key))["last-generated-id"]
        for group in await redis.xinfo_groups(key):
            if int(group["pending"]) or group["last-delivered-id"] != last:
                return False
    return not await redis.zcard(keys("{alerts}", "due", "desk"))


def alert_urls(bodies: list[dict[str, Any]]) -> list[str]:
    """The page path each webhook alert is about (from the message text)."""
    out = []
    for body in bodies:
        text = json.dumps(body)
        found = [p for p in ("/p/" + n for n in MATCHING + OTHERS) if p in text]
        out.append(found[0] if found else "?")
    return out


# --- private redis-server processes ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_cluster_port() -> int:
    """A free port p <= 55535 whose cluster bus port p + 10000 is free too (Redis Cluster needs both)."""
    import random

    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisProcess:
    """A redis-server on a TCP port with AOF (appendfsync always) in `directory`; stop() and start() keep the port."""

    def __init__(self, directory: Path, *, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        from monitor.store import redis_server_binary

        self.binary = redis_server_binary()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"), *self.extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.directory / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout:.0f}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: redis writes its AOF and exits (a clean stop); SIGKILL: a crash (appendfsync always keeps
        every acknowledged write)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class LocalCluster:
    """Three redis-server nodes with --cluster-enabled on free ports, joined by `redis-cli --cluster create`."""

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        self.nodes = [RedisProcess(directory / f"node{n}", port=free_cluster_port(), extra=("--cluster-enabled", "yes",
                                                                  "--cluster-config-file", "nodes.conf",
                                                                  "--cluster-node-timeout", "5000"))
                      for n in range(nodes)]
        self.cli = str(Path(self.nodes[0].binary).with_name("redis-cli"))

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        result = subprocess.run([self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
                                 "--cluster-yes"], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = subprocess.run([self.cli, "-p", str(self.nodes[0].port), "cluster", "info"], capture_output=True,
                                  text=True, timeout=5).stdout
            if "cluster_state:ok" in info:
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(signal.SIGKILL)
