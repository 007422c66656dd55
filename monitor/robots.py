"""robots.txt for page fetches: one fetch per site, kept a day, read by protego for our user-agent token.

A page the site's robots.txt disallows is never requested (RobotsDisallowed); its Crawl-delay spaces our requests.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

from .errors import HostHeld, PermanentError, RetryAfter, TransientError
from .models import Page

log = logging.getLogger(__name__)

ROBOTS_TTL = 86400.0  # RFC 9309 2.4: a cached robots.txt should not be used for more than 24 hours
UNREACHABLE_TTL = 300.0  # robots.txt answered 5xx / timed out: pages of that site wait this long before we ask again
MAX_CRAWL_DELAY = 30.0  # seconds; a larger Crawl-delay is held to this (each waiting page holds a page slot)
MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 2.5: parse at least the first 500 KiB
MAX_SITES = 10_000  # sites whose robots.txt is kept in memory (least recently used go first)


class RobotsDisallowed(PermanentError):
    """The site's robots.txt disallows this URL for our user agent: the page is not fetched."""


class RobotsUnreachable(TransientError):
    """The site's robots.txt could not be read (5xx, 429, timeout): RFC 9309 says assume every page disallowed."""


@dataclass
class SiteRules:
    """What one site's robots.txt says to us, until `expires` (monotonic); `parser` None means everything allowed."""

    robots_url: str
    parser: Protego | None
    delay: float
    expires: float
    unreachable: str = ""  # why robots.txt could not be read; pages fail transiently until `expires`
    next_request: float = 0.0  # monotonic time before which no page request to the site starts (Crawl-delay)


def user_agent_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against: 'monitor' of 'monitor/0.1 (...)'."""
    match = re.match(r"[A-Za-z0-9_-]+", user_agent.strip())
    return match.group(0).lower() if match else "*"


def site_of(url: str) -> str:
    """scheme://host[:port] of `url`: robots.txt applies per scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}".lower()


class RobotsCache:
    """`await cache.check(url)` raises RobotsDisallowed / RobotsUnreachable, or waits for the site's crawl delay.

    `fetch(url)` gets robots.txt (the Fetcher, with its SSRF guard, caps and redirects). One fetch per site at a time:
    pages of a site whose robots.txt is being read wait for that one answer.
    """

    def __init__(self, fetch: Callable[[str], Awaitable[Page]], *, user_agent: str, ttl: float = ROBOTS_TTL,
                 max_sites: int = MAX_SITES) -> None:
        self._fetch = fetch
        self.token = user_agent_token(user_agent)
        self.ttl = ttl
        self.max_sites = max_sites
        self._sites: OrderedDict[str, SiteRules] = OrderedDict()
        self._reading: dict[str, asyncio.Future[SiteRules]] = {}
        self.fetches = 0  # robots.txt requests made (for tests and logs)

    async def check(self, url: str, *, where: str = "") -> None:
        """`where` names the URL in errors (redacted, with the redirect that led here)."""
        rules = await self.rules(site_of(url))
        where = where or url
        if rules.unreachable:
            raise RobotsUnreachable(f"{where}: robots.txt of the site could not be read ({rules.unreachable}); "
                                    f"its pages wait until it can be")
        if rules.parser is not None and not rules.parser.can_fetch(url, self.token):
            raise RobotsDisallowed(f"{where}: disallowed by robots.txt ({rules.robots_url}, user-agent "
                                   f"{self.token})")
        if rules.delay:
            await self._wait_turn(rules)

    async def _wait_turn(self, rules: SiteRules) -> None:
        """Page requests to one site start at least its crawl delay apart (this instance's requests)."""
        now = time.monotonic()
        start = max(now, rules.next_request)
        rules.next_request = start + rules.delay
        if start > now:
            await asyncio.sleep(start - now)

    async def rules(self, site: str) -> SiteRules:
        cached = self._sites.get(site)
        if cached is not None and cached.expires > time.monotonic():
            self._sites.move_to_end(site)
            return cached
        reading = self._reading.get(site)
        if reading is None:
            reading = self._reading[site] = asyncio.ensure_future(self._read(site, cached))
            reading.add_done_callback(lambda _: self._reading.pop(site, None))
        return await asyncio.shield(reading)  # one waiter cancelled must not cancel the others' answer

    async def _read(self, site: str, previous: SiteRules | None) -> SiteRules:
        robots_url = site + "/robots.txt"
        self.fetches += 1
        now = time.monotonic()
        try:
            page = await self._fetch(robots_url)
        except HostHeld:  # not asked at all: the site holds every request back; nothing learnt, nothing cached
            raise
        except RetryAfter as exc:
            rules = SiteRules(robots_url, None, 0.0, now + min(max(exc.delay, UNREACHABLE_TTL), self.ttl),
                              unreachable=str(exc))
        except TransientError as exc:
            rules = SiteRules(robots_url, None, 0.0, now + UNREACHABLE_TTL, unreachable=str(exc))
        except PermanentError as exc:  # 4xx (none there), too large, refused: RFC 9309 2.3.1.3, everything allowed
            log.debug("robots.txt %s unavailable (%s): every page allowed", robots_url, exc)
            rules = SiteRules(robots_url, None, 0.0, now + self.ttl)
        else:
            rules = self._parse(robots_url, page.body, now)
        if previous is not None:
            rules.next_request = previous.next_request
        self._sites[site] = rules
        self._sites.move_to_end(site)
        while len(self._sites) > self.max_sites:
            self._sites.popitem(last=False)
        return rules

    def _parse(self, robots_url: str, body: bytes, now: float) -> SiteRules:
        parser = Protego.parse(body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace"))
        delay = parser.crawl_delay(self.token) or 0.0
        rate = parser.request_rate(self.token)
        if rate is not None and rate.requests > 0:
            delay = max(delay, rate.seconds / rate.requests)
        if delay > MAX_CRAWL_DELAY:
            log.info("robots.txt %s asks for %.0f s between requests; holding it to %.0f s", robots_url, delay,
                     MAX_CRAWL_DELAY)
        log.debug("robots.txt %s read (crawl delay %.1f s for %s)", robots_url, delay, self.token)
        return SiteRules(robots_url, parser, min(delay, MAX_CRAWL_DELAY), now + self.ttl)
