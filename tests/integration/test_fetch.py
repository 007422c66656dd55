"""Fetcher and poll_feed against a real loopback server (conditional GET, errors, caps, deadlines, SSRF, politeness),
and directory sources on real files."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver
from servers import LoopbackServer

from monitor.errors import BlockedURL, PermanentError, RetryAfter, TransientError
from monitor.models import Feed
from monitor.net import Fetcher, guarded_connector
from monitor.settings import FetchSettings
from monitor.sources.directory import read_local, scan_directory
from monitor.sources.feed import poll_feed
from monitor.workers import WorkerPool

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Loop</title>'
       b"<item><title>One</title><link>http://example.org/1</link></item></channel></rss>")


def settings(**kw) -> FetchSettings:
    return FetchSettings(**{"allow_private_addresses": True, "timeout": 5.0, **kw})


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(processes=1) as p:
        yield p


@pytest.fixture
async def server():
    async with LoopbackServer() as srv:
        yield srv


@pytest.fixture
async def fetcher():
    f = Fetcher(settings())
    yield f
    await f.close()


async def test_second_poll_sends_if_none_match_and_is_not_parsed(server, fetcher, pool):
    route = server.route("/feed.xml", RSS, content_type="application/rss+xml", etag='"v1"')
    feed = Feed(id="loop", url=server.url("/feed.xml"))
    first = await poll_feed(feed, etag=None, last_modified=None, fetcher=fetcher, pool=pool)
    assert [e.url for e in first.entries] == ["http://example.org/1"]
    assert first.etag == '"v1"' and first.last_modified

    route.body = b"<not a feed"  # same ETag: were it fetched and parsed, the poll would raise "not a feed"
    second = await poll_feed(feed, etag=first.etag, last_modified=first.last_modified, fetcher=fetcher, pool=pool)
    assert second.not_modified and second.entries == ()
    assert second.etag == '"v1"'
    assert server.request_headers["/feed.xml"][1]["If-None-Match"] == '"v1"'
    assert server.responses_304 == 1


async def test_if_modified_since_alone_gives_not_modified(server, fetcher):
    server.route("/lm.xml", RSS, etag=None, last_modified="Wed, 21 Oct 2015 07:28:00 GMT")
    page = await fetcher.get(server.url("/lm.xml"))
    again = await fetcher.get(server.url("/lm.xml"), last_modified=page.last_modified)
    assert (page.not_modified, again.not_modified) == (False, True)
    assert server.request_headers["/lm.xml"][1]["If-Modified-Since"] == "Wed, 21 Oct 2015 07:28:00 GMT"


async def test_page_carries_charset_and_validators(server, fetcher):
    server.route("/cp.xml", RSS, content_type="application/rss+xml; charset=windows-1251", etag='"e"')
    page = await fetcher.get(server.url("/cp.xml"))
    assert (page.status, page.content_type, page.encoding, page.etag) == (
        200, "application/rss+xml", "windows-1251", '"e"')
    assert page.body == RSS and page.final_url == page.url == server.url("/cp.xml")
    assert server.request_headers["/cp.xml"][0]["User-Agent"].startswith("monitor/")


@pytest.mark.parametrize("status, retry_after, delay", [
    (429, "120", 120.0),
    (503, "7", 7.0),
    (503, "Fri, 01 Jan 2100 00:00:00 GMT", 7 * 86400.0),  # a far date is capped at a week
])
async def test_retry_after_becomes_retry_after_error(server, fetcher, status, retry_after, delay):
    server.route("/busy", status=status, retry_after=retry_after)
    with pytest.raises(RetryAfter) as caught:
        await fetcher.get(server.url("/busy"))
    assert caught.value.delay == delay
    assert server.url("/busy") in str(caught.value)


@pytest.mark.parametrize("status, error", [
    (500, TransientError), (502, TransientError), (503, TransientError), (408, TransientError),
    (429, RetryAfter), (404, PermanentError), (410, PermanentError), (403, PermanentError),
])
async def test_status_codes_map_to_transient_or_permanent(server, fetcher, status, error):
    server.route("/s", status=status)
    with pytest.raises(error) as caught:
        await fetcher.get(server.url("/s"))
    assert type(caught.value) is error
    assert f"{server.url('/s')}: HTTP {status}" in str(caught.value)


async def test_gzip_bomb_is_cut_at_the_decompressed_cap(server):
    server.gzip_bomb("/bomb", size=50_000_000)
    async with Fetcher(settings(max_bytes=1_000_000)) as fetcher:
        with pytest.raises(PermanentError, match=r"/bomb: body exceeds the cap of 1000000 bytes"):
            await fetcher.get(server.url("/bomb"))


async def test_declared_length_over_the_cap_is_refused(server):
    server.route("/big", b"x" * 5000)
    async with Fetcher(settings(max_bytes=1000)) as fetcher:
        with pytest.raises(PermanentError, match=r"5000 bytes exceeds the cap of 1000"):
            await fetcher.get(server.url("/big"))


async def test_slow_drip_body_hits_the_total_deadline(server):
    server.route("/drip", b"x" * 400, drip=0.05)  # 20 s to send it all; every byte arrives well within sock_read
    async with Fetcher(settings(timeout=0.5)) as fetcher:
        with pytest.raises(TransientError, match=r"/drip: no complete response within 0.5s"):
            await fetcher.get(server.url("/drip"))


async def test_redirects_within_the_limit_are_followed(server, fetcher):
    server.route("/final.xml", RSS)
    server.redirect_chain("/r", hops=5, final="/final.xml")
    page = await fetcher.get(server.url("/r"))
    assert page.final_url == server.url("/final.xml") and page.url == server.url("/r")
    assert page.body == RSS


async def test_too_many_redirects_is_permanent(server, fetcher):
    server.route("/final.xml", RSS)
    server.redirect_chain("/r", hops=6, final="/final.xml")
    with pytest.raises(PermanentError, match=r"/r: more than 5 redirects"):
        await fetcher.get(server.url("/r"))
    assert server.requests["/final.xml"] == 0


async def test_redirect_to_another_scheme_is_blocked(server, fetcher):
    server.route("/to-file", status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(BlockedURL, match=r"scheme 'file' not allowed"):
        await fetcher.get(server.url("/to-file"))


async def test_feed_headers_are_not_sent_to_another_origin_after_redirect(server, fetcher):
    server.route("/target", RSS)
    server.route("/hop", status=302, headers={"Location": f"http://localhost:{server.port}/target"})
    await fetcher.get(server.url("/hop"), headers={"Authorization": "Bearer s3cret"})
    assert server.request_headers["/hop"][0]["Authorization"] == "Bearer s3cret"
    assert "Authorization" not in server.request_headers["/target"][0]


@pytest.mark.parametrize("host, error", [
    ("127.0.0.1", BlockedURL), ("localhost", BlockedURL), ("[::1]", BlockedURL),
    ("2130706433", PermanentError),  # legacy numeric form of 127.0.0.1: aiohttp refuses it as an invalid URL
])
async def test_private_addresses_are_refused_without_allow_private(server, host, error):
    server.route("/secret", b"internal")
    async with Fetcher(FetchSettings()) as fetcher:
        with pytest.raises(error) as caught:
            await fetcher.get(f"http://{host}:{server.port}/secret")
    assert host.strip("[]") in str(caught.value)
    assert server.requests["/secret"] == 0


# Every IPv6 spelling of 127.0.0.1 (or another non-public IPv4 address) that a router or tunnel could deliver there.
EMBEDDED_PRIVATE = [
    ("[::7f00:1]", "IPv4-compatible form of 127.0.0.1"),
    ("[2002:7f00:1::]", "6to4 form of 127.0.0.1"),
    ("[64:ff9b::7f00:1]", "NAT64 form of 127.0.0.1"),
    ("[64:ff9b:1::7f00:1]", "local-use NAT64"),
    ("[::ffff:0:7f00:1]", "IPv4-translated form of 127.0.0.1"),
    ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "Teredo client form of 127.0.0.1"),
    ("[2600::5efe:7f00:1]", "ISATAP form of 127.0.0.1"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped form of 127.0.0.1"),
    ("[::a9fe:a9fe]", "169.254.169.254, a link-local address"),  # the cloud metadata service
    ("[2002:a00:1::1]", "6to4 form of 10.0.0.1, a private address"),
]


@pytest.mark.parametrize("host, why", EMBEDDED_PRIVATE)
async def test_ipv6_forms_of_private_ipv4_addresses_are_refused_before_connecting(server, pool, host, why):
    server.route("/feed.xml", RSS)
    url = f"http://{host}:{server.port}/feed.xml"
    async with Fetcher(FetchSettings()) as fetcher:
        with pytest.raises(BlockedURL) as caught:
            await poll_feed(Feed(id="v6", url=url), etag=None, last_modified=None, fetcher=fetcher, pool=pool)
    message = str(caught.value)
    assert message.startswith(f"{url}: address {host.strip('[]')} is not public (")
    assert why in message and "fetch.allow_private_addresses: true allows it" in message
    assert "\n" not in message
    assert server.requests["/feed.xml"] == 0


class StaticResolver(AbstractResolver):
    """DNS answers from a fixed table, as /etc/hosts would give them (the guard filters what any resolver says)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        self.asked.append(host)
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET6 if ":" in address
                 else socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST} for address in self.table[host]]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("address", ["::7f00:1", "2002:7f00:1::", "64:ff9b::7f00:1", "::ffff:127.0.0.1"])
