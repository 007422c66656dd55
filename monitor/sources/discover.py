"""Find a site's feeds from one of its pages: `<link rel="alternate">` to RSS, Atom or JSON Feed (relative hrefs
resolved against the page and its <base>), or the URL itself when it already is a feed. `monitor feeds add` uses it.

Every request goes through the project's Fetcher (SSRF guard, size caps, timeouts); each candidate is fetched and
parsed, so only what really is a feed is offered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree

from ..errors import MonitorError, PermanentError
from ..net import Fetcher
from ..redact import redact_url
from .feed import FEED_ACCEPT, parse_feed

# The link types that name a feed. Plain application/json is not one: WordPress links its REST API with it.
FEED_LINK_TYPES = {
    "application/rss+xml": "RSS", "application/x-rss+xml": "RSS", "application/rdf+xml": "RSS 1.0",
    "application/atom+xml": "Atom", "application/feed+json": "JSON Feed",
}
HTML_TYPES = ("text/html", "application/xhtml+xml")
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, " + FEED_ACCEPT
MAX_CANDIDATES = 10  # a page listing more feeds than this is offered its first ten


@dataclass(frozen=True, slots=True)
class FoundFeed:
    url: str
    title: str  # the link's title, else the feed's own
    kind: str  # RSS, Atom, JSON Feed, RSS 1.0, or "feed" when the URL itself is one


@dataclass(frozen=True, slots=True)
class Discovery:
    feeds: tuple[FoundFeed, ...]
    rejected: tuple[str, ...] = ()  # "URL: why" for each linked candidate that is not a readable feed


def feed_links(body: bytes, *, page_url: str, encoding: str | None = None) -> list[FoundFeed]:
    """The feeds a page's <link rel="alternate" type=...> elements name, in page order, absolute, de-duplicated."""
    try:
        parser = lxml.html.HTMLParser(encoding=encoding) if encoding else None
        doc = lxml.html.document_fromstring(body, parser=parser)
    except (etree.ParserError, ValueError, LookupError):
        return []
    base = page_url
    for href in doc.xpath("//base/@href")[:1]:
        base = urljoin(page_url, href.strip())
    found: dict[str, FoundFeed] = {}
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = FEED_LINK_TYPES.get((link.get("type") or "").split(";")[0].strip().lower())
        href = (link.get("href") or "").strip()
        if "alternate" not in rel or kind is None or not href:
            continue
        url = urljoin(base, href)
        if urlsplit(url).scheme in ("http", "https") and url not in found:
            found[url] = FoundFeed(url=url, title=" ".join((link.get("title") or "").split()), kind=kind)
    return list(found.values())[:MAX_CANDIDATES]


async def discover(url: str, fetcher: Fetcher) -> Discovery:
    """The feeds at `url`: itself if it is a feed, else the readable feeds its page links to.

    Raises the fetch's error when the page itself cannot be had (BlockedURL names the setting that allows
    private addresses).
    """
    page = await fetcher.get(url, accept=PAGE_ACCEPT)
    candidates = feed_links(page.body, page_url=page.final_url, encoding=page.encoding)
    if page.content_type not in HTML_TYPES or not candidates:  # some servers label their feed text/html
        title = await _feed_title(page.body, page.final_url, page.content_type)
        if title is not None:
            return Discovery(feeds=(FoundFeed(url=url, title=title, kind="feed"),))
    checked = await asyncio.gather(*(_check(c, fetcher) for c in candidates))
    return Discovery(feeds=tuple(f for f, _ in checked if f is not None),
                     rejected=tuple(why for _, why in checked if why))


async def _check(candidate: FoundFeed, fetcher: Fetcher) -> tuple[FoundFeed | None, str]:
    try:
        page = await fetcher.get(candidate.url, accept=FEED_ACCEPT)
    except MonitorError as exc:
        return None, str(exc)
    title = await _feed_title(page.body, page.final_url, page.content_type)
    if title is None:
        return None, f"{redact_url(candidate.url)}: linked as {candidate.kind} but not a feed"
    return FoundFeed(url=candidate.url, title=candidate.title or title, kind=candidate.kind), ""


async def _feed_title(body: bytes, url: str, content_type: str) -> str | None:
    """The feed's title ('' if it has none) when the bytes are a feed, else None. Parsed in a thread: one
    document, in a command, like `rules explain` does."""
    try:
        parsed = await asyncio.to_thread(parse_feed, body, feed_id="discover", url=url, content_type=content_type)
    except PermanentError:
        return None
    return parsed.title if parsed.version or parsed.entries else None
