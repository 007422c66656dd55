"""Figure 4, end to end: 5,000 new entries from 250 feeds through fetch, extraction, dedup, matching and delivery to a
local webhook, by one and by two `monitor run` processes sharing one Redis.

Phase 1 (burst): every feed's 20 items are new at the first poll: articles/s from the first entry seen to the
entries stream drained. Phase 2 (steady): the server then adds items at a fixed rate; latency from "entry seen"
(the stamp FeedStore.mark_seen writes into the seen-URL hash) to the alert arriving at the webhook. Peak memory of
the instances' process trees over both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from bench.common import (MONITOR, REDIS_URL, ROOT, OtherLoad, TreeSampler, feed_server, fmt, free_port, median, percentile,
                          rollup_table, save_result, table, utc_now, write_section, drop_prefix)

MARKER = "Germany said Ukraine would get a further 14 Leopard 2 battle tanks before the spring."
RULE = {"rules": [{
    "id": "bench-leopard", "title": "Leopard tanks for Ukraine (benchmark rule)", "severity": "info",
    "channels": ["bench"], "all": ["Ukraine"], "any": ["Leopard 2", "Abrams"], "none": ["video game"],
}]}
ARTICLE_URL = re.compile(r"https?://127\.0\.\d+\.\d+:\d+/article/(\d+)/(\d+)\.html")


# ------------------------------------------------------------------------------------------------ webhook receiver
class Webhook:
    """An aiohttp receiver in a thread of the bench process: records (arrival time, article URLs) per alert."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[float, list[str]]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        # in order of appearance: the alert's own article (its link) comes first, before its story's other sources
        found = ARTICLE_URL.finditer(body.decode(errors="replace"))
        self.arrivals.append((now, list(dict.fromkeys(m.group(0) for m in found))))
        return web.json_response({"ok": True})

    async def _start(self) -> None:
        app = web.Application(client_max_size=10 * 2**20)
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> "Webhook":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# ------------------------------------------------------------------------------------------------ Redis probes
async def stream_progress(redis: Any, prefix: str, name: str = "entries") -> dict[str, int]:
    """entries-read, lag and pending of a stream's consumer group (0s before it exists)."""
    key = prefix + "stream:{" + name + "}"
    try:
        groups = await redis.xinfo_groups(key)
    except Exception:  # noqa: BLE001 - the stream does not exist yet
        return {"read": 0, "lag": 0, "pending": 0, "length": 0}
    g = groups[0] if groups else {}
    return {"read": int(g.get("entries-read") or 0), "lag": int(g.get("lag") or 0),
            "pending": int(g.get("pending") or 0), "length": int(await redis.xlen(key))}


async def seen_stamps(redis: Any, prefix: str) -> dict[str, float]:
    """url_hash -> first-seen time, from the 256 seen-URL hashes FeedStore writes."""
    stamps: dict[str, float] = {}
    for shard in range(256):
        data = await redis.hgetall(f"{prefix}seen:url:{shard:02x}")
        stamps.update({k: float(v) for k, v in data.items()})
    return stamps


# ------------------------------------------------------------------------------------------------ one case
def write_config(work: Path, feeds: list[str], prefix: str, hook: str, args: argparse.Namespace) -> Path:
    rules = work / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    (rules / "bench.yaml").write_text(yaml.safe_dump(RULE, sort_keys=False))
    config = {
        "data_dir": str(work / "data"),
        "redis": {"url": REDIS_URL, "prefix": prefix},
        "sources": {"interval": args.interval, "jitter": 0.1, "feeds": [{"url": u, "id": f"f{i}"}
                                                                        for i, u in enumerate(feeds)]},
        "fetch": {"allow_private_addresses": True},
        "rules": {"path": str(rules)},
        "channels": {"bench": {"urls": [hook], "format": "text"}},
        "service": {"listen": None},
        "log": {"level": "WARNING"},
    }
    if args.preload_date_parser:
        config.setdefault("workers", {})["preload_date_parser"] = True
    if not args.zygote:
        config.setdefault("workers", {})["zygote"] = False
    if not args.preload_fallback_stoplist:
        config.setdefault("workers", {})["preload_fallback_stoplist"] = False
    path = work / "monitor.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_instances(n: int, config: Path, work: Path, trace: str | None = None) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("MONITOR_")}
    procs = []
    for i in range(n):
        log = open(work / f"instance{i}.log", "wb")  # noqa: SIM115 - closed with the process
        # --trace: the same daemon with each stage of an entry stamped (bench/stagetrace.py)
        command = [sys.executable, "-m", "bench.stagetrace", f"{trace}.{i}"] if trace else list(MONITOR)
        env["PYTHONPATH"] = str(ROOT)
        procs.append(subprocess.Popen(command + ["run", "-c", str(config)],
                                      cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL))
    return procs


