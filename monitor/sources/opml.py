"""Feed lists as feed readers keep them: OPML read with listparser (folders and categories become tags), OPML 2.0
written with the standard library's ElementTree (tags become folders and the `category` attribute).

Errors are one `file:line: what` line; a file listparser can read only by recovering from broken XML is read, with
a warning naming the line of the first XML error.
"""

from __future__ import annotations

import email.utils
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import listparser
from lxml import etree

from ..errors import ConfigError

MAX_OPML_BYTES = 20_000_000  # a subscription list of 100,000 feeds is about 15 MB
CANNOT_READ = "cannot read the feed list"


@dataclass(frozen=True, slots=True)
class ListedFeed:
    """One feed outline: its xmlUrl, its name (text/title, '' when it only repeats the URL), its category paths
    joined by '/' (nested folders News > World give 'News/World'), and the line it starts on (0: not found)."""

    url: str
    name: str = ""
    tags: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True, slots=True)
class FeedList:
    feeds: tuple[ListedFeed, ...]
    warnings: tuple[str, ...] = ()


def read_opml(path: Path, *, label: str | None = None) -> FeedList:
    """The feeds of an OPML file; ConfigError `label:line: reason` if it is unreadable or not OPML."""
    label = label or str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_OPML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{label}: {CANNOT_READ}: {exc.strerror or exc}") from None
    if len(raw) > MAX_OPML_BYTES:
        raise ConfigError(f"{label}: larger than {MAX_OPML_BYTES} bytes; not a feed list")
    return parse_opml(raw, label=label)


def parse_opml(raw: bytes, *, label: str) -> FeedList:
    if not raw.strip():
        raise ConfigError(f"{label}:1: empty file, not an OPML feed list")
    xml_error = _xml_problem(raw, label)
    result = listparser.parse(raw)  # bytes, never a str: listparser would fetch a str that looks like a URL
    if not str(result.get("version", "")).startswith("opml"):
        raise ConfigError(f"{label}:1: not an OPML feed list (the root element is <{_root_name(raw)}>, not <opml>)")
    if xml_error is not None and not result["feeds"]:
        raise ConfigError(xml_error)
    text = raw.decode("utf-8", errors="replace")
    feeds = tuple(_listed(item, text) for item in result["feeds"])
    warnings = [f"{xml_error}; read in recovery mode, {len(feeds)} feeds found: check the file"] if xml_error else []
    if result.get("lists"):
        warnings.append(f"{label}: {len(result['lists'])} outline(s) link to other subscription lists "
                        "(type include/link or source); they are not followed")
    return FeedList(feeds=feeds, warnings=tuple(warnings))


def _xml_problem(raw: bytes, label: str) -> str | None:
    """`label:line: not well-formed XML (...)` for a broken document, None for a well-formed one."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 1
        message = (exc.msg or "syntax error").split(", line ")[0]
        return f"{label}:{line}: not well-formed XML ({message})"
    return None


def _root_name(raw: bytes) -> str:
    """The name of the first element (past the XML declaration, DOCTYPE and comments), for messages."""
    head = re.sub(rb"<!--.*?-->|<[?!][^>]*>", b"", raw[:4096], flags=re.DOTALL)
    found = re.search(rb"<([A-Za-z_][\w.:-]*)", head)
    return found.group(1).decode("ascii", "replace").lower() if found else "?"


def _listed(item: dict, text: str) -> ListedFeed:
    url = item["url"]
    title = item.get("title", "")
    tags = []
    for path in item.get("categories", []):
        tag = "/".join(path)
        if tag and tag not in tags:
            tags.append(tag)
    return ListedFeed(url=url, name="" if title == url else title, tags=tuple(tags), line=_line_of(text, url))


def _line_of(text: str, url: str) -> int:
    """The line of the outline whose xmlUrl is `url` (as written, or with its '&' escaped), 0 if not found."""
    for written in (f'"{url}"', f'"{html.escape(url, quote=False)}"', f"'{url}'", url):
        at = text.find(written)
        if at >= 0:
            return text.count("\n", 0, at) + 1
    return 0


def write_opml(feeds: Iterable[ListedFeed], *, title: str) -> bytes:
    """OPML 2.0: each feed under the folders of its first tag, all its tags in `category` ("/News/World,/Europe")."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = email.utils.formatdate(usegmt=True)
    body = ET.SubElement(root, "body")
    folders: dict[tuple[str, ...], ET.Element] = {}
    for feed in feeds:
        parent = _folder(body, folders, feed.tags[0] if feed.tags else "")
        label = feed.name or feed.url
        attrs = {"type": "rss", "text": label, "title": label, "xmlUrl": feed.url}
        categories = [f"/{tag}" for tag in feed.tags if "," not in tag]
        if categories:
            attrs["category"] = ",".join(categories)
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


def _folder(body: ET.Element, folders: dict[tuple[str, ...], ET.Element], tag: str) -> ET.Element:
    parent, path = body, ()
    for part in (p.strip() for p in tag.split("/")):
        if not part:
            continue
        path = path + (part,)
        if path not in folders:
            folders[path] = ET.SubElement(parent, "outline", {"text": part, "title": part})
        parent = folders[path]
    return parent
