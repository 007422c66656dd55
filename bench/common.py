"""Shared pieces of the benchmarks: the feed server as a child process, process-tree memory sampling, medians,
machine facts and writing one "## " section of BENCHMARKS.md without touching the others.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.corpus import corpus

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
CACHE = ROOT / "bench" / ".cache"
VENVS = ROOT / "bench" / ".venvs"
# The interpreter that runs the benchmark runs its children too (any virtualenv, not only ./.venv).
PYTHON = sys.executable
MONITOR = [PYTHON, "-m", "monitor.cli"]  # the `monitor` command of that interpreter's install
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


# ------------------------------------------------------------------------------------------------ numbers
def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(round(q / 100 * len(ordered) + 0.5))))
    return ordered[rank - 1]


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------------------------------------ memory
_ROLLUP_KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "Shared_Clean", "Shared_Dirty", "Private_Clean",
                "Private_Dirty", "Anonymous")


def smaps_rollup(pid: int) -> dict[str, Any] | None:
    """The process's /proc/PID/smaps_rollup in bytes (None when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    out: dict[str, Any] = dict.fromkeys(_ROLLUP_KEYS, 0)
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        if name in out:
            out[name] = int(rest.split()[0]) * 1024
    return out


def process_role(pid: int, root: int) -> str:
    """"main" for the root; else the process's name (monitor names its children: monitor-worker, monitor-send),
    "child" for an unnamed one."""
    if pid == root:
        return "main"
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "child"
    return name.removeprefix("monitor-") if name.startswith("monitor-") else "child"


def rollup_table(rollups: list[dict[str, Any]]) -> str:
    """One line per process: role pid, PSS (anon + file), USS, private dirty, shared; MB."""
    lines = []
    for r in rollups:
        mb = {k: r[k] / 1e6 for k in _ROLLUP_KEYS}
        lines.append(f"    {r['role']:>7} {r['pid']:>7}: PSS {mb['Pss']:6.1f} (anon {mb['Pss_Anon']:5.1f}, file "
                     f"{mb['Pss_File']:5.1f}) USS {mb['Private_Clean'] + mb['Private_Dirty']:5.1f} private dirty "
                     f"{mb['Private_Dirty']:5.1f} shared {mb['Shared_Clean'] + mb['Shared_Dirty']:6.1f} RSS "
                     f"{mb['Rss']:6.1f}")
    total = sum(r["Pss"] for r in rollups) / 1e6
    lines.append(f"    {'tree':>7}        : PSS {total:6.1f} (anon {sum(r['Pss_Anon'] for r in rollups) / 1e6:5.1f}, "
                 f"file {sum(r['Pss_File'] for r in rollups) / 1e6:5.1f}) USS "
                 f"{sum(r['Private_Clean'] + r['Private_Dirty'] for r in rollups) / 1e6:5.1f}")
    return "\n".join(lines)


@dataclass
class TreeSampler:
    """Samples the summed RSS and PSS of a process and all its descendants every `every` seconds, in a thread.

    PSS (shared pages divided among the processes sharing them) is the fair sum for a forked worker pool: summed
    RSS counts the pages a worker shares with its parent twice.
    """

    pid: int
    every: float = 0.05
    peak_bytes: int = 0
    peak_pss_bytes: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)
    # at the PSS peak: [(role, PSS, USS)] per process, USS being the pages only it holds
    peak_split: list[tuple[str, int, int]] = field(default_factory=list)
    # ... and the same processes' smaps_rollup: {"role", "pid", "Pss", "Pss_Anon", "Pss_File", "Private_Dirty",
    # "Private_Clean", "Shared_Clean", "Shared_Dirty", "Rss"} in bytes (anon: the heap; file: code and mapped files)
    peak_rollup: list[dict[str, Any]] = field(default_factory=list)
    peak_at: float = 0.0  # time.time() of the PSS peak
    _split: list[tuple[str, int, int]] = field(default_factory=list)
    _rollup: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def tree_memory(self, with_pss: bool = True) -> tuple[int, int]:
        """(summed RSS, summed PSS) of the tree now; PSS from /proc/PID/smaps_rollup (~0.3 ms a process), RSS
        from statm (~0.02 ms)."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0, 0
        rss = pss = 0
        split, rollups = [], []
        for proc in procs:
            if not with_pss:
                with contextlib.suppress(psutil.Error):
                    rss += proc.memory_info().rss
                continue
            roll = smaps_rollup(proc.pid)
            if roll is None:
                continue
            roll["role"] = process_role(proc.pid, self.pid)
            roll["pid"] = proc.pid
            rss += roll["Rss"]
            pss += roll["Pss"]
            split.append((roll["role"], roll["Pss"], roll["Private_Clean"] + roll["Private_Dirty"]))
            rollups.append(roll)
        self._split, self._rollup = split, rollups
        return rss, pss

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            with_pss = n % 4 == 0  # PSS at a quarter of the rate, so the sampler does not steal a core
            rss, pss = self.tree_memory(with_pss)
            n += 1
            if rss:
                self.peak_bytes = max(self.peak_bytes, rss)
                if with_pss:
                    if pss > self.peak_pss_bytes:
                        self.peak_split, self.peak_rollup, self.peak_at = self._split, self._rollup, time.time()
                    self.peak_pss_bytes = max(self.peak_pss_bytes, pss)
                    self.samples.append((time.monotonic(), pss))
            self._stop.wait(self.every)

    def start(self) -> "TreeSampler":
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 1e6

    @property
    def peak_pss_mb(self) -> float:
        return self.peak_pss_bytes / 1e6


@dataclass
class Timed:
    seconds: float
    peak_mb: float  # summed RSS
    returncode: int
    peak_pss_mb: float = 0.0
    cpu_seconds: float = 0.0
    output: str = ""


def run_measured(args: Sequence[str], *, cwd: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = 900.0) -> Timed:
    """Run a command to completion, timing it and sampling its process tree's RSS; output kept for the errors."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(list(args), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    sampler = TreeSampler(proc.pid).start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    finally:
        sampler.stop()
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped descendants' CPU (user + system)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(seconds=elapsed, peak_mb=sampler.peak_mb, peak_pss_mb=sampler.peak_pss_mb,
                 returncode=proc.returncode, cpu_seconds=cpu,
                 output=out.decode(errors="replace")[-4000:])


