"""A fast path for plain, well-formed RSS 2.0 and Atom 1.0: lxml parses, and each value goes through the same steps
feedparser's strict parser applies to it (its own functions: URL joining, HTML-looking text, relative URIs in markup,
the sanitiser, author, tag and date rules), so the result holds what feedparser would return for the fields monitor
reads (plain dicts where feedparser returns FeedParserDicts: the same keys and values).

Anything outside that shape returns None and the caller runs feedparser: a DOCTYPE; in RSS xml:base or xml:lang
(Atom's are tracked as feedparser tracks them), in an item a namespace other than content: and dc:creator; in an
Atom entry an element of another namespace, XHTML or base64 text, `source`, `contributor` or a second author; an
element in an item or entry it does not know, an attribute it does not reproduce, a repeated element, markup nested
in a value, an `item` or `entry` anywhere else, or any XML error. Entities are never expanded (no DTD is loaded; an
undefined entity is an error, hence feedparser).

`parse_fast` runs in the worker, like feedparser, and takes the bytes `feed._prepare_xml` made (UTF-8, DOCTYPE
handled), with the document's URL as the base for relative links.
"""

from __future__ import annotations

import re
from typing import Any

CONTENT_NS = "{http://purl.org/rss/1.0/modules/content/}"
DC_NS = "{http://purl.org/dc/elements/1.1/}"
ATOM_NS = "{http://www.w3.org/2005/Atom}"
XML_BASE, XML_LANG = "{http://www.w3.org/XML/1998/namespace}base", "{http://www.w3.org/XML/1998/namespace}lang"
_XML_SCOPE = frozenset({XML_BASE, XML_LANG})  # what every Atom element may carry: feedparser tracks both
_XML_ATTRS = {XML_BASE: "xml:base", XML_LANG: "xml:lang"}  # feedparser's names of them in a link's attributes
# item child -> feedparser's element name for it
_ITEM_FIELDS = {
    "title": "title", "link": "link", "guid": "id", "pubDate": "published", "description": "description",
    "author": "author", "comments": "comments", CONTENT_NS + "encoded": "content", DC_NS + "creator": "author",
}
_REPEATABLE = frozenset({"category", "enclosure"})
_PLAIN_ATTRS = {"guid": {"isPermaLink"}, "category": {"domain"}}  # attributes a text element may carry
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_MARKUP_FIELDS = frozenset({"title", "description", "summary", "content"})  # feedparser resolves and sanitises these
_LOOSE_REF = re.compile("&([A-Za-z0-9_]+);")
_RELATIVE_FIELDS = frozenset({"link", "comments", "href"})  # feedparser joins these to the base ('id' monitor keeps)
# Atom: entry child (local name) -> the attributes it may carry; author's children carry none
_ATOM_FIELDS = {name: attrs | _XML_SCOPE for name, attrs in {
    "title": {"type"}, "summary": {"type"}, "content": {"type"},
    "link": {"href", "rel", "type", "title", "hreflang", "length"},
    "category": {"term", "scheme", "label"}, "id": set(), "published": set(), "updated": set(), "author": set(),
}.items()}
_ATOM_REPEATABLE = frozenset({"link", "category"})
_ATOM_AUTHOR_FIELDS = {ATOM_NS + "name": "name", ATOM_NS + "email": "email", ATOM_NS + "uri": "href"}
_ATOM_TEXT_TYPES = {"text": "text/plain", "text/plain": "text/plain", "html": "text/html", "text/html": "text/html"}
# namespaces by which feedparser would call the document something else than Atom 1.0 (its track_namespace)
_OTHER_VERSIONS = ("http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/", "backend.userland.com/rss")
_parser: Any = None


class _Decline(Exception):
    """The document is not of the shape this path reproduces: feedparser parses it."""


class _Context:
    """What feedparser's author and tag helpers call (`self._get_context()`...): the entry being filled."""

    def __init__(self, entry: Any, mixin: Any) -> None:
        self.entry, self.mixin = entry, mixin

    def _get_context(self) -> Any:
        return self.entry

    def _sync_author_detail(self, key: str = "author") -> None:
        self.mixin._sync_author_detail(self, key)