def signal_traced(procs: list[subprocess.Popen[bytes]], trace: str | None, signum: int) -> None:
    """With --trace only: bench/stagetrace.py starts (SIGUSR1) or stops and dumps (SIGUSR2) its CPU profile."""
    for p in procs if trace else []:
        if p.poll() is None:
            p.send_signal(signum)


def stop_instances(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=40)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def post(url: str) -> None:
    req = urllib.request.Request(url, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


async def run_case(instances: int, args: argparse.Namespace) -> dict[str, Any]:
    from monitor.dedup import canonical_url, url_hash
    from monitor.store import connect

    n_entries = args.feeds * args.items
    rotate = args.feeds * 2 / args.rate  # 2 new items per feed per rotation -> `rate` new entries/s overall
    prefix = f"bench:e2e:{uuid.uuid4().hex[:8]}:"
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    redis = connect(REDIS_URL)
    hook = Webhook().start()
    result: dict[str, Any] = {"instances": instances}
    with feed_server(feeds=args.feeds, items=args.items, hosts=args.hosts, latency=args.latency,
                     page_latency=args.latency, pages="synthetic", marker=MARKER, marker_share=args.marker_share,
                     rotate=rotate, rotate_new=2, rotate_on_demand=True) as server:
        config = write_config(work, server.feeds, prefix, hook.url, args)
        load = OtherLoad().__enter__()
        procs = start_instances(instances, config, work, args.trace)
        samplers = [TreeSampler(p.pid, every=0.2).start() for p in procs]
        started_at = time.time()
        try:
            result.update(await burst_phase(redis, prefix, n_entries, procs, args))
            post(server.control + "/_rotate")  # the steady phase: items now appear at `rate` per second
            steady_from = time.time()
            signal_traced(procs, args.trace, signal.SIGUSR1)  # stagetrace: profile the steady phase
            await asyncio.sleep(args.steady)
            signal_traced(procs, args.trace, signal.SIGUSR2)
            result["steady_seconds"] = args.steady
            drained_at = await wait_drained(redis, prefix, 0, procs, timeout=120)
            result["steady_drained_after"] = drained_at - steady_from if drained_at else None
            # every alert counts: an alert still queued for routing or sending when the instances stop would be
            # missing from the latencies (it is the slowest)
            counted_until, result["undelivered_at_stop"] = await wait_delivered(redis, prefix, hook, timeout=120)
            result["server"] = server.stats()
            result["cpu"] = [cpu_split(p.pid) for p in procs]
        finally:
            stop_instances(procs)
            for s in samplers:
                s.stop()
            load.exclude_cpu = server.stats()["server_cpu_seconds"]
            load.__exit__(None, None, None)
        result["other_cores"] = round(load.cores, 2)
        hook.stop()
        stamps = await seen_stamps(redis, prefix)
        result.update(latencies(hook.arrivals, stamps, steady_from, canonical_url, url_hash, until=drained_at or counted_until))
        if args.trace:
            Path(args.trace + ".run.json").write_text(json.dumps(
                {"steady_from": steady_from, "arrivals": hook.arrivals, "seen": stamps}))
        result["peak_pss_mb"] = sum(s.peak_pss_mb for s in samplers)
        result["peak_rss_mb"] = sum(s.peak_mb for s in samplers)
        result["peak_pss_mb_each"] = [round(s.peak_pss_mb, 1) for s in samplers]
        result["peak_split_mb"] = [[(role, round(pss / 1e6), round(uss / 1e6)) for role, pss, uss in s.peak_split]
                                   for s in samplers]
        result["peak_rollup"] = [s.peak_rollup for s in samplers]
        # when the peak came: seconds after the instances started, and in which phase
        result["peak_when"] = [(round(s.peak_at - started_at, 1), "burst" if s.peak_at < steady_from else "steady")
                               for s in samplers]
        result["alerts"] = len(hook.arrivals)
        result["log_tail"] = [(work / f"instance{i}.log").read_text(errors="replace")[-1500:]
                              for i in range(instances)]
    await drop_prefix(redis, prefix)
    await redis.aclose()
    shutil.rmtree(work, ignore_errors=True)
    return result


def cpu_split(pid: int) -> dict[str, float]:
    """CPU seconds of an instance's main process and of its worker processes (live and reaped) so far."""
    import psutil

    try:
        main = psutil.Process(pid)
        t = main.cpu_times()
        workers = t.children_user + t.children_system
        for child in main.children(recursive=True):
            ct = child.cpu_times()
            workers += ct.user + ct.system + ct.children_user + ct.children_system  # the zygote's reaped workers
        return {"main": round(t.user + t.system, 1), "workers": round(workers, 1)}
    except psutil.Error:
        return {}


async def wait_drained(redis: Any, prefix: str, at_least: int, procs: list[subprocess.Popen[bytes]],
                       timeout: float) -> float | None:
    """Wall time when the entries group has read >= at_least entries, the articles group as many, and nothing is
    waiting or pending in either; None on timeout."""
    deadline = time.monotonic() + timeout
    said = time.monotonic()
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a monitor instance exited early")
        prog = await stream_progress(redis, prefix)
        after = await stream_progress(redis, prefix, "articles")  # the match stage's stream (since the stage split)
        if prog["read"] >= at_least and prog["lag"] == 0 and prog["pending"] == 0 and after["lag"] == 0 \
                and after["pending"] == 0 and after["read"] >= min(at_least, prog["read"]):
            return time.time()
        if time.monotonic() - said > 15:
            print(f"    stream: {prog}", flush=True)
            said = time.monotonic()
        await asyncio.sleep(0.2)
    return None


async def wait_delivered(redis: Any, prefix: str, hook: Webhook, timeout: float) -> tuple[float, int]:
    """Wait until every alert published to the outbox stream so far has reached the webhook (by its article URL).
    Returns (the moment the wait began, how many of those alerts were still missing at `timeout`)."""
    began = time.time()
    wanted = set()
    for _id, fields in await redis.xrange(prefix + "stream:{alerts}", min="-", max="+"):
        raw = fields.get("data", fields.get(b"data"))
        wanted.add((json.loads(raw).get("article") or {}).get("url", ""))
    deadline = time.monotonic() + timeout
    while True:
        missing = wanted - {urls[0] for _, urls in list(hook.arrivals) if urls}
        if not missing or time.monotonic() > deadline:
            return began, len(missing)
        await asyncio.sleep(0.2)


async def burst_phase(redis: Any, prefix: str, n_entries: int, procs: list[subprocess.Popen[bytes]],
                      args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    done = await wait_drained(redis, prefix, n_entries, procs, timeout=args.timeout)
    prog = await stream_progress(redis, prefix)
    stamps = await seen_stamps(redis, prefix)
    first_seen = min(stamps.values()) if stamps else started
    last_seen = max(stamps.values()) if stamps else started
    end = done or time.time()
    return {"burst_entries": prog["read"], "burst_seconds": end - first_seen, "burst_complete": done is not None,
            "articles_per_s": prog["read"] / (end - first_seen), "startup_to_first_seen": first_seen - started,
            "polls_spread_seconds": last_seen - first_seen}


def latencies(arrivals: list[tuple[float, list[str]]], stamps: dict[str, float], steady_from: float,
              canonical_url: Any, url_hash: Any, until: float = float("inf")) -> dict[str, Any]:
    """Steady: alerts of entries seen from 2 s into the steady phase until `until` (whose alerts were all waited
    for: later ones may still have been on their way when the instances stopped)."""
    burst, steady, unknown = [], [], 0
    for arrived, urls in arrivals:
        for url in urls[:1]:  # the alert's own article is the first URL of its sources list
            seen = stamps.get(url_hash(canonical_url(url)))
            if seen is None:
                unknown += 1
                continue
            if seen > until:
                continue
            (steady if seen >= steady_from + 2 else burst).append(arrived - seen)
    return {"burst_alerts": len(burst), "burst_p50": percentile(burst, 50), "burst_p99": percentile(burst, 99),
            "steady_alerts": len(steady), "steady_p50": percentile(steady, 50), "steady_p99": percentile(steady, 99),
            "steady_max": max(steady, default=float("nan")), "unmatched_alerts": unknown,
            "alert_articles": len({urls[0] for _, urls in arrivals if urls}),
            "repeat_alerts": sum(1 for _, urls in arrivals if urls) - len({urls[0] for _, urls in arrivals if urls})}


# ------------------------------------------------------------------------------------------------ the figure
def run_figure(args: argparse.Namespace, command: str) -> dict[str, Any]:
    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for round_ in range(args.runs):
        for n in ((1, 2) if round_ % 2 == 0 else (2, 1)):
            if n > args.max_instances:
                continue
            r = asyncio.run(run_case(n, args))
            results[n].append(r)
            print(f"  round {round_ + 1}, {n} instance(s): {r['articles_per_s']:.1f} articles/s "
                  f"({r['burst_entries']} in {r['burst_seconds']:.1f} s{'' if r['burst_complete'] else ', TIMEOUT'});"
                  f" steady p50 {r['steady_p50']:.2f} s p99 {r['steady_p99']:.2f} s ({r['steady_alerts']} alerts); "
                  f"burst p50 {r['burst_p50']:.1f} s; peak PSS {r['peak_pss_mb']:.0f} MB RSS "
                  f"{r['peak_rss_mb']:.0f} MB (role, PSS, USS: {r['peak_split_mb'][0]}); alerts {r['alerts']} for {r['alert_articles']} articles ({r.get('undelivered_at_stop', 0)} undelivered at stop); cpu {r.get('cpu')}; other load "
                  f"{r['other_cores']:.2f} cores", flush=True)
            if n == 1 and r.get("cpu"):
                c = {"main_cpu": r["cpu"][0]["main"], "worker_cpu": r["cpu"][0]["workers"],
                     "pages": r["server"]["requests"].get("page", 0),
                     "server_cpu": r["server"].get("server_cpu_seconds", 0.0)}
                main, workers, server, need = capacity(c, args.rate)
                print(f"  CPU per page served ({c['pages']} pages): main {main:.1f} ms, workers {workers:.1f} ms, "
                      f"page server {server:.1f} ms; {args.rate:.0f} entries/s need {need:.2f} cores", flush=True)
            for when, rollup in zip(r["peak_when"], r["peak_rollup"]):
                print(f"  at the PSS peak ({when[0]:.0f} s after start, {when[1]} phase), MB per process:\n"
                      + rollup_table(rollup), flush=True)
    save_result("endtoend", {"args": vars(args), "results": results})
    summary = {n: summarise(rs) for n, rs in results.items() if rs}
    if args.write:
        write_section("End to end", section(summary, args, command))
    return summary


def summarise(rs: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("articles_per_s", "burst_seconds", "burst_entries", "steady_p50", "steady_p99", "steady_alerts",
            "burst_p50", "burst_p99", "peak_pss_mb", "peak_rss_mb", "alerts", "polls_spread_seconds", "other_cores")
    out = {k: median([r[k] for r in rs]) for k in keys}
    out["peak_per_host"] = max(r["server"]["peak_per_host"] for r in rs)
    cpu = [c for r in rs for c in r.get("cpu", []) if c]
    out["main_cpu"] = sum(c["main"] for c in cpu) / max(len(rs), 1)
    out["worker_cpu"] = sum(c["workers"] for c in cpu) / max(len(rs), 1)
    out["pages"] = sum(r["server"]["requests"].get("page", 0) for r in rs) / max(len(rs), 1)
    out["server_cpu"] = sum(r["server"].get("server_cpu_seconds", 0.0) for r in rs) / max(len(rs), 1)
    out["complete"] = all(r["burst_complete"] for r in rs)
    out["runs"] = len(rs)
    return out


def capacity(one: dict[str, float], rate: float) -> tuple[float, float, float, float]:
    """(main, worker, page-server CPU ms per page served, cores the steady rate needs): whether the machine can
    sustain `rate` at all (Redis, shared with other work, not counted)."""
    pages = max(one.get("pages", 0.0), 1.0)
    main, workers, server = (one["main_cpu"] / pages * 1000, one["worker_cpu"] / pages * 1000,
                             one.get("server_cpu", 0.0) / pages * 1000)
    return main, workers, server, rate * (main + workers + server) / 1000


def section(s: dict[int, dict[str, float]], args: argparse.Namespace, command: str) -> str:
    rows = []
    for n, r in sorted(s.items()):
        rows.append([str(n), fmt(r["articles_per_s"]), f"{r['burst_entries']:.0f} in {r['burst_seconds']:.0f} s",
                     f"{r['burst_p50']:.0f} / {r['burst_p99']:.0f}", f"{r['steady_p50']:.2f} / {r['steady_p99']:.2f}",
                     f"{r['steady_alerts']:.0f}", f"{r['peak_pss_mb']:.0f} ({r['peak_rss_mb']:.0f})",
                     f"{r['main_cpu']:.0f} / {r['worker_cpu']:.0f}", f"{r['peak_per_host']:.0f}",
                     f"{r['other_cores']:.2f}"])
    lines = [
        f"Measured {utc_now()}. Command: `{command}`",
        "",
        f"{args.feeds} feeds x {args.items} items = {args.feeds * args.items:,} new entries from `bench/server.py` "
        f"(its own process; {args.hosts} loopback sites, {args.latency * 1000:.0f} ms before each feed and page "
        "answer). Pages are unique synthetic articles (9 paragraphs drawn from the corpus's hand-annotated article "
        "bodies, inside ~95 KB of news-site boilerplate: navigation, scripts, 160 teasers of other stories) so "
        "that every entry is its own story; the boilerplate is sized so that one page costs what the median "
        "corpus page costs to extract (~23 ms of CPU against 24 ms); "
        f"{args.marker_share:.0%} of them carry a sentence that the one rule (`all: [Ukraine], any: [Leopard 2, "
        "Abrams]`) fires on, and the alert goes to a webhook (apprise `json://127.0.0.1:port/hook`) in the "
        "bench process. `monitor run` with the default settings (2 worker processes, 16 pages and 32 feeds at a "
        "time, per_host 4) except `fetch.allow_private_addresses: true`, Redis at 127.0.0.1:6379 (unique prefix).",
        "",
        "Burst: all entries are new at the first poll; articles/s = entries processed / (entry stream drained - "
        "first entry seen); new feeds' first polls are spread over 30 s (feedstate.FIRST_POLL_SPREAD). "
        f"Steady: then for {args.steady:.0f} s the feeds gain items at {args.rate:.0f} entries/s in all; latency "
        "is entry seen (the stamp `FeedStore.mark_seen` writes) to the alert arriving at the webhook, over the "
        "alerts of entries first seen in that phase. Memory: the peak of the summed PSS of all instances' process "
        f"trees (summed RSS in brackets). Medians of {args.runs} run(s) per row.",
        "",
        table(["instances", "articles/s (burst)", "burst", "burst latency p50 / p99 s",
               "steady latency p50 / p99 s", "steady alerts", "peak MB PSS (RSS)", "CPU s main / workers",
               "peak requests on one site", "other load (cores)"], rows),
        "",
    ]
    one = s.get(1)
    if one:
        aps, p99, mem = one["articles_per_s"], one["steady_p99"], one["peak_rss_mb"]
        lines += [
            f"- throughput, 1 instance: **{aps:.1f} articles/s** (target >= 40: "
            f"{'met' if aps >= 40 else f'missed by {(40 - aps) / 40:.0%}'})",
            f"- p99 entry seen -> alert delivered at {args.rate:.0f} entries/s: **{p99:.2f} s** (target < 2 s: "
            f"{'met' if p99 < 2 else f'missed by {p99 - 2:.2f} s'})",
            f"- peak memory, 1 instance (main process + 2 workers): **{one['peak_pss_mb']:.0f} MB PSS** (target "
            f"< 500 MB: {'met' if one['peak_pss_mb'] < 500 else 'missed'}); summed RSS {mem:.0f} MB "
            f"{'also under' if mem < 500 else 'is over'} 500 MB, but it counts the pages the forked workers share "
            "with the main process (imported modules) once per process",
        ]
    if one:
        main, workers, server, need = capacity(one, args.rate)
        cores = os.cpu_count() or 1
        lines += [
            f"- where the CPU goes (1 instance, per page served, {one.get('pages', 0):.0f} pages): "
            f"{workers:.0f} ms in the workers (trafilatura extraction, most of it, plus the feed parses), "
            f"{main:.0f} ms in the main process (fetch, Redis commands, story assignment, matching, sends) and "
            f"{server:.0f} ms in the page server. At {args.rate:.0f} entries/s that is **{need:.2f} cores** of the "
            f"machine's {cores} (Redis not counted): "
            + (f"over capacity, so the steady phase's backlog grows and its p99 is the age of that backlog, not a "
               f"latency; the rate these figures allow is about {cores / (need / args.rate):.0f} entries/s"
               if need >= cores else "within capacity"),
        ]
    two = s.get(2)
    if one and two:
        lines.append(f"- two instances against one Redis: {two['articles_per_s']:.1f} articles/s, "
                     f"{two['articles_per_s'] / one['articles_per_s']:.2f}x one instance on the same 2 cores "
                     "(4 worker processes on 2 cores: more is in flight, but the cores were already the limit; "
                     "on two machines the instances would add up)")
    if two:
        lines.append(f"- politeness across instances: each instance keeps its own per-host limit (4), so with two "
                     f"instances one site saw up to {two['peak_per_host']:.0f} requests at once; a shared limit "
                     "would need a Redis-held semaphore per host")
    lines.append("- \"other load\": cores kept busy by processes outside the benchmark (other sessions' test runs "
                 "share this machine) while the row ran; rows with much of it understate monitor")
    if not one or not one.get("complete", True):
        lines.append("- a burst did not drain within the time limit; its rate is entries read / time waited")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feeds", type=int, default=250)
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--hosts", type=int, default=250)
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--marker-share", type=float, default=0.5)
    p.add_argument("--interval", default="10s", help="sources.interval of the instances")
    p.add_argument("--rate", type=float, default=40.0, help="new entries per second in the steady phase")
    p.add_argument("--steady", type=float, default=60.0, help="seconds of the steady phase")
    p.add_argument("--timeout", type=float, default=900.0, help="longest wait for the burst to drain")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--preload-date-parser", action="store_true",
                   help="workers.preload_date_parser: true in the instances' configuration (default false since "
                        "the extensive date search runs only for undated pages of undated entries; operations.md)")
    p.add_argument("--no-zygote", dest="zygote", action="store_false",
                   help="workers.zygote: false (every worker forked by the main process at its start)")
    p.add_argument("--no-preload-fallback-stoplist", dest="preload_fallback_stoplist", action="store_false",
                   help="workers.preload_fallback_stoplist: false (operations.md: for sites whose article markup "
                        "trafilatura reads without its fallbacks, as the benchmark's synthetic pages)")
    p.add_argument("--max-instances", type=int, default=2)
    p.add_argument("--trace", help="write each entry's stage stamps to TRACE.<instance> (bench/stagetrace.py); "
                                   "bench.e2e_profile reads them")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    p.add_argument("--no-write", dest="write", action="store_false")
    args = p.parse_args(argv)
    command = "python -m bench.endtoend " + " ".join(sys.argv[1:] if argv is None else argv)
    print(json.dumps(run_figure(args, command.strip()), indent=1, default=str))


if __name__ == "__main__":
    main()