# ------------------------------------------------------------------------------------------------ the feed server
@dataclass
class ServerHandle:
    """A running `python -m bench.server` child: its control URL, feed URLs and stats."""

    proc: subprocess.Popen[bytes]
    control: str
    feeds: list[str]
    info: dict[str, Any]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.control + "/_stats", timeout=10) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        req = urllib.request.Request(self.control + "/_reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def feed_server(**options: Any) -> Iterator[ServerHandle]:
    """Start bench/server.py in its own process (its CPU is not the contender's) and stop it afterwards."""
    port = options.pop("port", None) or free_port()
    if options.get("pages", "corpus") != "none":
        corpus("pages")  # here, as one line, rather than as a child that did not start
    args = [PYTHON, "-m", "bench.server", "--port", str(port)]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(b"READY "):
            raise RuntimeError(f"bench.server did not start: {line!r}")
        info = json.loads(line[6:])
        handle = ServerHandle(proc=proc, control=info["control"], feeds=info["feeds"], info=info)
        yield handle
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ------------------------------------------------------------------------------------------------ machine / report
def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"') + f" (kernel {platform.release()})"
    return {
        "CPU": f"{cpu}, {psutil.cpu_count(logical=True)} logical cores",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": os_name,
        "Python": sys.version.split()[0],
    }


def package_versions(names: Sequence[str]) -> str:
    from importlib import metadata

    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def write_section(title: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace the '## <title>' section (up to the next '## ') of BENCHMARKS.md, or append it; others untouched."""
    text = f"## {title}\n\n{body.strip()}\n"
    current = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)
    order_sections(path)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def results_dir() -> Path:
    """Where figures keep their raw results: $BENCH_RESULTS, else bench/.cache/results/ (ignored by git)."""
    named = os.environ.get("BENCH_RESULTS")
    return Path(named) if named else CACHE / "results"


def save_result(name: str, data: Any) -> Path:
    """Raw results as JSON under results_dir(), for a later look and for `python -m bench`'s table."""
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if folder == CACHE / "results":
        (CACHE / ".gitignore").write_text("*\n")
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    return path


R2E_VERSION_CMD = [str(VENVS / "rss2email" / "bin" / "r2e"), "--version"]


# ------------------------------------------------------------------------------------------------ other load
class OtherLoad:
    """How many cores processes other than ours (and our reaped children) kept busy during a block.

    The machine is shared (CI and other sessions run tests on the same 2 cores): a run with much other load
    is not a measurement of the contender, so callers repeat it.
    """

    def __init__(self, exclude_cpu: float = 0.0) -> None:
        self.exclude_cpu = exclude_cpu  # CPU seconds of known helpers (e.g. the feed server) to leave out
        self.cores = 0.0

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0)

    @staticmethod
    def _ours() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def __enter__(self) -> "OtherLoad":
        self._t0, self._busy0, self._ours0 = time.monotonic(), self._busy(), self._ours()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.monotonic() - self._t0, 1e-6)
        other = (self._busy() - self._busy0) - (self._ours() - self._ours0) - self.exclude_cpu
        self.cores = max(other, 0.0) / wall


SECTION_ORDER = ("Machine", "Issue 14: every figure and its verdict", "Feed refresh", "Extraction", "Matching",
                 "End to end", "Memory over time")


def order_sections(path: Path = BENCHMARKS) -> None:
    """Put the '## ' sections in the issue's figure order (texts untouched; unknown sections keep their place last)."""
    if not path.exists():
        return
    text = path.read_text()
    head, *parts = re.split(r"(?m)^(?=## )", text)
    titles = [p.split("\n", 1)[0][3:].strip() for p in parts]
    rank = {t: i for i, t in enumerate(SECTION_ORDER)}
    ordered = [p for _, p in sorted(zip(titles, parts), key=lambda tp: rank.get(tp[0], len(rank)))]
    path.write_text(head + "".join(p if p.endswith("\n\n") else p.rstrip("\n") + "\n\n" for p in ordered).rstrip()
                    + "\n")


async def drop_prefix(redis: Any, prefix: str) -> None:
    """Delete every key under `prefix` (a benchmark run's own keys), in batches."""
    batch = []
    async for key in redis.scan_iter(match=prefix + "*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch = []
    if batch:
        await redis.unlink(*batch)