def _fp() -> Any:
    """feedparser's pieces (imported in the worker only)."""
    from feedparser import datetimes, html, mixin, sanitizer, urls, util

    return mixin._FeedParserMixin, util.FeedParserDict, urls._urljoin, urls.resolve_relative_uris, \
        sanitizer._sanitize_html, datetimes._parse_date, html._cp1252, urls.make_safe_absolute_uri


def _xml_parser() -> Any:
    global _parser
    if _parser is None:
        from lxml import etree

        _parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                                  remove_blank_text=False)
    return _parser


def parse_fast(body: bytes, base: str) -> Any | None:
    """feedparser's result (feed, entries, version, bozo) for a plain RSS 2.0 or Atom 1.0 document, or None."""
    if b"<!DOCTYPE" in body or b"<!doctype" in body:
        return None
    from lxml import etree

    try:
        root = etree.fromstring(body, _xml_parser())
        if root.tag == "rss":
            if b"xml:base" in body or b"xml:lang" in body:  # the RSS reader does not track them
                return None
            return _Rss(base).read(root)
        if root.tag == ATOM_NS + "feed" and b"/1999/xlink" not in body:  # feedparser gives an xlink declaration
            return _Atom(base).read(root)  # to its element as an attribute, which a link's dict would show
    except (etree.XMLSyntaxError, _Decline, ValueError):
        return None
    return None


