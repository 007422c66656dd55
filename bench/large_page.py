"""The memory-bound figures of docs/operations.md: one `monitor run` handling one 9.5 MB flat HTML page.

Serves a feed with one item and the page on 127.0.0.1, starts the daemon (embedded Redis, one worker), and until the
article is extracted (or has failed) samples every 50 ms the resident memory of the main process and of the worker,
and asks /healthz in a loop. Prints main and worker RSS at start and at peak (the kernel's VmHWM for the main process),
the longest /healthz answer and the outcome.

    python -m bench.large_page                         # this checkout
    python -m bench.large_page --pythonpath /tmp/old   # another version's source tree, same venv
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

from bench.common import ROOT, free_port

sys.path.insert(0, str(ROOT / "tests"))
from servers import flat_html_page  # noqa: E402  (the same page the test serves)

MIB = 1024 * 1024


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def serve(size: int, go: asyncio.Event) -> tuple[web.AppRunner, str]:
    """The feed and the page; the feed answers once `go` is set (after the idle figures are taken)."""
    page = flat_html_page(size)
    app = web.Application()
    port = free_port()
    feed = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title><item><title>A very long report'
            f'</title><link>http://127.0.0.1:{port}/big.html</link></item></channel></rss>').encode()

    async def feed_handler(_: web.Request) -> web.Response:
        await go.wait()
        return web.Response(body=feed, content_type="application/rss+xml")

    app.router.add_get("/feed.xml", feed_handler)
    app.router.add_get("/big.html", lambda _: web.Response(body=page, content_type="text/html"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/feed.xml"


def config(work: Path, feed: str, listen: int) -> Path:
    rules = work / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("rules:\n  - {id: zebra, title: Zebra, any: [zebra]}\n")
    path = work / "monitor.yaml"
    path.write_text(f"""
data_dir: {work / 'data'}
sources: {{feeds: [{{id: big, url: "{feed}", interval: 3600}}]}}
fetch: {{allow_private_addresses: true, timeout: 60}}
extract: {{timeout: 120}}
rules: {{path: {rules}, watch: false}}
workers: {{processes: 1}}
pipeline: {{tick: 0.5}}
service: {{listen: "127.0.0.1:{listen}"}}
""")
    return path


async def measure(args: argparse.Namespace) -> dict:
    go = asyncio.Event()
    runner, feed = await serve(args.size, go)
    work = Path(tempfile.mkdtemp(prefix="bench-large-page-"))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=args.pythonpath) if args.pythonpath else dict(os.environ)
    log = open(work / "monitor.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", "from monitor.cli import main; main()", "run", "-c",
                             str(config(work, feed, port))], env=env, cwd=work, stdout=log,
                            stderr=subprocess.STDOUT)
    main = psutil.Process(proc.pid)
    result: dict = {"page_bytes": args.size, "source": args.pythonpath or str(ROOT)}
    health_waits: list[float] = []
    worker_start = worker_peak = main_start = 0
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            while True:  # started: /healthz answers
                try:
                    async with session.get(base + "/healthz") as resp:
                        if resp.status in (200, 503):
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(2)  # the worker pool is up, nothing to do yet
            main_start = main.memory_info().rss
            go.set()
            started = time.monotonic()
            while time.monotonic() - started < args.max_seconds:
                for child in main.children():
                    if "redis" in child.name():
                        continue
                    rss = child.memory_info().rss
                    worker_start = worker_start or rss  # first seen: forked for the feed's parse, before the page
                    worker_peak = max(worker_peak, rss)
                t0 = time.monotonic()
                async with session.get(base + "/healthz", timeout=aiohttp.ClientTimeout(total=120)) as resp:
                    await resp.read()
                health_waits.append(time.monotonic() - t0)
                async with session.get(base + "/metrics") as resp:
                    text = await resp.text()
                done = [line for line in text.splitlines() if line.startswith("monitor_articles_total{")
                        and not line.endswith(" 0.0")]
                if done:
                    result["outcome"] = done
                    break
                await asyncio.sleep(0.05)
            result.update(main_rss_start_mib=main_start / MIB, main_peak_mib=vm_hwm(proc.pid) / MIB,
                          worker_rss_start_mib=worker_start / MIB, worker_peak_mib=worker_peak / MIB,
                          healthz_longest_s=max(health_waits), healthz_answers=len(health_waits))
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        await runner.cleanup()
    text = (work / "monitor.log").read_text(errors="replace")
    result["log_cut_lines"] = [line[-160:] for line in text.splitlines() if "cut from" in line][:2]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=9_500_000)
    parser.add_argument("--pythonpath", default="", help="import monitor from this source tree instead")
    parser.add_argument("--max-seconds", type=float, default=300)
    print(json.dumps(asyncio.run(measure(parser.parse_args())), indent=1))


if __name__ == "__main__":
    main()
