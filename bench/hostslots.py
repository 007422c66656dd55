"""What the shared per-host limit costs a request: the same GETs through a Fetcher alone and through a Fetcher whose
per-host slots are leased in Redis (monitor/hosts.py), alternated in one run.

    python -m bench.hostslots [--requests 1000] [--rounds 3] [--no-write]

One loopback site (its own process: aiohttp on 127.0.0.1) answering a 2 KB body at once, then after 50 ms (a site's
usual response time); `per_host: 4`, 32 requests in flight; an embedded redis-server on a unix socket (the daemon's
default). The figure is requests per second, median of the rounds, and the ratio of the two, measured side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import tempfile
import time

from aiohttp import web

from bench.common import median, table, write_section
from monitor.hosts import LEASE_MARGIN, SharedHosts
from monitor.net import Fetcher
from monitor.settings import FetchSettings
from monitor.store import EmbeddedRedis, Keys, connect

BODY = b"x" * 2048


def _serve(port: int) -> None:
    async def page(request: web.Request) -> web.Response:
        if request.path.startswith("/slow/"):
            await asyncio.sleep(0.05)
        return web.Response(body=BODY, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("bench server did not start")


async def _round(fetcher: Fetcher, url: str, requests: int, concurrency: int) -> float:
    todo = iter(range(requests))

    async def worker() -> None:
        for n in todo:
            await fetcher.get(f"{url}/{n}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def measure(requests: int, rounds: int, concurrency: int = 32, per_host: int = 4) -> dict[str, list[float]]:
    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(tmp)
        redis = connect(redis_server.start())
        try:
            await _wait_listening(port)
            settings = FetchSettings(allow_private_addresses=True, per_host=per_host, robots=False)
            shared = SharedHosts(redis, Keys("bench:hostslots:"), per_host=per_host,
                                 lease=settings.timeout + LEASE_MARGIN)
            url = f"http://127.0.0.1:{port}"
            results: dict[str, list[float]] = {}
            async with Fetcher(settings) as local, Fetcher(settings, shared=shared) as remote:
                await _round(local, url, 200, concurrency)  # warm-up: connections, script cache
                await _round(remote, url, 200, concurrency)
                for site, path, count in (("0 ms", "/fast", requests), ("50 ms", "/slow", max(requests // 5, 100))):
                    for _ in range(rounds):
                        for name, fetcher in (("local", local), ("shared", remote)):
                            results.setdefault(f"{site} {name}", []).append(
                                await _round(fetcher, url + path, count, concurrency))
            return results
        finally:
            await redis.aclose()
            redis_server.stop()
            server.terminate()


def report(results: dict[str, list[float]], requests: int, rounds: int) -> str:
    rows = []
    for site in ("0 ms", "50 ms"):
        local, shared = median(results[f"{site} local"]), median(results[f"{site} shared"])
        rows.append([site, f"{local:,.0f}", f"{shared:,.0f}", f"{shared / local:.2f}x"])
    return "\n".join([
        f"`python -m bench.hostslots --requests {requests} --rounds {rounds}`: GETs of a 2 KB page from "
        f"one loopback site (its own process) answering at once ({requests} GETs) or after 50 ms "
        f"({max(requests // 5, 100)}), 32 in flight, `per_host: 4`, the embedded redis-server on a unix socket; "
        f"{rounds} rounds alternating the two fetchers, medians. The machine was shared with other sessions' test "
        "suites (2 cores).", "",
        table(["site answers after", "per-instance semaphore only (main), req/s",
               "+ slot leased in Redis (this branch), req/s", "ratio"], rows), "",
        "Each request costs two script calls (take the slot, give it back), one Redis round trip each, made while "
        "the request holds its slot, on a machine whose 2 cores also run the site, Redis and other sessions' "
        "tests. Against a site answering at once (loopback) that is most of the cost of a request; against 50 ms it "
        "is the ratio in the second row, and it shrinks as the site gets slower. It is paid only where one host is "
        "busy with `per_host` requests. What it buys is what the site sees: at most `per_host` requests at once from "
        "all instances together (tests/integration/test_scaleout.py). What would make it cheaper: hand a finished "
        "request's slot straight to the next request of the same instance for the same host (one lease refresh "
        "instead of a release and a claim), at the cost of fairness between instances on a busy host.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(measure(args.requests, args.rounds))
    print(results)
    body = report(results, args.requests, args.rounds)
    print(body)
    if not args.no_write:
        write_section("Shared per-host limit", body)


if __name__ == "__main__":
    main()
