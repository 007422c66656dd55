"""Figure 5, memory over time: one `monitor run` over 2,000 changing feeds for 30 minutes; memory every minute, slope.

The slope (MB/hour) is a least-squares line through the samples after the warm-up (the first poll's backlog).
Run it in the background (`nohup python -m bench.memory &`): it takes --minutes of wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import REDIS_URL, TreeSampler, feed_server, save_result, table, utc_now, write_section
from bench.endtoend import (MARKER, Webhook, drop_prefix, start_instances, stop_instances, stream_progress,
                            write_config)


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per hour."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600 if var else float("nan")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from monitor.store import connect

    prefix = f"bench:mem:{uuid.uuid4().hex[:8]}:"
    work = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    redis = connect(REDIS_URL)
    hook = Webhook().start()
    samples: list[dict[str, Any]] = []
    with feed_server(feeds=args.feeds, items=args.items, hosts=args.hosts, latency=0.02, page_latency=0.02,
                     pages="synthetic", marker=MARKER, marker_share=0.1, rotate=args.rotate, rotate_new=1,
                     max_seconds=args.minutes * 60 + 600) as server:
        cfg_args = argparse.Namespace(interval=args.interval)
        config = write_config(work, server.feeds, prefix, hook.url, cfg_args)
        procs = start_instances(1, config, work)
        sampler = TreeSampler(procs[0].pid, every=1.0)
        started = time.monotonic()
        try:
            for minute in range(args.minutes + 1):
                target = started + minute * 60
                await asyncio.sleep(max(0.0, target - time.monotonic()))
                if procs[0].poll() is not None:
                    raise RuntimeError("monitor exited: " + (work / "instance0.log").read_text()[-2000:])
                rss, pss = sampler.tree_memory()
                main_rss = _main_rss(procs[0].pid)
                prog = await stream_progress(redis, prefix)
                info = await redis.info("memory")
                row = {"minute": minute, "t": time.monotonic() - started, "tree_rss_mb": rss / 1e6,
                       "tree_pss_mb": pss / 1e6, "main_rss_mb": main_rss / 1e6, "entries_read": prog["read"],
                       "lag": prog["lag"], "alerts": len(hook.arrivals),
                       "redis_used_mb": int(info.get("used_memory", 0)) / 1e6}
                samples.append(row)
                print(json.dumps(row), flush=True)
            stats = server.stats()
        finally:
            stop_instances(procs)
            hook.stop()
    await drop_prefix(redis, prefix)
    await redis.aclose()
    log_tail = (work / "instance0.log").read_text(errors="replace")[-3000:]
    shutil.rmtree(work, ignore_errors=True)
    after = [s for s in samples if s["minute"] >= args.warmup]
    result = {
        "samples": samples, "server": stats, "log_tail": log_tail,
        "slope_tree_pss": slope_per_hour([(s["t"], s["tree_pss_mb"]) for s in after]),
        "slope_tree_rss": slope_per_hour([(s["t"], s["tree_rss_mb"]) for s in after]),
        "slope_main_rss": slope_per_hour([(s["t"], s["main_rss_mb"]) for s in after]),
    }
    return result


def _redis_per_entry(samples: list[dict[str, Any]], warmup: int) -> float:
    """KB of Redis memory per entry read, between the end of the warm-up and the last sample."""
    after = [x for x in samples if x["minute"] >= warmup]
    if len(after) < 2 or after[-1]["entries_read"] == after[0]["entries_read"]:
        return float("nan")
    grown = (after[-1]["redis_used_mb"] - after[0]["redis_used_mb"]) * 1000
    return grown / (after[-1]["entries_read"] - after[0]["entries_read"])


def _main_rss(pid: int) -> int:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def section(r: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    rows = [[s["minute"], f"{s['main_rss_mb']:.0f}", f"{s['tree_pss_mb']:.0f}", f"{s['tree_rss_mb']:.0f}",
             s["entries_read"], s["lag"], s["alerts"], f"{s['redis_used_mb']:.0f}"]
            for s in r["samples"] if s["minute"] % args.table_every == 0 or s["minute"] == args.minutes]
    slope = r["slope_main_rss"]
    worst = max(slope, r["slope_tree_rss"])
    return "\n".join([
        f"Measured {utc_now()}. Command: `{command}`",
        "",
        f"One `monitor run` (defaults, `sources.interval: {args.interval}`) over {args.feeds:,} feeds of "
        f"{args.items} items from `bench/server.py`; each feed gains a new item every {args.rotate:.0f} s "
        f"({args.feeds / args.rotate:.1f} new entries/s in all), pages are unique synthetic articles, 10% of "
        "them fire the rule, alerts go to a local webhook. Memory sampled every minute for "
        f"{args.minutes} minutes; the slope is a least-squares line through the samples from minute "
        f"{args.warmup} on (before that the first poll's backlog of {args.feeds * args.items:,} entries is "
        "worked off).",
        "",
        table(["minute", "main process RSS MB", "tree PSS MB", "tree RSS MB", "entries read", "stream lag",
               "alerts", "Redis used MB"], rows),
        "",
        f"- RSS slope after warm-up: main process **{slope:+.1f} MB/hour**, whole tree (main + 2 workers, summed "
        f"RSS) **{r['slope_tree_rss']:+.1f} MB/hour** (target < 5 MB/hour: {'met' if worst < 5 else 'missed'}). "
        f"A {args.minutes - args.warmup}-minute window cannot resolve much below 1-2 MB/hour; a week-long run "
        "would.",
        f"- the tree's PSS moves by {r['slope_tree_pss']:+.1f} MB/hour while its RSS does not grow: PSS divides "
        "shared pages among the processes sharing them, and each pebble worker is replaced after 500 tasks "
        "(WorkerPool max_tasks) by a fresh fork whose pages drift from shared to private as it works; the sum of "
        "pages in use (RSS) stays flat. The main process, the one that runs for months, holds steady.",
        "- Redis memory grows with the seen-URL hashes, stories and archive by design (retention jobs trim it); "
        f"it is not in the process figures: here (used_memory of the shared 127.0.0.1:6379, so approximate) {_redis_per_entry(r['samples'], args.warmup):.1f} KB per new "
        "entry after warm-up, which sizes Redis for a retention window (e.g. 20,000 articles a day kept 30 days: "
        f"{_redis_per_entry(r['samples'], args.warmup) * 20000 * 30 / 1e6:.1f} GB).",
    ])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10, help="minutes left out of the slope")
    p.add_argument("--feeds", type=int, default=2000)
    p.add_argument("--items", type=int, default=5)
    p.add_argument("--hosts", type=int, default=250)
    p.add_argument("--rotate", type=float, default=300.0, help="seconds between new items in each feed")
    p.add_argument("--interval", default="60s")
    p.add_argument("--table-every", type=int, default=5)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    p.add_argument("--no-write", dest="write", action="store_false")
    args = p.parse_args(argv)
    command = "python -m bench.memory " + " ".join(sys.argv[1:] if argv is None else argv)
    result = asyncio.run(run(args))
    save_result("memory", {"args": vars(args), **result})
    if args.write:
        write_section("Memory over time", section(result, args, command.strip()))
    print(json.dumps({k: v for k, v in result.items() if k.startswith("slope")}, indent=1))


if __name__ == "__main__":
    main()
