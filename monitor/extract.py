"""Article extraction: page bytes in, an Article (text, title, date, language) out.

Pure and top-level so the lead can run it in a WorkerPool process with a deadline; HTML goes through trafilatura.
"""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import marisa_trie
import trafilatura
import trafilatura.utils as trafilatura_utils
from htmldate import find_date
from lxml import etree
from lxml import html as lxml_html
from trafilatura.settings import set_date_params
from trafilatura.utils import repair_faulty_html

from .errors import PermanentError
from .fastxpath import faster_xpaths
from .language import detect_language
from .models import Article
from .settings import ExtractSettings

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
TEXT_TYPES = {"text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown"}
SUFFIX_KINDS = {".html": "html", ".htm": "html", ".xhtml": "html", ".txt": "text", ".text": "text",
                ".md": "markdown", ".markdown": "markdown"}
# Browsers read latin-1 labels as windows-1252 (WHATWG encoding spec); so do we, or curly quotes turn into C1 junk.
CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
                   "ascii": "cp1252", "x-user-defined": "cp1252"}
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.IGNORECASE)
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DATE_LINE = re.compile(r"^\s*(?:date|published|posted|updated)\s*:\s*(.+?)\s*$", re.IGNORECASE)
# A line of a scraped page that is navigation, not a headline: "News / Foreign Policy / Russia", "Home > Invest".
BREADCRUMB = re.compile(r"(\s[/>»›|]\s|>\s*\S.*>|^\s*(?:current\s*:|home\s*[>/»›]|you are here))", re.IGNORECASE)
META_MAX = {"title": 1000, "author": 300, "site_name": 300}  # characters; metadata of a hostile page can be huge
CHAOS_TIE = 0.01  # charset_normalizer "chaos" scores this close are equally good candidates


def _html_parser() -> lxml_html.HTMLParser:
    """trafilatura's own parser settings (trafilatura.utils.HTML_PARSER), with the element classes chosen in C.

    lxml.html's parser picks the Python class of every element proxy with a Python callback (HtmlElementClassLookup,
    so that a <form> gets FormElement); trafilatura makes ~5,000 proxies a page and uses none of those classes, so
    the callback was ~8% of an extraction. Here every element is an HtmlElement, chosen by lxml in C.
    """
    parser = lxml_html.HTMLParser(collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True,
                                  remove_pis=True)
    parser.set_element_class_lookup(etree.ElementDefaultClassLookup(
        element=lxml_html.HtmlElement, comment=lxml_html.HtmlComment, pi=lxml_html.HtmlProcessingInstruction,
        entity=lxml_html.HtmlEntity))
    return parser


HTML_PARSER = _html_parser()
_TRAFILATURA_PARSER = trafilatura_utils.HTML_PARSER


@contextmanager
def _faster_trafilatura() -> Iterator[None]:
    """trafilatura's load_html parses with HTML_PARSER for the length of the block, and trafilatura evaluates the
    rewritten twins of its XPath expressions (monitor.fastxpath: the same elements for less work); its own parser and
    expressions again after it. A page is given to trafilatura as text, not as a tree parsed here, because
    trafilatura copies a tree it is given before it cleans it (bare_extraction: `if tree is filecontent: tree =
    copy(tree)`), 0.5 ms a corpus page; parsed by trafilatura itself, its tree is its own to clean. Restored to
    trafilatura's own, not to what was there before: two threads extracting at once can at worst leave one call with
    trafilatura's own parser or expressions, which give the same result."""
    trafilatura_utils.HTML_PARSER = HTML_PARSER
    try:
        with faster_xpaths():
            yield
    finally:
        trafilatura_utils.HTML_PARSER = _TRAFILATURA_PARSER


class NoArticle(PermanentError):
    """The page yields nothing usable (wrong content type, undecodable, too little text)."""