async def test_a_name_resolving_to_an_ipv6_form_of_loopback_is_refused_after_dns(server, address):
    server.route("/secret", b"internal")
    resolver = StaticResolver({"feeds.example": [address]})
    url = f"http://feeds.example:{server.port}/secret"
    async with aiohttp.ClientSession(connector=guarded_connector(FetchSettings(), resolver=resolver)) as session:
        fetcher = Fetcher(FetchSettings(), session=session)
        with pytest.raises(BlockedURL) as caught:
            await fetcher.get(url)
    assert resolver.asked == ["feeds.example"]
    assert str(caught.value).startswith(f"{url}: feeds.example resolves only to non-public addresses ({address}: ")
    assert "127.0.0.1, a loopback address" in str(caught.value)
    assert "fetch.allow_private_addresses: true allows it" in str(caught.value)
    assert server.requests["/secret"] == 0


async def test_injected_session_with_guarded_connector_refuses_private_names(server):
    server.route("/secret", b"internal")
    async with aiohttp.ClientSession(connector=guarded_connector(FetchSettings())) as session:
        fetcher = Fetcher(FetchSettings(), session=session)
        with pytest.raises(BlockedURL, match=rf"http://localhost:{server.port}/secret: localhost resolves only to non-public addresses"):
            await fetcher.get(f"http://localhost:{server.port}/secret")
        await fetcher.close()
        assert not session.closed  # the caller's session stays the caller's
    assert server.requests["/secret"] == 0


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "file:///etc/passwd", "gopher://x/"])
async def test_only_http_and_https_are_fetched(fetcher, url):
    with pytest.raises(BlockedURL, match=r"only http and https"):
        await fetcher.get(url)


