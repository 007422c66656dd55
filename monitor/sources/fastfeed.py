"""A fast path for plain, well-formed RSS 2.0: lxml parses, and each value goes through the same steps feedparser's
strict parser applies to it (its own functions: URL joining, HTML-looking text, relative URIs in markup, the
sanitiser, author and tag rules), so the result is the dict feedparser would return for the fields monitor reads.

Anything outside that shape returns None and the caller runs feedparser: a DOCTYPE, xml:base or xml:lang, a
namespace other than content: and dc:creator in an item, an element in an item it does not know, an attribute on a
text element, a repeated element, markup nested in a value, an `item` or `entry` anywhere else, or any XML error.
Entities are never expanded (no DTD is loaded; an undefined entity is an error, hence feedparser).

`parse_rss` runs in the worker, like feedparser, and takes the bytes `feed._prepare_xml` made (UTF-8, DOCTYPE
handled), with the document's URL as the base for relative links.
"""

from __future__ import annotations

import re
from typing import Any

CONTENT_NS = "{http://purl.org/rss/1.0/modules/content/}"
DC_NS = "{http://purl.org/dc/elements/1.1/}"
# item child -> feedparser's element name for it
_ITEM_FIELDS = {
    "title": "title", "link": "link", "guid": "id", "pubDate": "published", "description": "description",
    "author": "author", "comments": "comments", CONTENT_NS + "encoded": "content", DC_NS + "creator": "author",
}
_REPEATABLE = frozenset({"category", "enclosure"})
_PLAIN_ATTRS = {"guid": {"isPermaLink"}, "category": {"domain"}}  # attributes a text element may carry
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_MARKUP_FIELDS = frozenset({"title", "description", "content"})  # feedparser resolves and sanitises markup in these
_LOOSE_REF = re.compile("&([A-Za-z0-9_]+);")
_RELATIVE_FIELDS = frozenset({"link", "comments"})  # feedparser joins these to the base ('id' monitor keeps as is)


class _Decline(Exception):
    """The document is not of the shape this path reproduces: feedparser parses it."""


class _Context:
    """What feedparser's author and tag helpers call (`self._get_context()`): the entry being filled."""

    def __init__(self, entry: Any) -> None:
        self.entry = entry

    def _get_context(self) -> Any:
        return self.entry


def _fp() -> Any:
    """feedparser's pieces (imported in the worker only)."""
    from feedparser import datetimes, html, mixin, sanitizer, urls, util

    return mixin._FeedParserMixin, util.FeedParserDict, urls._urljoin, urls.resolve_relative_uris, \
        sanitizer._sanitize_html, datetimes._parse_date, html._cp1252


def parse_rss(body: bytes, base: str) -> Any | None:
    """feedparser's result (FeedParserDict: feed, entries, version, bozo) for a plain RSS 2.0 document, or None."""
    if b"<!DOCTYPE" in body or b"<!doctype" in body or b"xml:base" in body or b"xml:lang" in body:
        return None
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_blank_text=False)
    try:
        root = etree.fromstring(body, parser)
        return _Document(base).read(root)
    except (etree.XMLSyntaxError, _Decline, ValueError):
        return None


