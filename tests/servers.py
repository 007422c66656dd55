"""A real HTTP server on 127.0.0.1 (random port) for end-to-end tests: feeds, pages, and misbehaving servers.

Usage::

    from servers import LoopbackServer   # tests/ is on sys.path (pytest puts the conftest.py directory there)

    async with LoopbackServer() as srv:
        srv.route("/feed.xml", body, content_type="application/rss+xml")   # ETag + Last-Modified, 304 on match
        srv.route("/busy", status=503, retry_after="120")                  # Retry-After (seconds or HTTP date)
        srv.route("/slow", body, delay=0.2)                                 # sleep before answering
        srv.route("/drip", b"x" * 100, drip=0.05)                           # one byte every 0.05 s after the headers
        srv.gzip_bomb("/bomb", size=50_000_000)                             # Content-Encoding: gzip, tiny on the wire
        srv.redirect_chain("/r", hops=3, final="/feed.xml")                 # /r -> /r/1 -> /r/2 -> /feed.xml
        paths = srv.serve_tree("/feeds", corpus / "feeds")                  # every file under the tree, by rel. path
        url = srv.url("/feed.xml")                                          # http://127.0.0.1:<port>/feed.xml

        srv.requests["/feed.xml"]          # how many requests that path received (collections.Counter)
        srv.request_headers["/feed.xml"]   # list of the request headers received there (dicts), in order
        srv.peak_in_flight                 # the most requests the server was handling at one moment
        srv.responses_304                  # how many 304s it answered

A Fetcher reaching it needs FetchSettings(allow_private_addresses=True): 127.0.0.1 is refused otherwise.
`route()` returns the `Route`; change its fields to change behaviour between requests (e.g. `route.body = ...`;
the ETag follows the body unless one was given). Unknown paths answer 404.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import mimetypes
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiohttp import web

DEFAULT_LAST_MODIFIED = "Sat, 01 Jan 2022 00:00:00 GMT"
FEED_TYPES = {
    ".xml": "application/xml", ".rss": "application/rss+xml", ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml", ".json": "application/feed+json", ".html": "text/html", ".htm": "text/html",
    ".txt": "text/plain",
}


@dataclass
class Route:
    """What one path answers. `etag`/`last_modified`: True = derived automatically, None = not sent."""

    body: bytes = b""
    content_type: str = "application/xml"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | bool | None = True
    last_modified: str | bool | None = True
    retry_after: str | None = None
    delay: float = 0.0
    drip: float = 0.0

    def current_etag(self) -> str | None:
        if self.etag is True:
            return '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'
        return self.etag or None

    def current_last_modified(self) -> str | None:
        if self.last_modified is True:
            return DEFAULT_LAST_MODIFIED
        return self.last_modified or None


@lru_cache(maxsize=4)
def gzip_of_zeros(size: int) -> bytes:
    """A gzip stream that expands to `size` zero bytes (about 1000:1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * min(size, 1 << 20)
    out, left = [], size
    while left > 0:
        piece = block[: min(left, len(block))]
        out.append(comp.compress(piece))
        left -= len(piece)
    out.append(comp.flush())
    return b"".join(out)


class LoopbackServer:
    """An aiohttp.web server on 127.0.0.1 with per-path behaviours and request accounting (see module docstring)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: collections.Counter[str] = collections.Counter()
        self.request_headers: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.responses_304 = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    # ---- configuration
    def route(self, path: str, body: bytes = b"", **behaviour: Any) -> Route:
        route = Route(body=body, **behaviour)
        self.routes[path] = route
        return route

    def redirect_chain(self, path: str, *, hops: int, final: str, status: int = 302) -> None:
        """`path` redirects `hops` times, the last hop pointing at `final` (a path or an absolute URL)."""
        chain = [path] + [f"{path}/{i}" for i in range(1, hops)]
        targets = chain[1:] + [final]
        for here, there in zip(chain, targets):
            self.route(here, status=status, headers={"Location": there}, etag=None, last_modified=None)

    def gzip_bomb(self, path: str, *, size: int, content_type: str = "application/xml") -> Route:
        return self.route(path, gzip_of_zeros(size), content_type=content_type,
                          headers={"Content-Encoding": "gzip"})

    def serve_tree(self, prefix: str, directory: Path, *, content_types: dict[str, str] | None = None
                   ) -> dict[str, Path]:
        """Serve every file under `directory` at prefix + relative path (bytes as stored); returns path -> file."""
        types = {**FEED_TYPES, **(content_types or {})}
        served = {}
        for file in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
            rel = file.relative_to(directory).as_posix()
            ctype = types.get(file.suffix.lower()) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            path = prefix.rstrip("/") + "/" + rel
            self.route(path, file.read_bytes(), content_type=ctype)
            served[path] = file
        return served

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # ---- lifecycle
    async def __aenter__(self) -> "LoopbackServer":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- serving
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests[path] += 1
        self.request_headers[path].append(dict(request.headers))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            route = self.routes.get(path)
            if route is None:
                return web.Response(status=404, text="not found")
            if route.delay:
                await asyncio.sleep(route.delay)
            return await self._answer(request, route)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, route: Route) -> web.StreamResponse:
        headers = dict(route.headers)
        etag, last_modified = route.current_etag(), route.current_last_modified()
        if etag:
            headers["ETag"] = etag
        if last_modified:
            headers["Last-Modified"] = last_modified
        if route.retry_after is not None:
            headers["Retry-After"] = route.retry_after
        if route.status == 200 and self._matches(request, etag, last_modified):
            self.responses_304 += 1
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = route.content_type
        if not route.drip:
            return web.Response(status=route.status, body=route.body, headers=headers)
        response = web.StreamResponse(status=route.status, headers=headers)
        await response.prepare(request)
        try:
            for i in range(len(route.body)):
                await response.write(route.body[i:i + 1])
                await asyncio.sleep(route.drip)
        except (ConnectionError, RuntimeError):  # the client gave up: that is what drip tests expect
            return response
        await response.write_eof()
        return response

    @staticmethod
    def _matches(request: web.Request, etag: str | None, last_modified: str | None) -> bool:
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            return bool(etag) and etag in [t.strip() for t in if_none_match.split(",")]
        return bool(last_modified) and request.headers.get("If-Modified-Since") == last_modified


def flat_html_page(size: int, *, seed: int = 13) -> bytes:
    """An HTML article of about `size` bytes: one flat run of <p> paragraphs of pseudo-random prose (no nesting)."""
    import random

    rng = random.Random(seed)
    words = [w for w in ("the minister said on thursday that allies would send further tanks artillery shells "
                         "drones and air defence systems worth several billion euros to the front where troops "
                         "reported heavy fighting near the river while talks in the capital went on late into "
                         "night and officials from twelve states met again to agree new sanctions on exports "
                         "of fuel grain steel and microchips").split()]
    parts = [b"<!DOCTYPE html><html><head><title>A very long report</title></head><body><article>"
             b"<h1>A very long report</h1>"]
    total = sum(map(len, parts))
    while total < size:
        sentences = (" ".join(rng.choices(words, k=rng.randint(8, 20))).capitalize() + "." for _ in range(5))
        paragraph = f"<p>{' '.join(sentences)}</p>\n".encode()
        parts.append(paragraph)
        total += len(paragraph)
    parts.append(b"</article></body></html>")
    return b"".join(parts)
