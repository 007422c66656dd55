"""Issue 12's done-when case: 42 real feeds on loopback whose article pages cannot be had; `monitor run --once`.

    python -m bench.unreachable_pages            # 42 feeds, the default settings
    python -m bench.unreachable_pages --feeds 10 --keep /tmp/run   # fewer feeds, keep the data folder

The feeds are the real documents of ../shared/corpus/feeds/real/ (the 42 with the most entries, Reuters and the New
York Times among them: about 1,900 entries), served from 127.0.0.1. Their entries' links are pointed at pages that
fail as pages do daily, each feed's pages on a loopback address of their own (127.0.0.2, 127.0.0.3, ...: one site
per feed, as the real feeds have): a third refuse the connection (nothing listens on port 9), a third answer 403 (a
bot wall), a third 404. The run uses the embedded Redis, `fetch_page: auto` (the default), `fetch.timeout` 20 s, and one
broad rule (any of a few common news words) sending to the built-in audit channel (data/alerts.jsonl).

Prints the wall time of `run --once`, its exit code, the log lines it wrote, and from `monitor feeds --json`: entries,
articles from the page / from feed text / page failed / dead-lettered, the alerts and where their text came from,
and one line per distinct page error reason.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from bench.corpus import corpus

ROOT = Path(__file__).resolve().parent.parent
MONITOR = Path(sys.executable).with_name("monitor")
CLOSED_PORT = 9  # the discard port: nothing listens, the connection is refused
MUST = ("feedreader__Rss20Reuters.xml", "feedreader__Rss20NYTimes.xml")
URL_START = re.compile(rb"https?://", re.IGNORECASE)
NAMESPACE = re.compile(rb"xmlns(?::[\w.-]+)?\s*=\s*[\"']$")  # namespace URIs (xmlns="http://...") stay as they are
RULE = """rules:
  - id: news
    title: Common news words
    severity: info
    channels: [audit]
    any: [president, government, minister, police, election, war, court, parliament]
"""


def pick_feeds(count: int) -> list[Path]:
    """The `count` real feeds with the most entries (Reuters and the NYT always among them)."""
    from monitor.sources.feed import parse_feed

    sizes: dict[Path, int] = {}
    real = corpus("feeds/real")
    for path in sorted(real.iterdir()):
        try:
            sizes[path] = len(parse_feed(path.read_bytes(), feed_id="x", url="http://127.0.0.1/feed").entries)
        except Exception:  # noqa: BLE001 - a corpus file that is not a usable feed is skipped
            continue
    must = [real / name for name in MUST]
    rest = sorted((p for p in sizes if p not in must and sizes[p]), key=lambda p: (-sizes[p], p.name))
    return (must + rest)[:count]


def point_links(body: bytes, target: str) -> bytes:
    """Every http(s) URL of the document but namespace names to `target` + the original host and path: nothing
    the run fetches leaves the loopback addresses."""
    return URL_START.sub(lambda m: m.group(0) if NAMESPACE.search(body, max(0, m.start() - 60), m.start())
                         else target.encode() + b"/", body)


def write_config(folder: Path, urls: list[str]) -> Path:
    (folder / "rules").mkdir()
    (folder / "rules" / "news.yaml").write_text(RULE)
    feeds = "\n".join(f'    - {{id: f{n:02d}, url: "{url}"}}' for n, url in enumerate(urls))
    path = folder / "monitor.yaml"
    path.write_text(f"""data_dir: {folder / 'data'}
sources:
  feeds:
{feeds}
fetch: {{allow_private_addresses: true}}
rules: {{path: {folder / 'rules'}, watch: false}}
alerts: {{default_channels: [audit]}}
service: {{listen: null}}
""")
    return path


async def run(cmd: list[str], code_dir: Path | None = None) -> tuple[int, str, str, float, float]:
    """Exit code, stdout, stderr, wall seconds, CPU seconds (user + system, the command and the children it waited
    for: the worker processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(code_dir)) if code_dir else None  # another checkout's monitor package
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=env)
    out, err = await proc.communicate()
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"), wall, cpu


async def main(count: int, keep: Path | None, code_dir: Path | None = None) -> None:
    folder = keep or Path(tempfile.mkdtemp(prefix="unreachable-"))
    if keep:
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
    app = web.Application()
    feeds: dict[str, bytes] = {}

    async def handle(request: web.Request) -> web.Response:
        if request.path in feeds:
            return web.Response(body=feeds[request.path], content_type="application/xml")
        if request.path.startswith("/walled/"):
            return web.Response(status=403, text="Access denied")
        return web.Response(status=404, text="Not found")

    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    chosen = pick_feeds(count)
    for n, path in enumerate(chosen):  # each feed's pages on a site of their own: 127.0.0.2, 127.0.0.3, ...
        address = f"127.0.0.{n + 2}"
        if n % 3:
            await web.TCPSite(runner, address, port).start()
        target = [f"http://{address}:{CLOSED_PORT}", f"http://{address}:{port}/walled",
                  f"http://{address}:{port}/gone"][n % 3]
        feeds[f"/feed/{n:02d}"] = point_links(path.read_bytes(), target)
    config = write_config(folder, [f"{base}/feed/{n:02d}" for n in range(len(chosen))])
    load = os.getloadavg()[0]
    try:
        code, _, err, seconds, cpu = await run([str(MONITOR), "run", "--once", "-c", str(config)], code_dir)
        (folder / "run-once.log").write_text(err)
        _, out, _, _, _ = await run([str(MONITOR), "feeds", "--json", "-c", str(config)])
    finally:
        await runner.cleanup()
    report = json.loads(out)
    alerts = [json.loads(line) for line in (folder / "data" / "alerts.jsonl").read_text().splitlines()] \
        if (folder / "data" / "alerts.jsonl").exists() else []
    totals = collections.Counter()
    reasons = collections.Counter()
    for r in report:
        a = r["articles"]
        totals.update(entries=r["entries"], ok=a["ok"], feed_text=a["feed_text"], failed=a["failed"], dead=r["dead"])
        reason = re.sub(r"https?://\S+", "URL", a["last_error"])
        reasons[reason[:160]] += 1
    print(f"feeds: {len(chosen)} ({', '.join(p.name for p in chosen[:2])}, ...)")
    print(f"run --once: {seconds:.1f} s wall, {cpu:.1f} s CPU, exit code {code}, {len(err.splitlines())} log lines "
          f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores)")
    print("totals: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    print(f"alerts: {len(alerts)}, text from: "
          + ", ".join(f"{k} {v}" for k, v in collections.Counter(
              a["article"].get("text_from", "page") for a in alerts).most_common()))
    print(f"sources with a page error shown by `monitor feeds`: {sum(bool(r['articles']['last_error']) for r in report)}"
          f" of {len(report)}; sources unhealthy (articles failing): {sum(r['articles_failing'] for r in report)}")
    for reason, n in reasons.most_common():
        print(f"  {n:3d} x {reason}")
    print(f"data: {folder}" + ("" if keep else " (temporary)"))
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=42)
    parser.add_argument("--keep", type=Path, default=None, help="keep the data folder here")
    parser.add_argument("--code", type=Path, default=None,
                        help="run --once with the monitor package of this folder (e.g. `git archive main` unpacked)")
    args = parser.parse_args()
    asyncio.run(main(args.feeds, args.keep, args.code))