def extract_article(body: bytes, *, url: str, content_type: str = "", encoding: str | None = None,
                    feed_id: str = "", source: str = "", entry_title: str = "",
                    entry_published: str | None = None, min_chars: int = 200,
                    max_chars: int = 200_000) -> Article:
    """Extract the article in `body`, its text cut to `max_chars`. Raises NoArticle when there is none worth keeping."""
    kind = content_kind(content_type, url)
    if kind is None:
        raise NoArticle(f"{url}: content type {content_type!r} is not an article page")
    text_in = decode_body(body, content_type=content_type, encoding=encoding)
    if kind == "html":
        fields = _extract_html(text_in, url, search_date=not entry_published)
    else:
        fields = _extract_plain(text_in, markdown=kind == "markdown")
    text = fields["text"].strip()
    if len(text) < min_chars:
        raise NoArticle(f"{url}: only {len(text)} characters of article text (minimum {min_chars})")
    if len(text) > max_chars:
        log.info("%s: article text cut from %d to %d characters (extract.max_text_chars)", url, len(text), max_chars)
        text = cut_text(text, max_chars)
    return Article(
        url=url,
        feed_id=feed_id,
        title=(fields["title"] or _clean_line(entry_title))[:META_MAX["title"]],
        text=text,
        author=fields["author"][:META_MAX["author"]],
        published=fields["published"] or entry_published or None,
        site_name=fields["site_name"][:META_MAX["site_name"]],
        language=detect_language(text),
        source=source or fields["site_name"],
    )


def load_date_parser() -> None:
    """Load, in this process, what a worker's extensive date search would otherwise load at its first use: htmldate's
    date parser (dateparser) with every locale's data and patterns. With workers.preload_date_parser the daemon's
    warm-up calls it before its workers fork, so they share one copy and a fresh worker starts warm.

    The extensive search hands dateparser the date-like strings it finds in a page (in any language; with no language
    given, dateparser tries its locales in turn, loading each on first use; a string that no locale parses makes it
    load them all): ~45 MB and 1-3 s of CPU a worker. Extraction runs it only for a page whose date htmldate's fast
    search does not find, of a feed entry without a date (_extract_html), so by default nothing is preloaded.
    """
    from htmldate import extractors

    extractors.month_words()
    extractors.get_external_parser().get_date_data("zzqx 77 qqzx")


class StopWords:
    """jusText's stop words of every language, lower-cased, in a marisa trie: what trafilatura's second fallback
    classifies a page's paragraphs with when it is given no language.

    trafilatura builds them as a tuple of 154,484 words (trafilatura.external.JT_STOPLIST) and jusText turns that into
    a lower-cased frozenset (justext.core.define_stoplist), ~29 MB of str objects and hash table together (tracemalloc
    in a worker after the corpus pages; 33 MB of RSS); the trie holds the same words in 0.6 MB (1.5 MB of RSS once
    its build's freed heap is handed back), and a word is looked up in it in 0.2 µs instead of 0.07 (a fallback page
    has a few thousand words). Hashable by identity (define_stoplist's cache keys on
    what it is given); `trie` is what jusText looks the words up in (install_stop_words)."""

    __slots__ = ("trie",)

    def __init__(self, words: Iterable[str]) -> None:
        self.trie = marisa_trie.Trie(word.lower() for word in words)  # one word at a time: no transient set

    def __len__(self) -> int:
        return len(self.trie)

    def __contains__(self, word: str) -> bool:
        return word in self.trie


def install_stop_words() -> None:
    """Make trafilatura's second fallback use StopWords: its all-language list is built as StopWords (by
    trafilatura.external.jt_stoplist_init, which trafilatura calls the first time it needs the list), and jusText's
    define_stoplist hands back the trie of a StopWords instead of building a frozenset of it. A list of one language,
    or any other stop list, goes through jusText's own define_stoplist. Run at import; a trafilatura or jusText
    without these names is left as it is (the fallback then builds its own copy, as before)."""
    from justext import core
    from justext.utils import get_stoplist, get_stoplists
    from trafilatura import external

    if getattr(external, "jt_stoplist_init", None) is None or not hasattr(core, "define_stoplist"):
        log.debug("trafilatura's or jusText's stop-word functions are not where expected: not replaced")
        return
    if getattr(core.define_stoplist, "monitor_stop_words", False):
        return
    define = core.define_stoplist

    def jt_stoplist_init() -> StopWords:
        external.JT_STOPLIST = StopWords(word for language in get_stoplists() for word in get_stoplist(language))
        return external.JT_STOPLIST

    def define_stoplist(stoplist: Any) -> Any:
        return stoplist.trie if isinstance(stoplist, StopWords) else define(stoplist)

    define_stoplist.monitor_stop_words = True  # type: ignore[attr-defined]
    external.jt_stoplist_init = jt_stoplist_init
    core.define_stoplist = define_stoplist


def load_fallback_stoplist() -> None:
    """Build, in this process, what trafilatura's second fallback (jusText) builds at a worker's first page that needs
    it: with no language given, jusText classifies with every language's stop words at once (StopWords, ~1.5 MB; 0.2 s).
    The daemon's warm-up calls it before its workers fork, so they share one copy instead of building one each."""
    from trafilatura import external

    external.JT_STOPLIST or external.jt_stoplist_init()


