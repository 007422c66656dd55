"""Safe HTTP fetching: http(s) only, SSRF guard on every hop, caps on time, size and redirects, per-host politeness.

The only module that opens outside sockets; every failure is a TransientError or PermanentError naming the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .errors import BlockedURL, HostHeld, MonitorError, PermanentError, RetryAfter, TransientError
from .models import Page
from .redact import redact_url
from .robots import RobotsCache
from .settings import FetchSettings

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_RETRY_AFTER = 7 * 86400.0  # a server asking for more than a week is treated as asking for a week
HOLD_429 = 60.0  # seconds a 429 without (a readable) Retry-After holds its host back
ALLOW_PRIVATE_HINT = "fetch.allow_private_addresses: true allows it"


# Ranges that Python's ipaddress (3.11) still calls global, but that no public web server lives in.
_NOT_PUBLIC_V6 = tuple((ipaddress.ip_network(net), why) for net, why in (
    ("fec0::/10", "a site-local address"),  # deprecated, still routed inside some networks
    ("64:ff9b:1::/48", "a local-use NAT64 address"),  # RFC 8215: the prefix length is the operator's choice
    ("5f00::/16", "an SRv6 segment identifier"),  # RFC 9602
    ("3fff::/20", "a documentation address"),  # RFC 9637
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052): the last 32 bits are the v4 host
_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible ::a.b.c.d (RFC 4291 2.5.5.1)
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT ::ffff:0:a.b.c.d (RFC 2765)
_ISATAP_IID = 0x00005EFE  # interface id 0?00:5efe:a.b.c.d (RFC 5214), with the u/g bits masked out


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """Every IPv4 address that `ip` carries, with the name of the embedding: traffic to it can reach that host."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip.ipv4_mapped is not None:
        found.append(("IPv4-mapped", ip.ipv4_mapped))
    elif ip in _V4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are themselves unspecified / loopback
        found.append(("IPv4-compatible", low32))
    elif ip in _V4_TRANSLATED:
        found.append(("IPv4-translated", low32))
    if ip in _NAT64:
        found.append(("NAT64", low32))
    if ip.sixtofour is not None:
        found.append(("6to4", ip.sixtofour))
    if ip.teredo is not None:  # (server, client); ipaddress undoes the client's bit inversion
        found.extend([("Teredo server", ip.teredo[0]), ("Teredo client", ip.teredo[1])])
    if (int(ip) >> 32) & 0xFCFFFFFF == _ISATAP_IID:
        found.append(("ISATAP", low32))
    return found


