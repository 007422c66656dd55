"""Feed sources: fetch an RSS/Atom/JSON Feed conditionally, parse the bytes in a worker process, map items to Entry.

`parse_feed` is pure (bytes in, ParsedFeed out) and top-level, so the WorkerPool can run it with a deadline.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import hashlib
import json
import logging
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..dedup import DEFAULT_TRACKING_PARAMS, canonical_url
from ..errors import PermanentError
from ..models import Entry, Feed
from ..net import Fetcher
from ..redact import redact_url
from ..workers import PRIORITY_FEED, WorkerCrashed, WorkerOutOfMemory, WorkerPool, WorkerTimeout
from .fastfeed import parse_fast

log = logging.getLogger(__name__)

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
               "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5")
MAX_DECOMPRESSED = 20_000_000  # cap for feeds stored gzip-compressed without Content-Encoding
# Caps (characters) on what one entry may carry into the entries stream, whatever the feed holds; a field of Entry
# not named here gets ENTRY_FIELD_MAX. A link longer than MAX_URL is not cut (that would be another URL): skipped.
ENTRY_FIELD_CAPS = {"title": 1000, "summary": 2000, "entry_id": 1000, "source": 300, "content": 50_000}
ENTRY_FIELD_MAX = 2000
MAX_URL = 4096
FEED_TITLE_MAX = 300
_RAW_TEXT_FACTOR = 8  # markup is stripped from at most cap x this many characters of a raw value

# The DOCTYPE with its internal subset: quoted strings and comments may hold ']' or '>'. No nested quantifiers.
_DOCTYPE = re.compile(rb"""<!DOCTYPE(?:[^\[>"']|"[^"]*"|'[^']*')*"""
                      rb"""(?:\[(?:[^\]"'<]|"[^"]*"|'[^']*'|<!--.*?-->|<(?!!--))*\])?\s*>""", re.IGNORECASE | re.DOTALL)
# What may stand before the DOCTYPE in a prolog (whitespace, processing instructions, comments), skipped whole so that
# a '<' or a DOCTYPE-looking string inside a comment is never taken for markup.
_PROLOG_SKIP = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_DOCTYPE_START = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
# An internal general entity declaration of a DOCTYPE's subset (not %-parametric, not SYSTEM/PUBLIC), by its name as
# feedparser accepts it; comments in the subset are removed before looking.
_ENTITY_DECL = re.compile(rb"""<!ENTITY\s+(\w+)\s+(?:"([^"]*)"|'([^']*)')\s*>""")
_SUBSET_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_CHAR_REF = re.compile(rb"&#(?:[0-9]{1,7}|x[0-9A-Fa-f]{1,6});")
_PREDEFINED_ENTITIES = {b"amp", b"lt", b"gt", b"quot", b"apos"}
ENTITY_MAX_CHARS = 1000  # a longer entity stays unexpanded (with its references, the feed is then ill-formed)
MAX_ENTITIES = 100
ENTITY_EXPANSION_MAX = 1_000_000  # bytes all references of the kept entities may add to a document
_XML_DECL = re.compile(rb"^<\?xml[^>]*>\s*")
_XML_DECL_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)(["'])[^"']*\2""")
_UTF16_32 = (  # (prefix, codec): BOMs first, then the byte patterns of '<?' without a BOM
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"), (b"<\x00?\x00", "utf-16-le"),
)

_SPACE = re.compile(r"\s+")
# feedparser's types (title_detail.type, summary_detail.type, content[].type) of values that hold markup
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
_SKIPPED_TAGS = frozenset({"script", "style", "template"})


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What one feed document held. `skipped` counts items without any usable http(s) link."""

    title: str
    entries: tuple[Entry, ...]
    bozo: bool
    bozo_reason: str
    version: str
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class PollResult:
    """One poll: nothing new (304), or the entries of the current document plus the validators to store."""

    not_modified: bool
    entries: tuple[Entry, ...]
    etag: str | None
    last_modified: str | None
    bozo_reason: str
    title: str
    skipped: int = 0


# ---------------------------------------------------------------------------------------------- byte preparation
def gunzip_body(body: bytes, *, url: str, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Decompress a body that is itself a gzip file (served without Content-Encoding), bounded by `limit`."""
    if not body.startswith(b"\x1f\x8b"):
        return body
    inflater = zlib.decompressobj(wbits=47)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _not_a_feed(url, f"corrupt gzip data ({exc})") from exc
    if len(out) > limit:
        raise _not_a_feed(url, f"gzip body expands beyond {limit} bytes")
    return out


def to_ascii_compatible(body: bytes) -> tuple[bytes, bool]:
    """UTF-16/32 documents (a BOM, or the NUL pattern of '<?') re-encoded as UTF-8, declaration updated.

    The flag says whether the body was re-encoded: its bytes said the encoding, so a charset from the HTTP header no
    longer applies (feedparser alone would believe the header and read NULs).
    """
    for prefix, codec in _UTF16_32:
        if body.startswith(prefix):
            text = body.decode(codec, errors="replace").lstrip("\ufeff")
            text = _XML_DECL_ENCODING.sub(r"\1\2utf-8\2", text, count=1)
            return text.encode("utf-8"), True
    return body, False


def to_utf8(body: bytes, content_type: str) -> tuple[bytes, bool, Any]:
    """The document decoded as feedparser itself would (BOM, XML declaration, HTTP charset by RFC 3023, fallbacks)
    and re-encoded as UTF-8 with an `encoding='utf-8'` declaration, whatever it was in: UTF-16/32, EBCDIC, UTF-7...

    Every check on the bytes after this (the DOCTYPE) sees what the XML parser will see. Returns the bytes, whether a
    declaration line was added, and feedparser's note on the encoding (bozo exception or None).
    """
    from feedparser.encodings import convert_to_utf8  # imported in the worker only

    note: dict[str, Any] = {}
    data = convert_to_utf8({"content-type": content_type}, body, note)
    if not note.get("encoding"):
        raise PermanentError(f"document encoding unknown ({note.get('bozo_exception')})")
    head = body.removeprefix(codecs.BOM_UTF8)[:64].decode(note["encoding"], errors="ignore")  # as feedparser does
    return data, not head.startswith("<?xml"), note.get("bozo_exception")


def strip_doctype(body: bytes) -> bytes:
    """Remove every DOCTYPE (and its internal subset) from the prolog: entity expansion can blow up memory and time.

    The prolog is read item by item (whitespace, processing instructions, comments); the first thing that is none of
    these nor a DOCTYPE ends it: the root element, or something the XML parser stops at before reading any DTD.
    """
    return _split_doctypes(body)[0]


def _split_doctypes(body: bytes) -> tuple[bytes, list[bytes], int]:
    """The body without its DOCTYPEs (their newlines kept, so parser errors still point at the right line), the
    DOCTYPEs removed, and where the first one was (-1: none)."""
    kept: list[bytes] = []
    removed: list[bytes] = []
    pos = done = 0
    first = -1
    while True:
        skip = _PROLOG_SKIP.match(body, pos)
        if skip is not None:
            pos = skip.end()
            continue
        if not _DOCTYPE_START.match(body, pos):
            return (b"".join(kept) + body[done:] if kept else body), removed, first
        match = _DOCTYPE.match(body, pos)
        end = match.end() if match else (body.find(b">", pos) + 1 or len(body))
        first = pos if first < 0 else first
        kept += [body[done:pos], b"\n" * body.count(b"\n", pos, end)]
        removed.append(body[pos:end])
        pos = done = end


def safe_entities(doctypes: list[bytes], body: bytes) -> dict[bytes, bytes]:
    """The internal general entities of the DOCTYPEs that are safe to expand in `body`: plain text (no reference but
    at most one character reference, no markup), at most ENTITY_MAX_CHARS each, at most MAX_ENTITIES of them, and
    all their references in the document together expanding to at most ENTITY_EXPANSION_MAX bytes. Nothing nests,
    nothing external (SYSTEM, PUBLIC) or parametric (%) is kept: the bombs of nested or huge entities stay inert.
    """
    found: dict[bytes, bytes] = {}
    for doctype in doctypes:
        for name, double, single in _ENTITY_DECL.findall(_SUBSET_COMMENT.sub(b"", doctype)):
            value = double or single
            if name not in found and name not in _PREDEFINED_ENTITIES:  # the first declaration binds (XML 4.2)
                found[name] = value
    safe: dict[bytes, bytes] = {}
    budget = ENTITY_EXPANSION_MAX
    for name, value in found.items():
        if len(safe) == MAX_ENTITIES or len(value) > ENTITY_MAX_CHARS or not _is_plain_entity_value(value):
            continue
        cost = body.count(b"&" + name + b";") * len(value)
        if cost <= budget:
            budget -= cost
            safe[name] = value
    return safe


def _is_plain_entity_value(value: bytes) -> bool:
    if _CHAR_REF.fullmatch(value):
        ref = value[2:-1].lower()
        code = int(ref[1:], 16) if ref.startswith(b"x") else int(ref)
        # '&' or '<' would be parsed again as markup where the entity is used
        return code <= 0x10FFFF and code not in (0x26, 0x3C)
    return not any(c in value for c in b"&<%\"\r\n")


def safe_doctype(body: bytes) -> tuple[bytes, int]:
    """`body` with every DOCTYPE replaced by one that declares only its safe entities (safe_entities), so a guid
    such as `&id;2006-05-04:/blog/` reads as its author meant; and the lines that adds before the root element.

    The new DOCTYPE is written as feedparser writes the one it keeps (its own replace_doctype leaves it as is) and
    on a line of its own, where feedparser looks for it.
    """
    stripped, doctypes, first = _split_doctypes(body)
    entities = safe_entities(doctypes, stripped) if doctypes else {}
    if not entities:
        return stripped, 0
    declared = b"".join(b'<!ENTITY %s "%s">\n' % item for item in entities.items())
    # white space before it moves after it: feedparser's pattern would take blank lines before it along
    start = len(stripped[:first].rstrip())
    doctype = (b"\n" if start else b"") + b"<!DOCTYPE feed [\n" + declared + b"]>"
    return stripped[:start] + doctype + stripped[start:], doctype.count(b"\n")


# ---------------------------------------------------------------------------------------------- small converters
def _not_a_feed(url: str, reason: str) -> PermanentError:
    return PermanentError(f"{redact_url(url)}: not a feed: {reason}")


class _HTMLText(HTMLParser):
    """The text of an HTML fragment: every tag becomes a space (so "by<a>user</a>to" keeps its words apart), script
    and style are skipped, character references decoded once, and a '<' that opens no tag ("rates < 2%") is text,
    as browsers read it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skipping += tag in _SKIPPED_TAGS
        self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """The text of an HTML or XHTML fragment (see _HTMLText)."""
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def _text(value: Any, limit: int, *, html: bool = False) -> str:
    """A title or summary as plain text, at most `limit` characters, white space collapsed.

    Only a value that is HTML (`html`, from feedparser's type of it) loses its tags and has its references decoded;
    plain text stays exactly as written: feedparser has already decoded the XML, and "History of the <blink> tag" or
    "AT&amp;T" in a plain-text title are what the publisher wrote.
    """
    if not value:
        return ""
    raw = str(value)[:limit * _RAW_TEXT_FACTOR]  # the markup pass costs more than linear time on hostile input
    return _SPACE.sub(" ", html_text(raw) if html else raw).strip()[:limit]


def _is_html(detail: Any) -> bool:
    return isinstance(detail, dict) and str(detail.get("type") or "").lower() in HTML_TYPES


def _summary_is_html(item: Any) -> bool:
    """Whether feedparser's `summary` of the item is HTML: its summary_detail says so, or, for a summary feedparser
    copied from the content (it keeps no detail then), that content's type does; HTML when nothing says."""
    if item.get("summary_detail"):
        return _is_html(item["summary_detail"])
    for content in item.get("content") or ():
        if content.get("value") == item.get("summary"):
            return _is_html(content)
    return True


def _iso_from_struct(value: Any) -> str | None:
    try:
        return datetime(*value[:6], tzinfo=timezone.utc).isoformat()
    except (TypeError, ValueError, OverflowError):
        return None


def _iso_from_text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def _http_url(link: str, base: str) -> str | None:
    """The absolute http(s) form of `link` resolved against `base`, or None."""
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        absolute = urljoin(base, link.strip())
        scheme = urlsplit(absolute).scheme.lower()
    except ValueError:
        return None
    return absolute if scheme in ("http", "https") else None


def _is_absolute_http(value: str) -> bool:
    return value.strip().lower().startswith(("http://", "https://"))


def _make_entry(*, feed_id: str, link: str | None, guid: str, base: str, title: str, summary: str,
                published: str | None, source: str, tracking: tuple[str, ...], content: str = "") -> Entry | None:
    """The Entry of one item, or None when it has no usable http(s) URL.

    The URL comes from the item's link; its id stands in only when it is itself an absolute http(s) URL (an RSS
    permalink guid without a link). A relative id ("12345") is a name, not a reference: it is never resolved.
    """
    absolute = _http_url(link or "", base) or (guid.strip() if _is_absolute_http(guid) else None)
    if absolute is None or len(absolute) > MAX_URL:
        return None
    try:
        url = canonical_url(absolute, tracking=tracking)
    except ValueError:  # e.g. a port number out of range
        return None
    entry = Entry(feed_id=feed_id, url=url, link=absolute, entry_id=guid, title=title, summary=summary,
                  published=published, source=source, content=content)
    return _capped(entry)


def _cap(name: str) -> int:
    return ENTRY_FIELD_CAPS.get(name, ENTRY_FIELD_MAX)


_CAPPED_FIELDS = tuple(f.name for f in dataclasses.fields(Entry) if f.name not in ("url", "link"))


def _capped(entry: Entry) -> Entry:
    """Every text field of the entry within its cap (url and link are checked against MAX_URL before)."""
    long = {}
    for name in _CAPPED_FIELDS:  # a loop over the names: dataclasses.fields per entry was a tenth of a feed's parse
        value = getattr(entry, name)
        if isinstance(value, str) and len(value) > _cap(name):
            long[name] = value[:_cap(name)]
    return dataclasses.replace(entry, **long) if long else entry


# A lone surrogate: json.loads makes one of a JSON Feed's "\ud800" (or of raw bytes ED A0 80: it decodes with
# surrogatepass), and no store or encoder takes it (the entry would fail at every try). XML feeds cannot hold one:
# their bytes are decoded with errors="replace" and a reference to one is U+FFFD's (replace_charrefs_to_no_char).
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_surrogates(fields: dict[str, Any]) -> dict[str, Any]:
    """A JSON object's string values with every lone surrogate as U+FFFD (the values an entry is made of)."""
    return {key: _SURROGATE.sub("\ufffd", value) if isinstance(value, str) and _SURROGATE.search(value) else value
            for key, value in fields.items()}


def _unique(entries: list[Entry]) -> tuple[Entry, ...]:
    """One entry per item of the document, in document order.

    Entries with the same URL are one item (listed twice, or with different tracking parameters) unless their guids
    differ: podcast episodes on one show page, posts of one day page whose links lack the anchor. Those stay apart,
    each keyed by its URL with `guid-<hash of its guid>` in the fragment (see docs/decisions.md, entry keys).
    """
    guids: dict[str, list[str]] = {}
    for entry in entries:
        known = guids.setdefault(entry.url, [])
        if entry.entry_id and entry.entry_id not in known:
            known.append(entry.entry_id)
    kept, taken = [], set()
    for entry in entries:
        shared = len(guids[entry.url]) > 1
        key = (entry.url, entry.entry_id if shared else "")
        if key in taken or (shared and not entry.entry_id):  # a repeat, or an entry without guid among distinct ones
            continue
        taken.add(key)
        kept.append(dataclasses.replace(entry, url=guid_keyed(entry.url, entry.entry_id)) if shared else entry)
    return tuple(kept)


def guid_keyed(url: str, guid: str) -> str:
    """`url` with `guid-<12 hex digits of the guid's hash>` added to its fragment: the key of one of several items
    sharing a URL. The fragment is not sent when the page is fetched, and canonical_url keeps it."""
    base, _, fragment = url.partition("#")
    digest = hashlib.blake2b(guid.encode("utf-8"), digest_size=6).hexdigest()
    return f"{base}#{fragment + ',' if fragment else ''}guid-{digest}"


# ---------------------------------------------------------------------------------------------- JSON Feed
def _looks_like_json(body: bytes, content_type: str) -> bool:
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") or ("json" in content_type.lower() and not head.startswith(b"<"))


def parse_json_feed(body: bytes, *, feed_id: str, url: str, source: str = "",
                    tracking: tuple[str, ...] = DEFAULT_TRACKING_PARAMS) -> ParsedFeed:
    """A JSON Feed (1.0/1.1) document; other JSON is 'not a feed'."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise _not_a_feed(url, f"JSON is not valid UTF-8/16/32 ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise _not_a_feed(url, f"JSON syntax error at line {exc.lineno}, column {exc.colno}: "
                             f"{exc.msg}") from exc
    except RecursionError as exc:
        raise _not_a_feed(url, "JSON nested too deeply") from exc
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise _not_a_feed(url, "JSON document without an 'items' list, not a JSON Feed")
    version = str(data.get("version") or "")
    version = "json11" if version.endswith("/1.1") else "json1" if version.endswith("/1") else "json"
    data = _no_surrogates(data)
    title = _text(data.get("title"), FEED_TITLE_MAX)
    base = _http_url(str(data.get("feed_url") or ""), url) or url
    entries, skipped = [], 0
    for item in data["items"]:
        if not isinstance(item, dict):
            skipped += 1
            continue
        item = _no_surrogates(item)
        entry = _make_entry(
            feed_id=feed_id, link=item.get("url") or item.get("external_url"), guid=str(item.get("id") or ""),
            base=base, title=_text(item.get("title"), _cap("title")), summary=_json_summary(item),
            published=_iso_from_text(item.get("date_published")) or _iso_from_text(item.get("date_modified")),
            source=title or source, tracking=tracking, content=_json_content(item))
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    return ParsedFeed(title=title, entries=_unique(entries), bozo=False, bozo_reason="", version=version,
                      skipped=skipped)


def _json_summary(item: dict[str, Any]) -> str:
    """The item's summary, else its content: `summary` and `content_text` are plain text (JSON Feed 1.1), only
    `content_html` is HTML."""
    for key in ("summary", "content_text", "content_html"):
        if item.get(key):
            return _text(item[key], _cap("summary"), html=key == "content_html")
    return ""


def _json_content(item: dict[str, Any]) -> str:
    """The item's full text: content_html (HTML) or content_text (plain), whichever has more text."""
    texts = [_text(item.get(key), _cap("content"), html=key == "content_html")
             for key in ("content_html", "content_text") if isinstance(item.get(key), str)]
    return max(texts, key=len, default="")


# ---------------------------------------------------------------------------------------------- RSS / Atom
def describe_bozo(exc: Any, *, line_offset: int = 0) -> str:
    """A short human reason for feedparser's bozo_exception (line numbers moved back by `line_offset`)."""
    if exc is None:
        return ""
    get_line = getattr(exc, "getLineNumber", None)
    if callable(get_line):  # xml.sax.SAXParseException
        line = max(1, (get_line() or 1) - line_offset)
        return f"XML syntax error at line {line}, column {exc.getColumnNumber()}: {exc.getMessage()}"
    if isinstance(exc, _Repaired):
        return str(exc)
    name = type(exc).__name__
    if name == "CharacterEncodingOverride":
        return f"encoding: {exc}"
    return f"{name}: {exc}"


def _not_a_feed_reason(body: bytes, result: Any, line_offset: int) -> str:
    head = _XML_DECL.sub(b"", body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n"), count=1).lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head")) or b"<html" in head[:512]:
        return "HTML page, not a feed"
    exc = result.get("bozo_exception")
    if _is_syntax_error(exc):
        return describe_bozo(exc, line_offset=line_offset)
    root = re.search(rb"<([A-Za-z_][\w.:-]*)", re.sub(rb"<[?!][^>]*>", b"", head))
    if root:
        return f"XML document with root element <{root.group(1).decode('ascii', 'replace')}>, not RSS/Atom"
    return describe_bozo(exc) or "no feed elements found"


def _is_syntax_error(exc: Any) -> bool:
    return callable(getattr(exc, "getLineNumber", None))


def _feedparser() -> Any:
    """feedparser (imported in the worker only), told to leave ids as written.

    feedparser resolves an id against the document's base like a link and, when the entry has no link yet, copies it
    into `link`: an Atom <id>12345</id> became http://feed.host/path/12345 and was fetched. An id is a name (RFC 4287
    4.2.6: it must not change when the document moves), so 'id' is taken out of the elements it resolves.
    """
    import feedparser
    from feedparser.mixin import _FeedParserMixin

    if "id" in _FeedParserMixin.can_be_relative_uri:
        _FeedParserMixin.can_be_relative_uri = frozenset(_FeedParserMixin.can_be_relative_uri - {"id"})
    return feedparser


def _run_feedparser(body: bytes, url: str, content_type: str) -> Any:
    """feedparser's result; when feedparser itself fails on the document (its loose parser raises on some broken
    nesting: KeyError 'media_player' for a </media:player> it did not see open), once more on the document as
    lxml's recovering parser rebuilds it, flagged bozo with the first failure. The feed keeps its other items."""
    feedparser = _feedparser()
    headers = {"content-location": url, "content-type": content_type}
    try:
        # bytes only: given a str, feedparser would open a URL or a local file
        return feedparser.parse(body, response_headers=headers)
    except Exception as exc:  # noqa: BLE001 - hostile input must end as "not a feed", never crash the poller
        first = exc
    repaired = _rebuilt(body)
    if repaired is not None:
        try:
            result = feedparser.parse(repaired, response_headers=headers)
        except Exception:  # noqa: BLE001 - (the first failure is the one reported)
            pass
        else:
            if result.get("version") or result.get("entries"):
                result["bozo"], result["bozo_exception"] = True, _Repaired(f"rebuilt after the parser failed "
                                                                           f"({type(first).__name__}: {first})")
                return result
    raise _not_a_feed(url, f"parser failed ({type(first).__name__}: {first})") from first


class _Repaired(Exception):
    """The bozo note of a document parsed as lxml's recovering parser rebuilt it."""


def _rebuilt(body: bytes) -> bytes | None:
    """`body` (UTF-8, its DOCTYPE already made safe) as lxml's recovering parser reads it, written out again; None if
    it finds no element. No entities resolved, nothing loaded from the network."""
    from lxml import etree

    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    return None if root is None else etree.tostring(root, encoding="utf-8", xml_declaration=True)


# A numeric character reference to no character: a surrogate, a number beyond U+10FFFF, or NUL. feedparser's loose
# parser raises on one (UnicodeEncodeError, ValueError, OverflowError) and the whole feed was "not a feed"; as HTML
# reads them (and lxml does in pages), each becomes U+FFFD. Only the references that may be one are looked at: four
# hex digits from D800, six or more, or zero; five decimal digits from 55, seven or more, or zero.
_SUSPECT_CHARREF = re.compile(rb"&#(?:[xX]0*([dD][89a-fA-F][0-9a-fA-F]{2}(?![0-9a-fA-F])|[0-9a-fA-F]{6,}|"
                              rb"(?<=0)(?![0-9a-fA-F]))|0*(5[5-7][0-9]{3}(?![0-9])|[0-9]{7,}|(?<=0)(?![0-9])))")


def _no_char(m: re.Match) -> bytes:
    hex_digits, decimal = m.group(1), m.group(2)
    digits = hex_digits if hex_digits is not None else decimal
    code = int(digits or b"0", 16 if hex_digits is not None else 10)
    return b"&#xFFFD" if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else m.group()


def replace_charrefs_to_no_char(body: bytes) -> bytes:
    """`body` with every numeric character reference to no character written as U+FFFD's."""
    return _SUSPECT_CHARREF.sub(_no_char, body) if b"&#" in body else body


def _prepare_xml(body: bytes, url: str, content_type: str) -> tuple[bytes, str, int, Any]:
    """UTF-8 bytes whose DOCTYPE declares only safe entities (if any), the content type that says so, the lines
    added before the root element, and feedparser's note on the original encoding."""
    content_type = content_type or "application/xml"  # with no type at all feedparser flags every document
    body, reencoded = to_ascii_compatible(body)
    if reencoded:  # a BOM or the NUL pattern of UTF-16/32 outweighs a charset in the HTTP header (RFC 7303 3.3)
        content_type = content_type.split(";", 1)[0]
    try:
        utf8, added_line, note = to_utf8(body, content_type)
    except PermanentError as exc:
        raise _not_a_feed(url, str(exc)) from exc
    except (UnicodeError, ValueError) as exc:
        raise _not_a_feed(url, f"cannot decode the document ({type(exc).__name__}: {exc})") from exc
    prepared, doctype_lines = safe_doctype(replace_charrefs_to_no_char(utf8))
    return prepared, content_type.split(";", 1)[0] + "; charset=utf-8", int(added_line) + doctype_lines, note


def _entry_link(item: Any) -> str | None:
    """The entry's link from a link element of the document; None when feedparser made its `link` from the id."""
    link = item.get("link")
    if link and any(link == found.get("href") for found in item.get("links") or ()):
        return link
    return None


def _xml_entry(item: Any, *, feed_id: str, url: str, source: str, tracking: tuple[str, ...]) -> Entry | None:
    return _make_entry(
        feed_id=feed_id, link=_entry_link(item), guid=str(item.get("id") or ""), base=url,
        title=_text(item.get("title"), _cap("title"), html=_is_html(item.get("title_detail"))),
        summary=_text(item.get("summary"), _cap("summary"), html=_summary_is_html(item)),
        published=_iso_from_struct(item.get("published_parsed") or item.get("updated_parsed")),
        source=source, tracking=tracking, content=_xml_content(item))


def _xml_content(item: Any) -> str:
    """The item's full text as plain text: the longest of its content elements (content:encoded, Atom content)."""
    texts = [_text(c.get("value"), _cap("content"), html=_is_html(c)) for c in item.get("content") or ()
             if isinstance(c, dict)]
    return max(texts, key=len, default="")


def parse_xml_feed(body: bytes, *, feed_id: str, url: str, content_type: str = "", source: str = "",
                   tracking: tuple[str, ...] = DEFAULT_TRACKING_PARAMS, fast: bool = True) -> ParsedFeed:
    """RSS 0.9x/1.0/2.0 or Atom bytes via feedparser: decoded to UTF-8 and DOCTYPE stripped first, whatever the
    encoding; bozo documents keep their entries. Plain RSS 2.0 and Atom 1.0 take the fast path (fastfeed.parse_fast:
    the same result, 4x cheaper on the benchmark's feeds, 1.3-1.5x on the corpus's, whose long HTML both paths
    sanitise) unless `fast` is False; any doubt about a document sends it to feedparser."""
    prepared, content_type, line_offset, encoding_note = _prepare_xml(body, url, content_type)
    result = parse_fast(prepared, url) if fast and encoding_note is None else None
    if result is None:
        result = _run_feedparser(prepared, url, content_type)
    if encoding_note is not None and not _is_syntax_error(result.get("bozo_exception")):
        result["bozo"], result["bozo_exception"] = True, encoding_note  # what feedparser says on the original bytes
    version = result.get("version") or ""
    raw_entries = result.get("entries") or []
    if not version and not raw_entries:
        raise _not_a_feed(url, _not_a_feed_reason(prepared, result, line_offset))
    channel = result.get("feed", {})
    title = _text(channel.get("title"), FEED_TITLE_MAX, html=_is_html(channel.get("title_detail")))
    entries, skipped = [], 0
    for item in raw_entries:
        entry = _xml_entry(item, feed_id=feed_id, url=url, source=title or source, tracking=tracking)
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    bozo = bool(result.get("bozo"))
    return ParsedFeed(title=title, entries=_unique(entries), bozo=bozo,
                      bozo_reason=describe_bozo(result.get("bozo_exception"), line_offset=line_offset) if bozo else "",
                      version=version, skipped=skipped)


def parse_feed(body: bytes, *, feed_id: str, url: str, content_type: str = "", source: str = "",
               tracking: tuple[str, ...] = DEFAULT_TRACKING_PARAMS) -> ParsedFeed:
    """Any feed document (gzip-wrapped or not) -> ParsedFeed; PermanentError 'not a feed: <reason>' otherwise.

    `tracking`: the query-parameter rules dropped from entry URLs (dedup.tracking_params).
    """
    body = gunzip_body(body, url=url)
    if not body.strip():
        raise _not_a_feed(url, "empty body")
    if _looks_like_json(body, content_type):
        return parse_json_feed(body, feed_id=feed_id, url=url, source=source, tracking=tracking)
    return parse_xml_feed(body, feed_id=feed_id, url=url, content_type=content_type, source=source, tracking=tracking)


def parse_feed_job(body: bytes, feed_id: str, url: str, content_type: str, source: str,
                   tracking: tuple[str, ...] = DEFAULT_TRACKING_PARAMS) -> ParsedFeed:
    """parse_feed with positional arguments, for WorkerPool.run."""
    return parse_feed(body, feed_id=feed_id, url=url, content_type=content_type, source=source, tracking=tracking)


# ---------------------------------------------------------------------------------------------- polling
async def poll_feed(feed: Feed, *, etag: str | None, last_modified: str | None, fetcher: Fetcher,
                    pool: WorkerPool, parse_timeout: float = 10.0,
                    tracking: tuple[str, ...] = DEFAULT_TRACKING_PARAMS) -> PollResult:
    """Conditional GET of the feed; 304 -> nothing parsed; else parse in the worker pool with a deadline.

    Directory sources (kind="directory") are scanned instead; they have no validators. `tracking`: the rules of
    dedup.tracking_params.
    """
    if feed.kind == "directory":
        from .directory import scan_directory

        entries = await asyncio.to_thread(scan_directory, feed)
        return PollResult(not_modified=False, entries=tuple(entries), etag=None, last_modified=None,
                          bozo_reason="", title=feed.name)
    page = await fetcher.get(feed.url, etag=etag, last_modified=last_modified, headers=dict(feed.headers),
                             accept=FEED_ACCEPT)
    if page.not_modified:
        log.debug("feed %s not modified", feed.id)
        return PollResult(not_modified=True, entries=(), etag=page.etag or etag,
                          last_modified=page.last_modified or last_modified, bozo_reason="", title="")
    content_type = page.content_type + (f"; charset={page.encoding}" if page.encoding else "")
    try:
        parsed: ParsedFeed = await pool.run(parse_feed_job, page.body, feed.id, page.final_url, content_type,
                                            feed.name, tracking, timeout=parse_timeout, priority=PRIORITY_FEED)
    except (WorkerTimeout, WorkerCrashed, WorkerOutOfMemory) as exc:
        raise type(exc)(f"{redact_url(feed.url)}: parsing the feed: {exc}") from exc
    if parsed.bozo:
        log.debug("feed %s (%s) is ill-formed but gave %d entries: %s", feed.id, redact_url(feed.url),
                 len(parsed.entries), parsed.bozo_reason)
    return PollResult(not_modified=False, entries=parsed.entries, etag=page.etag, last_modified=page.last_modified,
                      bozo_reason=parsed.bozo_reason, title=parsed.title, skipped=parsed.skipped)
