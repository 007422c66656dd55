"""The worker pool's own CPU per task, batched or not: the corpus pages through WorkerPool(processes=1), CPU of the
main process and of the worker counted apart (psutil), each setting in a fresh child process, the settings
alternating. Load-insensitive where the extraction bench is not: what it reports is CPU, not wall time.

    MONITOR_CORPUS=/work/shared/corpus .venv/bin/python -m bench.pool_batch --batches 1,2,4,8 --rounds 3
    ... --against /work/wt-batch-base   (that checkout's WorkerPool too, first on the path; it has no batch knob)
    ... --task sleep   (a 1 KB body and 40 ms of sleep a task: extraction's pace, so the worker's CPU is the overhead)
    ... --task tiny    (a 1 KB body, len(): the round trip as fast as it goes)
    ... --bare         (bare trafilatura over the same pages too, chunk by chunk in the same child: CPU side by side)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import PYTHON, ROOT, median  # noqa: E402

URL = "https://news.example.com/article/{n}.html"


def _sleep_len(body: bytes) -> int:
    time.sleep(0.04)
    return len(body)


async def measure(batch: int, passes: int, concurrency: int, task: str, bare: bool) -> dict[str, Any]:
    import psutil

    from bench.extraction import page_bodies
    from monitor.errors import PermanentError
    from monitor.extract import extract_article, load_date_parser
    from monitor.language import load_model
    from monitor.settings import ExtractSettings
    from monitor.workers import WorkerPool

    assert all(sys.modules[m].__file__.startswith(os.getcwd()) for m in ("monitor.workers", "bench.extraction"))

    settings = ExtractSettings()
    bodies = page_bodies() if task == "extract" else [b"x" * 1024] * 141  # tiny, sleep: 1 KB bodies
    items = list(enumerate(bodies)) * passes
    load_model()
    load_date_parser()
    # max_tasks: one worker throughout (a replaced one would take its CPU figure with it)
    pool = WorkerPool(processes=1, max_tasks=10**6, **({"batch": batch} if batch else {}))
    with pool:

        async def one(n: int, body: bytes) -> None:
            try:
                if task == "extract":
                    await pool.run(extract_article, body, timeout=settings.timeout, url=URL.format(n=n),
                                   content_type="text/html", encoding=None, feed_id="bench", source="bench",
                                   entry_title="", entry_published=None, min_chars=settings.min_chars)
                elif task == "sleep":  # paced like an extraction, no CPU of its own: the worker's CPU is the overhead
                    await pool.run(_sleep_len, body, timeout=30)
                else:
                    await pool.run(len, body, timeout=30)
            except PermanentError:
                pass

        await asyncio.gather(*(one(n, b) for n, b in items[:8]))  # warm-up; the worker exists
        if bare:
            from bench.extraction import bare_one

            for n, body in items[:8]:
                bare_one(body, n)
        sem = asyncio.Semaphore(concurrency)

        async def bounded(n: int, body: bytes) -> None:
            async with sem:
                await one(n, body)

        me = psutil.Process()
        # the pool's one worker: the zygote's child (monitor/zygote.py), or this process's without one
        (worker,) = [p for p in me.children(recursive=True) if p.name() == "monitor-worker"]

        def cpu() -> tuple[float, float]:
            return sum(me.cpu_times()[:2]), sum(worker.cpu_times()[:2])

        main_cpu = worker_cpu = bare_cpu = 0.0
        started = time.perf_counter()
        # --bare: the same pages through bare trafilatura in this process, a chunk at a time between the pool's
        # chunks, so that both see the same load on the machine
        chunk = 2 * concurrency if bare else len(items)
        for at in range(0, len(items), chunk):
            part = items[at:at + chunk]
            (main0, worker0) = cpu()
            await asyncio.gather(*(bounded(n, b) for n, b in part))
            (main1, worker1) = cpu()
            main_cpu, worker_cpu = main_cpu + main1 - main0, worker_cpu + worker1 - worker0
            if bare:
                from bench.extraction import bare_one

                for n, body in part:
                    bare_one(body, n)
                bare_cpu += sum(cpu()) - main1 - worker1
        elapsed = time.perf_counter() - started
        calls = getattr(pool, "batches", None)
    n = len(items)
    return {"tasks": n, "seconds": elapsed, "main_ms": main_cpu / n * 1000, "worker_ms": worker_cpu / n * 1000,
            "bare_ms": bare_cpu / n * 1000, "batched_calls": calls}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batches", default="1,2,4,8")
    p.add_argument("--against", default="", help="another checkout: its pool as a contender (batch knob unset)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--passes", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--task", choices=("extract", "tiny", "sleep"), default="extract")
    p.add_argument("--bare", action="store_true", help="bare trafilatura too, chunk by chunk in the same process")
    p.add_argument("--child", type=int, default=-1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child >= 0:
        result = asyncio.run(measure(args.child, args.passes, args.concurrency, args.task, args.bare))
        print("RESULT " + json.dumps(result))
        return
    contenders = [(f"batch {b}", int(b), "") for b in args.batches.split(",")]
    if args.against:
        contenders.append((f"base {args.against}", 0, args.against))
    results: dict[str, list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        order = contenders if round_ % 2 == 0 else contenders[::-1]
        for name, batch, path in order:
            # this file run by its path, from the checkout measured and with it first on the path: that checkout's
            # monitor and bench packages, not this one's (installed editable in the venv)
            checkout = path or str(ROOT)
            env = dict(os.environ, PYTHONPATH=checkout)
            load = open("/proc/loadavg").read().split()[0]
            out = subprocess.run([PYTHON, __file__, "--child", str(batch), "--passes", str(args.passes),
                                  "--concurrency", str(args.concurrency), "--task", args.task,
                                  *(["--bare"] if args.bare else [])],
                                 cwd=checkout, env=env, capture_output=True, text=True, timeout=1800)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if not lines:
                sys.exit(f"child {name} failed: {out.stderr[-2000:]}")
            r = json.loads(lines[-1][7:])
            r["load1"] = float(load)
            results.setdefault(name, []).append(r)
            print(f"  round {round_ + 1} {name:28s} main {r['main_ms']:.3f} ms, worker {r['worker_ms']:.3f} ms a "
                  f"task, bare {r['bare_ms']:.3f} ms, {r['tasks'] / r['seconds']:.1f} tasks/s, batched calls "
                  f"{r['batched_calls']}, loadavg {load}", flush=True)
    print("medians:")
    for name, rs in results.items():
        print(f"  {name:28s} main {median([r['main_ms'] for r in rs]):.3f} ms, worker "
              f"{median([r['worker_ms'] for r in rs]):.3f} ms, total "
              f"{median([r['main_ms'] + r['worker_ms'] for r in rs]):.3f} ms a task; bare "
              f"{median([r['bare_ms'] for r in rs]):.3f} ms, bare / pool (each run's pair) "
              f"{median([r['bare_ms'] / (r['main_ms'] + r['worker_ms']) for r in rs]):.3f}")


if __name__ == "__main__":
    main()