class _Document:
    """What both formats share: feedparser's `pop` for one text value and its detail dicts."""

    atom = False
    text_attrs: frozenset[str] = frozenset()  # the attributes a text element's value may carry (Atom: its type)

    def __init__(self, base: str) -> None:
        (self.mixin, self.Dict, self.urljoin, self.resolve_relative, self.sanitize, self.parse_date,
         self.cp1252, self.safe_uri) = _fp()
        self.base = base
        self.lang: str | None = None  # xml:lang in scope (Atom; the RSS reader declines it)

    def _enter(self, el: Any) -> tuple[str, str | None]:
        """feedparser's unknown_starttag for xml:base and xml:lang: the element's base and language are in scope
        until it ends. Returns the state before it, for the caller to restore."""
        saved = self.base, self.lang
        if el.attrib:
            relative = el.get(XML_BASE)
            if relative:
                self.base = self.safe_uri(self.base, relative) or self.base
            lang = el.get(XML_LANG)
            if lang is not None:
                self.lang = lang or None
        return saved

    def _text(self, el: Any, attrs: frozenset[str] | set[str] = frozenset()) -> str:
        """The element's text; declined when it holds elements, comments or attributes feedparser would read."""
        if len(el) or any(key not in attrs for key in el.attrib):
            raise _Decline
        return el.text or ""

    def _value(self, element: str, raw: str, ctype: str | None) -> tuple[str, str | None]:
        """feedparser's `pop` for one text element: (value, content type)."""
        out = raw.strip()
        if element in _RELATIVE_FIELDS and out:
            out = self.urljoin(self.base, out)
        if ctype == "text/plain" and not self.atom and self.mixin.looks_like_html(out):
            ctype = "text/html"
        if ctype in _HTML_TYPES and element in _MARKUP_FIELDS and any(c in out for c in "<>&"):
            out = self.resolve_relative(out, self.base, "utf-8", ctype)
            out = self.sanitize(out, "utf-8", ctype)
        try:  # feedparser's repair of UTF-8 read as ISO-8859-1
            out = out.encode("iso-8859-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        return out.translate(self.cp1252), ctype

    def _detail(self, ctype: str | None, value: str) -> dict[str, Any]:
        # language: xml:lang only; RSS's <language> counts for its own element alone (feedparser restores the one in
        # scope when it ends), so that is None there
        lang = self.lang.replace("_", "-") if self.lang else self.lang
        return {"type": ctype, "language": lang, "base": self.base, "value": value}

    def _content(self, context: Any, key: str, el: Any, default_type: str, *, element: str | None = None) -> None:
        value, ctype = self._value(element or key, self._text(el, self.text_attrs), default_type)
        context[key] = value
        context[key + "_detail"] = self._detail(ctype, value)

    def _body(self, entry: Any, el: Any, ctype: str = "text/html") -> None:
        value, ctype = self._value("content", self._text(el, self.text_attrs), ctype)
        entry.setdefault("content", []).append(self._detail(ctype, value))
        entry.setdefault("summary", value)

    def _guid(self, entry: Any, el: Any) -> None:
        is_link = self.atom or el.get("isPermaLink", "true") == "true"
        value = self._value("id", self._text(el, _XML_SCOPE if self.atom else _PLAIN_ATTRS["guid"]), None)[0]
        entry["id"] = value
        entry.setdefault("guidislink", is_link and "link" not in entry)
        if is_link:
            entry.setdefault("link", value)

    def _category(self, entry: Any, el: Any, term: str | None, scheme: str | None, label: str | None,
                  allowed: frozenset[str] | set[str]) -> None:
        context = _Context(entry, self.mixin)
        self.mixin._add_tag(context, term, scheme, label)
        value = self._value("category", self._text(el, allowed), None)[0]
        if not value:
            return
        tags = entry["tags"]
        if tags and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            self.mixin._add_tag(context, value, None, None)

    def _date(self, entry: Any, name: str, el: Any) -> None:
        entry[name] = self._value(name, self._text(el, _XML_SCOPE if self.atom else frozenset()), None)[0]
        entry[name + "_parsed"] = self.parse_date(entry[name])

    def _only_once(self, container: Any, tags: tuple[str, ...]) -> list[Any]:
        """The direct children that are items/entries, declined when one stands anywhere else."""
        found = [child for child in container if child.tag in tags]
        if sum(1 for _ in container.getroottree().getroot().iter("item", "entry", "{*}item", "{*}entry")) \
                != len(found):
            raise _Decline
        return found


class _Rss(_Document):
    def read(self, root: Any) -> Any:
        if not root.get("version", "").startswith("2.") or len(root) != 1:
            raise _Decline
        channel = root[0]
        if channel.tag != "channel":
            raise _Decline
        self._only_once(channel, ("item",))
        feed, entries = {}, []
        for child in channel:
            if child.tag == "item":
                entries.append(self._item(child))
            elif child.tag == "title":
                if "title" in feed:
                    raise _Decline
                self._content(feed, "title", child, "text/plain")
        return self.Dict(feed=feed, entries=entries, version="rss20", bozo=False, namespaces={})

    def _item(self, item: Any) -> Any:
        if item.attrib:
            raise _Decline
        entry: dict[str, Any] = {}
        seen = set()
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
            self._category(entry, el, None, el.get("domain"), None, _PLAIN_ATTRS["category"])
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
        elif name == "published":
            self._date(entry, name, el)
        else:  # comments
            entry[name] = self._value(name, self._text(el), None)[0]

    def _link(self, entry: Any, el: Any) -> None:
        links = entry.setdefault("links", [])
        links.append({"rel": "alternate", "type": "text/html"})
        value = self._value("link", self._text(el), None)[0].replace("&amp;", "&")
        value = _LOOSE_REF.sub(r"&\g<1>", value)  # feedparser's repair of '?a=1&b=2' read as a reference
        entry["link"] = value
        if value:
            links[-1]["href"] = value

    def _author(self, entry: Any, el: Any) -> None:
        entry.setdefault("authors", []).append(self.Dict())
        entry["author"] = self._value("author", self._text(el), None)[0]
        self.mixin._sync_author_detail(_Context(entry, self.mixin))

    def _enclosure(self, entry: Any, el: Any) -> None:
        if len(el) or el.text and el.text.strip():
            raise _Decline
        attrs = {key.lower(): value for key, value in el.attrib.items()}
        if any(key.startswith("{") for key in attrs):
            raise _Decline
        attrs = self.mixin._enforce_href(attrs)
        attrs["rel"] = "enclosure"
        entry.setdefault("links", []).append(self.Dict(attrs))


class _Atom(_Document):
    """Atom 1.0 (RFC 4287) as feedparser reads it: text constructs of type text or html, links by their attributes,
    one author (name, email, uri), categories by term/scheme/label."""

    atom = True
    text_attrs = frozenset({"type"}) | _XML_SCOPE

    def read(self, root: Any) -> Any:
        uris = [uri.lower() for uri in root.nsmap.values()]
        if any(key not in _XML_SCOPE for key in root.attrib) \
                or any(other in uri for uri in uris for other in _OTHER_VERSIONS):
            raise _Decline
        self._only_once(root, (ATOM_NS + "entry",))
        self._enter(root)
        feed: dict[str, Any] = {"language": self.lang.replace("_", "-")} if self.lang else {}
        entries = []
        for child in root:
            tag = child.tag
            if tag == ATOM_NS + "entry":
                saved = self._enter(child)
                entries.append(self._entry(child))
                self.base, self.lang = saved
            elif tag == ATOM_NS + "title":
                if "title" in feed:
                    raise _Decline
                saved = self._enter(child)
                self._content(feed, "title", child, self._type(child))
                self.base, self.lang = saved
            elif isinstance(tag, str) and tag.rpartition("}")[2].lower() == "language":
                raise _Decline  # feedparser would carry its value into the entries' details
        return self.Dict(feed=feed, entries=entries, version="atom10", bozo=False, namespaces={})

    @staticmethod
    def _type(el: Any) -> str:
        """feedparser's content type of a text construct; declined for XHTML and the rest (nested markup, base64)."""
        ctype = _ATOM_TEXT_TYPES.get(el.get("type", "text").lower())
        if ctype is None:
            raise _Decline
        return ctype

    def _entry(self, item: Any) -> Any:
        if any(key not in _XML_SCOPE for key in item.attrib):
            raise _Decline
        entry: dict[str, Any] = {}
        seen = set()
        for child in item:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            if not tag.startswith(ATOM_NS):
                raise _Decline
            name = tag[len(ATOM_NS):]
            allowed = _ATOM_FIELDS.get(name)
            if allowed is None or (name in seen and name not in _ATOM_REPEATABLE) \
                    or any(key not in allowed for key in child.attrib):
                raise _Decline
            seen.add(name)
            saved = self._enter(child)
            self._field(entry, name, child)
            self.base, self.lang = saved
        return entry

    def _field(self, entry: Any, name: str, el: Any) -> None:
        if name == "link":
            self._link(entry, el)
        elif name == "title":
            self._content(entry, "title", el, self._type(el))
        elif name == "summary":
            self._content(entry, "summary", el, self._type(el))
        elif name == "content":
            self._body(entry, el, self._type(el))
        elif name == "id":
            self._guid(entry, el)
        elif name == "author":
            self._author(entry, el)
        elif name == "category":
            self._category(entry, el, el.get("term"), el.get("scheme"), el.get("label"), _ATOM_FIELDS["category"])
        else:  # published, updated
            self._date(entry, name, el)

    def _link(self, entry: Any, el: Any) -> None:
        if len(el) or "href" not in el.attrib:  # without href feedparser reads the text, as in RSS
            raise _Decline
        attrs = {_XML_ATTRS.get(key, key): value.lower() if key in ("rel", "type") else value
                 for key, value in el.attrib.items()}  # every attribute, xml:base and xml:lang too, as feedparser
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        attrs["href"] = self.urljoin(self.base, attrs["href"])
        entry.setdefault("links", []).append(attrs)
        if attrs["rel"] == "alternate" and self.mixin.map_content_type(attrs["type"]) in _HTML_TYPES:
            entry["link"] = attrs["href"]

    def _author(self, entry: Any, el: Any) -> None:
        if (el.text or "").strip() or any((child.tail or "").strip() for child in el):
            raise _Decline  # text of its own: feedparser's author would be that text
        context = _Context(entry, self.mixin)
        entry.setdefault("authors", []).append(self.Dict())
        seen = set()
        for child in el:
            if not isinstance(child.tag, str):
                continue
            key = _ATOM_AUTHOR_FIELDS.get(child.tag)
            if key is None or key in seen:
                raise _Decline
            seen.add(key)
            saved = self._enter(child)
            if key == "href":  # <uri>: a full text value, joined to the base, which feedparser also leaves on the entry
                value = self._value("href", self._text(child, _XML_SCOPE), None)[0]
                entry["href"] = value
            else:  # name, email: feedparser takes the stripped text as it is
                value = self._text(child, _XML_SCOPE).strip()
            self.base, self.lang = saved
            self.mixin._save_author(context, key, value)
        entry["author"] = ""  # the author element's own (blank) text, then feedparser syncs it from the detail
        context._sync_author_detail()