def cut_text(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars`, at the last white space of its last 1,000 characters if there is one."""
    cut = text[:max_chars]
    space = max(cut.rfind(" ", max_chars - 1000), cut.rfind("\n", max_chars - 1000)) if max_chars > 1000 else -1
    return (cut[:space] if space > 0 else cut).rstrip()


def content_kind(content_type: str, url: str) -> str | None:
    """"html", "text" or "markdown" by the content type, else by the URL suffix; None for non-article types."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in HTML_TYPES:
        return "html"
    if mime in TEXT_TYPES:
        return TEXT_TYPES[mime]
    if mime and mime not in ("application/octet-stream", "binary/octet-stream", "text/x-unknown"):
        return None  # pdf, images, json...: not something trafilatura or we can read as an article
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    return SUFFIX_KINDS.get(suffix, "html")


def decode_body(body: bytes, *, content_type: str = "", encoding: str | None = None) -> str:
    """Bytes to text: byte-order mark, declared charset, <meta> charset; with neither (as browsers do, a declaration
    is believed), UTF-8 if the bytes are UTF-8, else the charset charset_normalizer detects (detect_charset); UTF-8
    with replacement characters last."""
    for bom, codec in BOMS:
        if body.startswith(bom):
            return body.decode(codec, errors="replace")
    meta = META_CHARSET.search(body[:4096])
    declared = [codec for codec in (_codec(encoding or _charset_param(content_type)),
                                    _codec(meta.group(1).decode("ascii", "replace") if meta else None)) if codec]
    for codec in declared or _undeclared_guesses(body):
        if codec is None:
            continue
        try:
            return body.decode(codec)
        except UnicodeDecodeError:
            log.debug("body does not decode as charset %s; trying the next guess", codec)
    return body.decode("utf-8", errors="replace")


def _undeclared_guesses(body: bytes) -> Iterator[str | None]:
    yield "utf-8"
    yield _codec(detect_charset(body))  # only reached when the bytes are not UTF-8


def detect_charset(body: bytes) -> str | None:
    """The charset of bytes that are not UTF-8, as charset_normalizer (what trafilatura uses) detects it, or None.

    The whole page is given to it (it samples by itself; 0.2 s for 10 MB): trafilatura's shortcut, the first and
    last 5,000 bytes, is mostly markup and took a Ukrainian windows-1251 page for Baltic cp1257. Among equally good
    candidates windows-1252 wins, the WHATWG default for an undeclared page: with few non-ASCII letters (a German
    page that writes most umlauts as &uuml;) charset_normalizer cannot tell cp1252 from cp775 or cp850.
    """
    from charset_normalizer import from_bytes  # only for the rare undeclared, non-UTF-8 page

    candidates = [m for m in from_bytes(body) if _decodes(body, m.encoding)]
    if not candidates:
        return None
    least = min(m.chaos for m in candidates)
    tied = [m for m in candidates if m.chaos <= least + CHAOS_TIE]
    return "cp1252" if any("cp1252" in m.could_be_from_charset for m in tied) else tied[0].encoding


def _decodes(body: bytes, codec: str) -> bool:
    try:
        body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _charset_param(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = CHARSET_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _extract_html(html: str, url: str, *, search_date: bool = True) -> dict[str, str]:
    """trafilatura's main text and metadata; its failures on hostile markup become NoArticle.

    The page's date comes from htmldate's fast search (markup, metadata, the URL, date-like text matched by its own
    patterns). Only where that finds none and `search_date` (the feed entry gave no date) does htmldate search the
    page again extensively, handing the date-like strings it cannot read itself to dateparser. Over the corpus pages
    the two give the same date on 139 of 141 and the extensive search finds one on the other two; what it costs is
    dateparser's locales, ~45 MB a worker once loaded (docs/decisions.md, "Page dates").
    """
    try:
        with _faster_trafilatura():
            doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                              include_tables=True, deduplicate=False,
                                              date_extraction_params=set_date_params(False))
        if doc is not None and not doc.date and search_date:
            tree = parse_html(html)  # (trafilatura's tree is cleaned by now; the search reads the page as it was)
            doc.date = _extensive_date(html if tree is None else tree, doc.url or url)
    except (ValueError, TypeError, AttributeError, IndexError, RecursionError, etree.LxmlError) as exc:
        raise NoArticle(f"{url}: extraction failed: {type(exc).__name__}: {exc}") from exc
    if doc is None:
        raise NoArticle(f"{url}: no main text found in the HTML")
    return {
        "text": doc.text or "",
        "title": _clean_line(doc.title or ""),
        "author": _clean_line(doc.author or ""),
        "published": _iso_date(doc.date or ""),
        "site_name": _clean_line(doc.sitename or ""),
    }


def _extensive_date(page: Any, url: str) -> str | None:
    """htmldate's extensive search (what trafilatura runs by default); a failure of it costs the date, not the page."""
    try:
        return find_date(page, **set_date_params(True), url=url)
    except (ValueError, TypeError, AttributeError, IndexError, OverflowError, RecursionError, etree.LxmlError) as exc:
        log.debug("%s: extensive date search failed: %s: %s", url, type(exc).__name__, exc)
        return None


def parse_html(html: str) -> lxml_html.HtmlElement | None:
    """The page's tree as trafilatura's load_html makes it from a string (the same repairs, the same parser settings,
    HTML_PARSER's faster class lookup), or None where load_html would take another road (a string lxml refuses, such
    as one with an XML encoding declaration; a tree without children; markup that does not look like HTML): the
    string then goes to htmldate as it is. What the extensive date search reads (_extract_html)."""
    beginning = html[:50].lower()
    try:
        tree = lxml_html.fromstring(repair_faulty_html(html, beginning), parser=HTML_PARSER)
    except (ValueError, etree.LxmlError):
        return None
    if tree is None or len(tree) < 1 or ("html" not in beginning and len(tree) < 2):
        return None
    return tree


def _extract_plain(text: str, *, markdown: bool) -> dict[str, str]:
    """Text files (seeds are scraped pages): headline line, optional "Date:" line, the rest is the body."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    title_at = _title_line(lines, markdown=markdown)
    published, date_at = None, None
    for i, line in enumerate(lines[:40]):
        m = DATE_LINE.match(line)
        if m and (published := _iso_date(m.group(1))):
            date_at = i
            break
    title = _clean_line(lines[title_at].lstrip("#")) if title_at is not None else ""
    # Keep what follows the headline; lines above it are navigation (or the headline again inside a breadcrumb).
    start = title_at + 1 if title_at is not None else 0
    body = "\n".join(line for i, line in enumerate(lines[start:], start) if i != date_at).strip()
    if not body and title:
        body, title = title, ""  # a headline alone is the text
    return {"text": body, "title": title, "author": "", "published": published or "", "site_name": ""}


def _title_line(lines: list[str], *, markdown: bool) -> int | None:
    """Index of the headline: the first "# " heading in Markdown, else the first headline-shaped line near the top."""
    if markdown:
        for i, line in enumerate(lines[:60]):
            if re.match(r"^#\s+\S", line):
                return i
    first = next((i for i, line in enumerate(lines[:15]) if line.strip()), None)
    if first is not None and first + 1 < len(lines) and not lines[first + 1].strip():
        clean = _clean_line(lines[first])
        if len(clean) <= 200 and not clean.endswith((".", ";", ",")) and not BREADCRUMB.search(clean):
            return first  # a short first line standing alone ("Deal", a headline) is the title
    for i, line in enumerate(lines[:15]):
        clean = _clean_line(line)
        words = clean.split()
        if not 3 <= len(words) <= 40 or len(clean) > 300:
            continue
        if BREADCRUMB.search(clean) or DATE_LINE.match(clean):
            continue
        if clean.endswith((".", ":", ";")) and len(words) > 25:
            continue  # a first paragraph, not a headline
        return i
    return None


def _clean_line(line: str) -> str:
    return " ".join(unicodedata.normalize("NFC", line).split())


def _iso_date(value: str) -> str:
    """"YYYY-MM-DD" of a date string in any common form, "" when it is not one."""
    value = value.strip()
    if not value:
        return ""
    m = re.match(r"(\d{4})-(\d{1,2})-(\d{1,2})", value)
    try:
        if m:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        from dateutil import parser as dateparser

        return dateparser.parse(value, fuzzy=False).date().isoformat()
    except (ValueError, OverflowError, TypeError):
        return ""


install_stop_words()

__all__ = ["ExtractSettings", "NoArticle", "StopWords", "extract_article", "detect_language", "content_kind",
           "decode_body", "load_date_parser", "load_fallback_stoplist"]
