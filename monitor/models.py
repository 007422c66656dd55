"""The values that flow between stages: Feed, Entry, Page, Article, Match, Alert.

All are frozen; each turns into a JSON-safe dict and back, which is how they travel through Redis Streams.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

# the work streams between the stages (pipeline.py), each with the stage that consumes it
ENTRIES, ARTICLES = "entries", "articles"
WORK_STREAMS = {ENTRIES: "fetch", ARTICLES: "match"}


class _Serial:
    """JSON round trip for the frozen dataclasses below (tuples become lists and back)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            value = data[f.name]
            if isinstance(value, list) and str(f.type).startswith("tuple"):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            kwargs[f.name] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls: type[T], text: str | bytes) -> T:
        return cls.from_dict(json.loads(text))  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Feed(_Serial):
    """A source to poll. `kind` is "feed" (RSS/Atom/JSON Feed over HTTP) or "directory" (local files)."""

    id: str
    url: str
    name: str = ""
    kind: str = "feed"
    interval: float = 900.0
    tags: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    channels: tuple[str, ...] = ()
    robots: bool = True  # its pages are fetched only where robots.txt allows
    fetch_page: str = "auto"  # "auto": the feed's full text when it has it, else the page; "always"; "never"


@dataclass(frozen=True, slots=True)
class Entry(_Serial):
    """One item found in a feed (or one file of a directory source)."""

    feed_id: str
    url: str  # canonical URL: the dedup key
    link: str = ""  # the link as the feed gave it (resolved to absolute)
    entry_id: str = ""  # the feed's guid/id, if any
    title: str = ""
    summary: str = ""
    published: str | None = None  # ISO 8601, UTC
    source: str = ""  # human name of the feed / site
    content: str = ""  # the item's full text as the feed carries it (content:encoded, Atom content), plain text


@dataclass(frozen=True, slots=True)
class Page:
    """What a fetch returned. Not serialised: pages go straight into extraction."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    body: bytes = b""
    content_type: str = ""
    encoding: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


@dataclass(frozen=True, slots=True)
class Article(_Serial):
    """Extracted text and metadata of one page."""

    url: str  # canonical URL
    feed_id: str = ""
    title: str = ""
    text: str = ""
    author: str = ""
    published: str | None = None  # ISO 8601 date or datetime
    site_name: str = ""
    language: str = ""
    source: str = ""  # feed or site name shown in alerts
    country: str = ""  # the state the source speaks for (a government's own feed), from the source's `country:`
    fetched_at: str = ""
    fingerprint: str = ""  # exact-content fingerprint (set by dedup)
    story_id: str = ""  # story cluster id (set by dedup)
    text_from: str = "page"  # where the text came from: TEXT_FROM_PAGE, _CONTENT, _SUMMARY or _TITLE


# Article.text_from: the page, the feed's full text of the item, its summary, or only its headline
TEXT_FROM_PAGE, TEXT_FROM_CONTENT, TEXT_FROM_SUMMARY, TEXT_FROM_TITLE = "page", "feed content", "feed summary", \
    "feed title"


@dataclass(frozen=True, slots=True)
class Match(_Serial):
    """One rule firing on one article, with its evidence."""

    rule_id: str
    rule_title: str = ""
    severity: str = "info"
    channels: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()  # the matched terms as they appear in the text
    entities: dict[str, list[str]] = field(default_factory=dict)  # kind or role -> values (donors, systems, ...)
    snippet: str = ""  # one or two sentences of context, matched terms marked with **
    fields: dict[str, Any] = field(default_factory=dict)  # structured facts for templates and update diffs


@dataclass(frozen=True, slots=True)
class Alert(_Serial):
    """A match bound to a story, ready for the outbox."""

    id: str
    rule_id: str
    story_id: str
    article: dict[str, Any]  # Article.to_dict() of the first copy
    match: dict[str, Any]  # Match.to_dict()
    sources: tuple[tuple[str, str], ...] = ()  # (source name, url) of every copy known when rendered
    kind: str = "new"  # "new" | "update" | "digest"
    changes: dict[str, Any] = field(default_factory=dict)  # for updates: field -> [old, new]
    created_at: str = ""