async def test_connection_refused_is_transient(fetcher):
    server = LoopbackServer()
    async with server:
        port = server.port
    with pytest.raises(TransientError, match=rf"127.0.0.1:{port}/gone"):
        await fetcher.get(f"http://127.0.0.1:{port}/gone")


async def test_never_more_than_per_host_requests_in_flight(server):
    server.route("/slow", RSS, delay=0.1)
    async with Fetcher(settings(per_host=3)) as fetcher:
        await asyncio.gather(*(fetcher.get(server.url("/slow")) for _ in range(12)))
        assert fetcher.peak_per_host == {f"127.0.0.1:{server.port}": 3}
    assert server.requests["/slow"] == 12
    assert server.peak_in_flight == 3  # measured by the server: the limit held and was used



async def test_time_queued_behind_the_host_limit_does_not_count_against_the_deadline(server):
    server.route("/slowish", RSS, delay=0.4)
    async with Fetcher(settings(per_host=1, timeout=1.0)) as fetcher:  # the last one waits 1.2 s for its turn
        pages = await asyncio.gather(*(fetcher.get(server.url("/slowish")) for _ in range(4)))
    assert [p.status for p in pages] == [200] * 4
    assert server.peak_in_flight == 1

# ---------------------------------------------------------------------------------------------- directory sources
@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "news"
    (root / "sub").mkdir(parents=True)
    for name in ("b.md", "a_first.txt", "c.html", "skip.pdf", ".hidden.txt", "sub/d.txt"):
        (root / name).write_text(f"text of {name}")
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    (root / "escape.txt").symlink_to(outside)
    (root / "inside-link.txt").symlink_to(root / "b.md")
    return root


def test_directory_scan_lists_matching_files_sorted_and_refuses_symlinks_out(tree):
    entries = scan_directory(Feed(id="seeds", url=tree.as_uri(), kind="directory", name="Seeds"))
    assert [e.entry_id for e in entries] == ["a_first.txt", "b.md", "c.html", "inside-link.txt", "sub/d.txt"]
    assert entries[0].url == (tree / "a_first.txt").as_uri()
    assert (entries[0].title, entries[0].source, entries[0].feed_id) == ("a first", "Seeds", "seeds")
    assert entries[0].published is None  # a file's mtime is when it was copied, not published


def test_directory_scan_of_a_missing_directory_names_it(tmp_path):
    with pytest.raises(PermanentError, match=r"directory source d: .*/nowhere"):
        scan_directory(Feed(id="d", url=(tmp_path / "nowhere").as_uri(), kind="directory"))


def test_read_local_returns_files_inside_the_roots_only(tree, tmp_path):
    page = read_local((tree / "sub" / "d.txt").as_uri(), roots=[tree], max_bytes=1000)
    assert (page.body, page.content_type, page.status) == (b"text of sub/d.txt", "text/plain", 200)
    with pytest.raises(BlockedURL, match=r"escape.txt: outside the allowed directories"):
        read_local((tree / "escape.txt").as_uri(), roots=[tree], max_bytes=1000)
    with pytest.raises(BlockedURL):
        read_local("file:///etc/passwd", roots=[tree], max_bytes=1000)
    with pytest.raises(PermanentError, match=r"missing.txt: No such file"):
        read_local((tree / "missing.txt").as_uri(), roots=[tree], max_bytes=1000)
    with pytest.raises(PermanentError, match=r"c.html: larger than the cap of 5 bytes"):
        read_local((tree / "c.html").as_uri(), roots=[tree], max_bytes=5)


async def test_poll_feed_scans_a_directory_source(fetcher, pool):
    feed = Feed(id="seeds", url=SEEDS.as_uri(), kind="directory")
    result = await poll_feed(feed, etag=None, last_modified=None, fetcher=fetcher, pool=pool)
    assert len(result.entries) == len(list(SEEDS.glob("*.txt"))) > 0
    assert all(e.url.startswith("file:///") for e in result.entries)