def _range_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why the address itself (not what it embeds) is not public unicast; None if it is."""
    if ip.is_unspecified or (ip.version == 4 and int(ip) >> 24 == 0):  # 0.0.0.0/8 reaches this host on Linux
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    for net, why in _NOT_PUBLIC_V6 if ip.version == 6 else ():
        if ip in net:
            return why
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a reserved address"
    return None


def address_problem(address: str) -> str | None:
    """Why `address` is not a public unicast address (None if it is); sees through IPv4 embedded in IPv6."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        for kind, v4 in embedded_ipv4(ip):
            problem = _range_problem(v4)
            if problem is not None:
                return f"the {kind} form of {v4}, {problem}"
    return _range_problem(ip)


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; False for private, loopback, link-local, reserved, multicast,
    and for every IPv6 form that embeds such an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo, ISATAP)."""
    return address_problem(address) is None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (aiohttp's default resolver if None), then drops non-public addresses: the SSRF guard
    for host names, applied to the answers the connection is then made to (so DNS rebinding meets it too)."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if is_public_address(r["host"])]
        if not allowed:
            problems = sorted({f"{r['host']}: {address_problem(r['host'])}" for r in results})
            raise BlockedURL(f"{host.rstrip('.')} resolves only to non-public addresses ({'; '.join(problems)}); "
                             f"{ALLOW_PRIVATE_HINT}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def guarded_connector(settings: FetchSettings, *, resolver: AbstractResolver | None = None) -> aiohttp.TCPConnector:
    """A connector with the connection limits and, unless private addresses are allowed, the SSRF resolver.

    `resolver` answers the DNS questions (aiohttp's default if None); the guard filters whatever it answers.
    """
    return aiohttp.TCPConnector(
        limit=settings.total_connections, limit_per_host=settings.per_host, ttl_dns_cache=300,
        resolver=resolver if settings.allow_private_addresses else GuardedResolver(resolver))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    delay = when.timestamp() - (time.time() if now is None else now)
    return min(max(delay, 0.0), MAX_RETRY_AFTER)


class SharedLimits(Protocol):
    """The per-host limit and Retry-After holds shared by every instance (hosts.SharedHosts)."""

    async def acquire(self, host: str) -> tuple[str | None, float]: ...
    async def release(self, host: str, token: str) -> None: ...
    async def hold(self, host: str, seconds: float) -> float: ...


class Fetcher:
    """`await fetcher.get(url)` returns a Page or raises TransientError / RetryAfter / PermanentError / BlockedURL.

    An injected session is used as given: IP literals are still refused, but host names resolve through the
    session's own connector, so build it with `guarded_connector(settings)` to keep the SSRF guard.
    `shared` (hosts.SharedHosts) makes `per_host` and Retry-After holds count across instances; without it they
    hold within this Fetcher only.
    """

    def __init__(self, settings: FetchSettings, *, session: aiohttp.ClientSession | None = None,
                 shared: SharedLimits | None = None) -> None:
        self.settings = settings
        self._session = session
        self._own_session = session is None
        self.shared = shared
        self._holds: dict[str, float] = {}  # host -> time.time() before which no request to it starts
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[str, int] = {}
        self.peak_per_host: dict[str, int] = {}
        self.robots = RobotsCache(self._get_robots_txt, user_agent=settings.user_agent)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: a session must be made inside the running loop
            s = self.settings
            self._session = aiohttp.ClientSession(
                connector=guarded_connector(s),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout, sock_read=s.timeout),
                headers={"User-Agent": s.user_agent},
                cookie_jar=aiohttp.DummyCookieJar(),  # feeds are polled anonymously; no state between polls
                trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> "Fetcher":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
                  headers: Mapping[str, str] | None = None, accept: str | None = None, robots: bool = False) -> Page:
        """Fetch `url`, following up to max_redirects redirects, all within one total deadline.

        `robots`: every hop must be allowed by its site's robots.txt (RobotsDisallowed otherwise, before any request
        for the page) and waits for the site's crawl delay. Pages are fetched so; feeds, made to be polled, are not.
        """
        conditional: dict[str, str] = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        if accept:
            conditional["Accept"] = accept
        return await self._follow(url, dict(headers or {}), conditional, robots=robots)

    async def _get_robots_txt(self, url: str) -> Page:
        return await self._follow(url, {}, {"Accept": "text/plain, */*;q=0.5"}, robots=False)

    async def _follow(self, url: str, extra: dict[str, str], conditional: dict[str, str], *,
                      robots: bool = False) -> Page:
        current = url
        origin = _origin(url)
        budget = self.settings.timeout  # one deadline for all hops; time spent queueing for a host is not counted
        for _hop in range(self.settings.max_redirects + 1):
            host = self._check_url(url, current)
            self._check_hold(host, url, current)
            if robots:  # waiting for robots.txt or the crawl delay is not counted either
                await self.robots.check(current, where=_where(url, current))
            # the feed's own headers (perhaps credentials) go only to the feed's origin
            sent = {**(extra if _origin(current) == origin else {}), **conditional}
            async with self._gate(host, url, current):
                started = time.monotonic()
                try:
                    async with asyncio.timeout(max(budget, 0.001)):
                        result = await self._fetch_once(url, current, sent)
                except TimeoutError as exc:
                    raise TransientError(f"{redact_url(url)}: no complete response within "
                                         f"{self.settings.timeout:g}s") from exc
                except RetryAfter as exc:
                    await self._hold(host, exc.delay)
                    raise
                budget -= time.monotonic() - started
            if isinstance(result, Page):
                return result
            log.debug("redirect %s -> %s", redact_url(current), redact_url(result))
            current = result
        raise PermanentError(f"{redact_url(url)}: more than {self.settings.max_redirects} redirects")

    def _check_url(self, url: str, current: str) -> str:
        """The host key of `current`; BlockedURL for another scheme or a non-public IP literal."""
        where = _where(url, current)
        try:
            parts = urlsplit(current)
            port = parts.port
        except ValueError as exc:
            raise PermanentError(f"{where}: invalid URL: {exc}") from exc
        if parts.scheme not in ("http", "https"):
            raise BlockedURL(f"{where}: scheme {parts.scheme or '(none)'!r} not allowed, only http and https")
        host = parts.hostname or ""
        if not host:
            raise PermanentError(f"{where}: URL has no host")
        if not self.settings.allow_private_addresses and _is_ip_literal(host):
            problem = address_problem(host)
            if problem is not None:
                raise BlockedURL(f"{where}: address {host} is not public ({problem}); {ALLOW_PRIVATE_HINT}")
        return f"{host}:{port}" if port else host

    def _check_hold(self, host: str, url: str, current: str) -> None:
        """HostHeld (no request made) while a Retry-After or 429 of `host` is in force."""
        until = self._holds.get(host)
        if until is None:
            return
        left = until - time.time()
        if left <= 0:
            del self._holds[host]
            return
        raise HostHeld(f"{_where(url, current)}: not requested: {host} asked to wait (Retry-After or 429), "
                       f"{left:.0f}s left", left)

    async def _hold(self, host: str, delay: float) -> None:
        """Hold `host` back (this Fetcher, and every instance if shared) for `delay`, capped at max_retry_after."""
        delay = min(delay, self.settings.max_retry_after)
        if delay <= 0:
            return
        if self.shared is not None:
            delay = await self.shared.hold(host, delay)
        self._holds[host] = max(self._holds.get(host, 0.0), time.time() + delay)
        log.info("%s asked to wait: no request to it for %.0fs (Retry-After / 429, capped at "
                 "fetch.max_retry_after %gs)", host, delay, self.settings.max_retry_after)

    @contextlib.asynccontextmanager
    async def _gate(self, host: str, url: str, current: str) -> AsyncIterator[None]:
        """This Fetcher's per-host semaphore, then (if shared) a slot of the host's limit across instances."""
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = asyncio.Semaphore(self.settings.per_host)
        async with gate:
            token = await self._shared_slot(host, url, current)
            n = self._in_flight[host] = self._in_flight.get(host, 0) + 1
            self.peak_per_host[host] = max(self.peak_per_host.get(host, 0), n)
            try:
                yield
            finally:
                self._in_flight[host] -= 1
                if not self._in_flight[host]:  # forget idle hosts so months of new hosts do not pile up
                    del self._in_flight[host]
                    if not gate.locked() and self._gates.get(host) is gate:
                        del self._gates[host]
                if token is not None and self.shared is not None:
                    await self.shared.release(host, token)

    async def _shared_slot(self, host: str, url: str, current: str) -> str | None:
        """A slot of the shared per-host limit (None without one); HostHeld if another instance saw a hold."""
        if self.shared is None:
            return None
        token, held = await self.shared.acquire(host)
        if held > 0:
            self._holds[host] = max(self._holds.get(host, 0.0), time.time() + held)
            raise HostHeld(f"{_where(url, current)}: not requested: {host} asked to wait (Retry-After or 429), "
                           f"{held:.0f}s left", held)
        return token

    async def _fetch_once(self, url: str, current: str, headers: dict[str, str]) -> Page | str:
        """One request: a Page, or the absolute URL of the next redirect hop."""
        where = redact_url(current)
        try:
            async with self._get_session().get(current, headers=headers, allow_redirects=False) as resp:
                if resp.status in REDIRECT_STATUSES:
                    location = resp.headers.get("Location")
                    if not location:
                        raise PermanentError(f"{where}: HTTP {resp.status} redirect without Location")
                    return urljoin(current, location)
                if resp.status == 304:
                    return _page(url, current, resp, b"", not_modified=True)
                _raise_for_status(where, resp)
                body = await self._read_capped(where, resp)
                return _page(url, current, resp, body)
        except BlockedURL as exc:  # from the resolver, which does not know the URL
            raise BlockedURL(f"{where}: {exc}") from exc
        except MonitorError:
            raise
        except aiohttp.InvalidURL as exc:
            raise PermanentError(f"{where}: invalid URL: {exc}") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TransientError(f"{where}: TLS certificate rejected: {exc.certificate_error}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise TransientError(f"{where}: {type(exc).__name__}: {exc or 'no detail'}") from exc

    async def _read_capped(self, where: str, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.settings.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise PermanentError(f"{where}: body of {resp.content_length} bytes exceeds the cap of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):  # decompressed chunks: counts what a gzip bomb expands to
            size += len(chunk)
            if size > limit:
                raise PermanentError(f"{where}: body exceeds the cap of {limit} bytes (decompressed)")
            chunks.append(chunk)
        return b"".join(chunks)


def _where(url: str, current: str) -> str:
    """The URL asked for, and the hop it got to, for messages (secrets masked)."""
    return redact_url(url) if url == current else f"{redact_url(url)} (redirected to {redact_url(current)})"


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname or "", parts.port
    except ValueError:
        return "", "", None


def _raise_for_status(where: str, resp: aiohttp.ClientResponse) -> None:
    status = resp.status
    if 200 <= status < 300:
        return
    reason = f"{where}: HTTP {status} {resp.reason or ''}".rstrip()
    if status in (429, 503):
        delay = parse_retry_after(resp.headers.get("Retry-After"))
        if delay is not None:
            raise RetryAfter(f"{reason} (retry after {delay:.0f}s)", delay)
        if status == 429:  # too many requests, without saying how long to wait: HOLD_429
            raise RetryAfter(f"{reason} (no Retry-After: waiting {HOLD_429:.0f}s)", HOLD_429)
    if status in (408, 429) or status >= 500:
        raise TransientError(reason)
    raise PermanentError(reason)


def _page(url: str, current: str, resp: aiohttp.ClientResponse, body: bytes, *, not_modified: bool = False) -> Page:
    headers: Any = resp.headers
    return Page(url=url, final_url=current, status=resp.status, body=body,
                content_type=resp.content_type if "Content-Type" in headers else "",
                encoding=resp.charset, etag=headers.get("ETag"), last_modified=headers.get("Last-Modified"),
                not_modified=not_modified)