class _Document:
    def __init__(self, base: str) -> None:
        (self.mixin, self.Dict, self.urljoin, self.resolve_relative, self.sanitize, self.parse_date,
         self.cp1252) = _fp()
        self.base = base

    def read(self, root: Any) -> Any:
        if root.tag != "rss" or not root.get("version", "").startswith("2.") or len(root) != 1:
            raise _Decline
        channel = root[0]
        if channel.tag != "channel":
            raise _Decline
        items = [child for child in channel if child.tag == "item"]
        if sum(1 for _ in root.iter("item", "entry", "{*}item", "{*}entry")) != len(items):
            raise _Decline
        feed, entries = self.Dict(), []
        for child in channel:
            if child.tag == "item":
                entries.append(self._item(child))
            elif child.tag == "title":
                if "title" in feed:
                    raise _Decline
                self._content(feed, "title", child, "text/plain")
        return self.Dict(feed=feed, entries=entries, version="rss20", bozo=False, namespaces={})

    # ------------------------------------------------------------------------------------------ one item
    def _item(self, item: Any) -> Any:
        if item.attrib:
            raise _Decline
        entry, seen = self.Dict(), set()
        for child in item:
            tag = child.tag
            if not isinstance(tag, str):  # a comment or processing instruction between elements
                continue
            name = _ITEM_FIELDS.get(tag) or (tag if tag in _REPEATABLE else None)
            if name is None or (name in seen and name not in _REPEATABLE):
                raise _Decline
            seen.add(name)
            self._field(entry, name, child)
        return entry

    def _field(self, entry: Any, name: str, el: Any) -> None:
        if name == "enclosure":
            self._enclosure(entry, el)
        elif name == "category":
            self._category(entry, el)
        elif name == "title":
            self._content(entry, "title", el, "text/plain")
        elif name == "description":
            self._content(entry, "summary", el, "text/html", element="description")
        elif name == "content":
            self._body(entry, el)
        elif name == "link":
            self._link(entry, el)
        elif name == "id":
            self._guid(entry, el)
        elif name == "author":
            self._author(entry, el)
        else:  # published, comments
            entry[name] = self._value(name, self._text(el), None)[0]
            if name == "published":
                entry["published_parsed"] = self.parse_date(entry["published"])

    def _text(self, el: Any, attrs: frozenset[str] | set[str] = frozenset()) -> str:
        """The element's text; declined when it holds elements, comments or attributes feedparser would read."""
        if len(el) or any(key not in attrs for key in el.attrib):
            raise _Decline
        return el.text or ""

    def _value(self, element: str, raw: str, ctype: str | None) -> tuple[str, str | None]:
        """feedparser's `pop` for one text element of a non-Atom document: (value, content type)."""
        out = raw.strip()
        if element in _RELATIVE_FIELDS and out:
            out = self.urljoin(self.base, out)
        if ctype == "text/plain" and self.mixin.looks_like_html(out):
            ctype = "text/html"
        if ctype in _HTML_TYPES and element in _MARKUP_FIELDS and any(c in out for c in "<>&"):
            out = self.resolve_relative(out, self.base, "utf-8", ctype)
            out = self.sanitize(out, "utf-8", ctype)
        try:  # feedparser's repair of UTF-8 read as ISO-8859-1
            out = out.encode("iso-8859-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        return out.translate(self.cp1252), ctype

    def _detail(self, ctype: str | None, value: str) -> Any:
        # language: xml:lang only (declined here); feedparser restores it when <language> ends, so that is None
        return self.Dict(type=ctype, language=None, base=self.base, value=value)

    def _content(self, context: Any, key: str, el: Any, default_type: str, *, element: str | None = None) -> None:
        value, ctype = self._value(element or key, self._text(el), default_type)
        context[key] = value
        context[key + "_detail"] = self._detail(ctype, value)

    def _body(self, entry: Any, el: Any) -> None:
        value, ctype = self._value("content", self._text(el), "text/html")
        entry.setdefault("content", []).append(self._detail(ctype, value))
        entry.setdefault("summary", value)

    def _link(self, entry: Any, el: Any) -> None:
        links = entry.setdefault("links", [])
        links.append(self.Dict(rel="alternate", type="text/html"))
        value = self._value("link", self._text(el), None)[0].replace("&amp;", "&")
        value = _LOOSE_REF.sub(r"&\g<1>", value)  # feedparser's repair of '?a=1&b=2' read as a reference
        entry["link"] = value
        if value:
            links[-1]["href"] = value

    def _guid(self, entry: Any, el: Any) -> None:
        is_link = el.get("isPermaLink", "true") == "true"
        value = self._value("id", self._text(el, _PLAIN_ATTRS["guid"]), None)[0]
        entry["id"] = value
        entry.setdefault("guidislink", is_link and "link" not in entry)
        if is_link:
            entry.setdefault("link", value)

    def _author(self, entry: Any, el: Any) -> None:
        entry.setdefault("authors", []).append(self.Dict())
        entry["author"] = self._value("author", self._text(el), None)[0]
        self.mixin._sync_author_detail(_Context(entry))

    def _category(self, entry: Any, el: Any) -> None:
        context = _Context(entry)
        domain = el.get("domain")
        self.mixin._add_tag(context, None, domain, None)
        value = self._value("category", self._text(el, _PLAIN_ATTRS["category"]), None)[0]
        if not value:
            return
        tags = entry["tags"]
        if tags and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            self.mixin._add_tag(context, value, None, None)

    def _enclosure(self, entry: Any, el: Any) -> None:
        if len(el) or el.text and el.text.strip():
            raise _Decline
        attrs = {key.lower(): value for key, value in el.attrib.items()}
        if any(key.startswith("{") for key in attrs):
            raise _Decline
        attrs = self.mixin._enforce_href(attrs)
        attrs["rel"] = "enclosure"
        entry.setdefault("links", []).append(self.Dict(attrs))
