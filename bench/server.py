"""Loopback feed and page server for the benchmarks: N RSS 2.0 feeds of M items spread over many 127.0.0.x sites.

Run as its own process (`python -m bench.server --feeds 1000 --items 20`), so its CPU is not the contender's; it prints
`READY {json}` (control URL, feed URLs) on stdout. ETag/Last-Modified with 304, latency, a share of failing feeds
(HTTP 500), items that change over time (--rotate, from the start or from POST /_rotate), pages as real corpus bytes or unique synthetic articles.
GET /_stats on the control address gives request counts and the peak of concurrent requests per site.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import email.utils
import hashlib
import html
import json
import random
import resource
import signal
import sys
import time
from functools import lru_cache
from pathlib import Path

from aiohttp import web

from bench.corpus import corpus

START = 1_700_000_000.0  # Last-Modified of generation 0; later generations add the rotation period


def corpus_pages(folder: Path | None = None) -> list[bytes]:
    """The corpus HTML pages ($MONITOR_CORPUS/pages), as stored (bytes), in a stable order."""
    return [p.read_bytes() for p in sorted((folder or corpus("pages")).rglob("*.html"))]


def corpus_paragraphs(folder: Path | None = None) -> list[str]:
    """Paragraphs of the hand-annotated article bodies (zyte/*.expected.txt): material for unique articles."""
    folder = folder or corpus("pages")
    paras = []
    for file in sorted(folder.rglob("*.expected.txt")):
        paras += [p.strip() for p in file.read_text(encoding="utf-8", errors="replace").split("\n")
                  if len(p.strip()) > 80]
    return paras


class Site:
    """What the server answers; counters per site (host address) for the politeness figure."""

    def __init__(self, args: argparse.Namespace, hosts: list[str]) -> None:
        self.args = args
        self.hosts = hosts
        self.port = args.port
        self.started = time.time()
        self.rotation_from: float | None = None if args.rotate_on_demand else self.started
        self.pages = corpus_pages() if args.pages == "corpus" else []
        self.paragraphs = corpus_paragraphs() if args.pages == "synthetic" else []
        self.padding = self._boilerplate()
        rng = random.Random(7)
        self.failing = {i for i in range(args.feeds) if rng.random() < args.fail_share}
        self.reset()

    def reset(self) -> None:
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.peak: collections.Counter[str] = collections.Counter()
        self.status: collections.Counter[str] = collections.Counter()
        self.kind: collections.Counter[str] = collections.Counter()
        self.bytes_out = 0
        self.cpu_at_reset = _cpu()

    # ---------------------------------------------------------------------------------------------- naming
    def host_of(self, feed: int) -> str:
        return self.hosts[feed % len(self.hosts)]

    def feed_url(self, feed: int) -> str:
        return f"http://{self.host_of(feed)}:{self.port}/feed/{feed}.xml"

    def page_url(self, feed: int, item: int) -> str:
        return f"http://{self.host_of(feed)}:{self.port}/article/{feed}/{item}.html"

    # ---------------------------------------------------------------------------------------------- feeds
    def generation(self, feed: int, now: float) -> int:
        """Which version of the feed is current: changes every --rotate seconds (phase differs per feed)."""
        if not self.args.rotate or self.rotation_from is None:
            return 0
        phase = (feed * 0.618034 % 1.0) * self.args.rotate
        return int((now - self.rotation_from + phase) // self.args.rotate)

    @lru_cache(maxsize=8192)
    def feed_body(self, feed: int, gen: int) -> tuple[bytes, str, str]:
        """(RSS bytes, ETag, Last-Modified) of one feed generation: items gen*K .. gen*K+M-1, newest first."""
        first = gen * self.args.rotate_new
        items = []
        for item in range(first + self.args.items - 1, first - 1, -1):
            stamp = email.utils.formatdate(START + item * 60, usegmt=True)
            items.append(
                f"<item><title>Feed {feed} story {item}: officials announce new measures</title>"
                f"<link>{self.page_url(feed, item)}</link><guid isPermaLink=\"false\">f{feed}-i{item}</guid>"
                f"<pubDate>{stamp}</pubDate><description>Summary of story {item} from feed {feed}. "
                f"{'Lorem ipsum dolor sit amet, consectetur adipiscing elit. ' * 3}</description></item>")
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>"
                f"<title>Bench feed {feed}</title><link>http://{self.host_of(feed)}:{self.port}/</link>"
                f"<description>benchmark feed</description>{''.join(items)}</channel></rss>").encode()
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        last_modified = email.utils.formatdate(START + gen * max(self.args.rotate, 1), usegmt=True)
        return body, etag, last_modified

    # ---------------------------------------------------------------------------------------------- pages
    def _boilerplate(self) -> str:
        """Navigation, sidebar and script blobs like a news site's, so synthetic pages weigh what real ones do."""
        rng = random.Random(11)
        words = "world politics business economy sport culture science tech opinion video live".split()
        nav = "".join(f'<li><a href="/section/{w}/{i}">{w.title()} {i}</a></li>' for i in range(60)
                      for w in [rng.choice(words)])
        script = "var cfg = " + json.dumps({f"k{i}": "x" * 40 for i in range(600)}) + ";"
        # teasers of other stories: DOM that trafilatura must weigh and drop. 160 of them make a synthetic page
        # cost what the median corpus page costs to extract (~24 ms of CPU here)
        paras = self.paragraphs or ["Other story"]
        teasers = "".join(f'<div class="teaser"><a href="/story/{i}"><h3>{html.escape(rng.choice(paras)[:80])}</h3>'
                          f'</a><p class="kicker">{html.escape(rng.choice(paras)[:160])}</p>'
                          f'<span class="time">2 hours ago</span></div>' for i in range(self.args.teasers))
        return (f"<header><nav><ul>{nav}</ul></nav></header><script>{script}</script>"
                f"<aside><h3>Most read</h3><ul>{nav[:4000]}</ul></aside>"
                f'<aside class="related"><h2>More stories</h2>{teasers}</aside>')

    def page_body(self, feed: int, item: int) -> bytes:
        if self.pages:
            return self.pages[(feed * 7919 + item * 104729) % len(self.pages)]
        return self._synthetic(feed, item)

    def _synthetic(self, feed: int, item: int) -> bytes:
        """A unique article (paragraphs drawn from the annotated corpus bodies), so every page is its own story."""
        rng = random.Random(feed * 1_000_003 + item)
        paras = rng.sample(self.paragraphs, k=min(9, len(self.paragraphs)))
        if self.args.marker and rng.random() < self.args.marker_share:
            paras.insert(rng.randrange(len(paras)), self.args.marker)
        text = "".join(f"<p>{html.escape(p)}</p>" for p in paras)
        title = f"Feed {feed} story {item}: officials announce new measures"
        return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
                f"<meta property=\"og:title\" content=\"{title}\"><meta name=\"author\" content=\"Bench Writer\">"
                f"<meta property=\"article:published_time\" content=\"2024-05-0{1 + item % 9}T10:00:00Z\">"
                f"</head><body>{self.padding}<main><article><h1>{title}</h1>{text}</article></main>"
                f"<footer><p>Copyright bench news. All rights reserved.</p></footer></body></html>").encode()

    # ---------------------------------------------------------------------------------------------- serving
    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = request.host.rsplit(":", 1)[0]
        self.in_flight[host] += 1
        self.peak[host] = max(self.peak[host], self.in_flight[host])
        try:
            response = await self._answer(request)
        finally:
            self.in_flight[host] -= 1
        self.status[str(response.status)] += 1
        self.bytes_out += len(response.body or b"") if isinstance(response, web.Response) else 0
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if parts[0] == "feed" and len(parts) == 2 and parts[1].endswith(".xml"):
            self.kind["feed"] += 1
            if self.args.latency:
                await asyncio.sleep(self.args.latency)
            return self._feed(request, int(parts[1][:-4]))
        if parts[0] == "article" and len(parts) == 3 and parts[2].endswith(".html"):
            self.kind["page"] += 1
            if self.args.page_latency:
                await asyncio.sleep(self.args.page_latency)
            body = self.page_body(int(parts[1]), int(parts[2][:-5]))
            return web.Response(body=body, headers={"Content-Type": "text/html; charset=utf-8"})
        return web.Response(status=404, text="not found")

    def _feed(self, request: web.Request, feed: int) -> web.Response:
        if feed in self.failing or feed >= self.args.feeds:
            return web.Response(status=500 if feed in self.failing else 404, text="server error")
        body, etag, last_modified = self.feed_body(feed, self.generation(feed, time.time()))
        headers = {"ETag": etag, "Last-Modified": last_modified}
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if (inm is not None and etag in [t.strip() for t in inm.split(",")]) or (inm is None and ims == last_modified):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, headers={**headers, "Content-Type": "application/rss+xml; charset=utf-8"})

    async def stats(self, _request: web.Request) -> web.Response:
        return web.json_response({
            "requests": dict(self.kind), "status": dict(self.status), "bytes_out": self.bytes_out,
            "peak_per_host": max(self.peak.values(), default=0), "hosts_seen": len(self.peak),
            "server_cpu_seconds": round(_cpu() - self.cpu_at_reset, 3)})

    async def start_rotation(self, _request: web.Request) -> web.Response:
        self.rotation_from = time.time()
        return web.json_response({"ok": True})

    async def do_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def serve(args: argparse.Namespace) -> None:
    hosts = [f"127.0.{(n >> 8) & 255}.{n & 255}" for n in range(2, 2 + args.hosts)]
    site = Site(args, hosts)
    app = web.Application()
    app.router.add_get("/_stats", site.stats)
    app.router.add_post("/_reset", site.do_reset)
    app.router.add_post("/_rotate", site.start_rotation)
    app.router.add_route("GET", "/{tail:.*}", site.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handle_signals=False)
    await runner.setup()
    for address in ["127.0.0.1", *hosts]:
        await web.TCPSite(runner, address, args.port, backlog=1024).start()
    info = {"control": f"http://127.0.0.1:{args.port}", "feeds": [site.feed_url(i) for i in range(args.feeds)],
            "hosts": len(hosts), "failing": len(site.failing)}
    sys.stdout.write("READY " + json.dumps(info) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
    except TimeoutError:
        pass  # bounded in time whatever happens to the parent
    await runner.cleanup()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=18080)
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--hosts", type=int, default=250, help="sites on 127.0.0.2 ... (feed i on site i mod hosts)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each feed answer")
    p.add_argument("--page-latency", type=float, default=0.0, help="seconds before each page answer")
    p.add_argument("--fail-share", type=float, default=0.0, help="share of feeds that answer HTTP 500")
    p.add_argument("--rotate", type=float, default=0.0, help="seconds between new items in each feed (0: never)")
    p.add_argument("--rotate-new", type=int, default=2, help="new items per feed per rotation")
    p.add_argument("--rotate-on-demand", action="store_true", help="items stay put until POST /_rotate")
    p.add_argument("--pages", choices=("corpus", "synthetic", "none"), default="corpus",
                   help="corpus: the corpus's pages; synthetic: articles from its annotated paragraphs ($MONITOR_CORPUS)")
    p.add_argument("--teasers", type=int, default=160, help="teaser blocks of boilerplate on synthetic pages")
    p.add_argument("--marker", default="", help="a sentence put into --marker-share of synthetic pages")
    p.add_argument("--marker-share", type=float, default=0.5)
    p.add_argument("--max-seconds", type=float, default=3 * 3600)
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(serve(parse_args()))
