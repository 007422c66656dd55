"""The RSS 2.0 / Atom 1.0 fast path (monitor/sources/fastfeed.py) gives what feedparser gives, and declines what it
cannot.

Every corpus feed the fast path accepts is parsed both ways: the Entries (every field) and feedparser's parsed-entry
fields that feed.py reads or may read (title, links, id, dates, summary, content, author, tags) must be equal.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from monitor.sources import feed as feedmod
from monitor.sources.fastfeed import parse_fast

ENTRY_KEYS = ("title", "title_detail", "link", "links", "id", "guidislink", "published", "published_parsed",
              "updated", "updated_parsed", "summary", "summary_detail", "content", "author", "author_detail",
              "authors", "tags", "comments")
URL = "http://127.0.0.1/feeds/"


def _xml_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "feeds").rglob("*")
                  if p.is_file() and p.suffix != ".json" and "jsonfeed" not in p.parts)


def _both_ways(path: Path, root: Path) -> tuple[object, object, object, object] | None:
    """(fast result, feedparser result, fast ParsedFeed, feedparser ParsedFeed), or None when declined."""
    body = feedmod.gunzip_body(path.read_bytes(), url="x")
    url = URL + path.relative_to(root / "feeds").as_posix()
    try:
        prepared, content_type, _, note = feedmod._prepare_xml(body, url, "")
    except feedmod.PermanentError:
        return None
    fast = parse_fast(prepared, url) if note is None else None
    if fast is None:
        return None
    slow = feedmod._run_feedparser(prepared, url, content_type)
    return (fast, slow, feedmod.parse_xml_feed(body, feed_id="f", url=url),
            feedmod.parse_xml_feed(body, feed_id="f", url=url, fast=False))


def _differences(fast, slow) -> list[str]:
    out = [] if fast["version"] == slow.get("version") and not slow.get("bozo") else ["version/bozo"]
    if len(fast["entries"]) != len(slow["entries"]):
        return out + [f"{len(fast['entries'])} entries against {len(slow['entries'])}"]
    for i, (a, b) in enumerate(zip(fast["entries"], slow["entries"])):
        out += [f"entry {i} {key}: {dict.get(a, key)!r} != {dict.get(b, key)!r}" for key in ENTRY_KEYS
                if dict.get(a, key) != dict.get(b, key)]  # the stored keys, not FeedParserDict's fallbacks
    out += [f"feed {key}" for key in ("title", "title_detail") if fast["feed"].get(key) != slow["feed"].get(key)]
    return out


def _sweep(root: Path) -> Counter[str]:
    """How many corpus feeds the fast path took, by version; each of them compared with feedparser's result."""
    accepted: Counter[str] = Counter()
    for path in _xml_files(root):
        both = _both_ways(path, root)
        if both is None:
            continue
        fast, slow, fast_parsed, slow_parsed = both
        accepted[fast["version"]] += 1
        assert _differences(fast, slow) == [], path
        assert fast_parsed == slow_parsed, path  # every Entry field, the feed title, bozo, version, skipped
    return accepted


def test_fast_path_gives_feedparsers_entries_on_the_corpus(corpus):
    # of the subset's 209 XML feeds 43 are plain RSS 2.0 and 19 plain Atom 1.0 (see BENCHMARKS.md); the rest
    # (other namespaces, XHTML, RSS 1.0, xml:base in RSS, ill-formed...) must go to feedparser
    accepted = _sweep(corpus)
    assert accepted["rss20"] >= 40 and accepted["atom10"] >= 15, accepted


def test_fast_path_gives_feedparsers_entries_on_the_whole_corpus(full_corpus):
    accepted = _sweep(full_corpus)  # 50 RSS 2.0, 30 Atom 1.0 of 277 on 2026-12-01
    assert accepted["rss20"] >= 40 and accepted["atom10"] >= 25, accepted


PLAIN = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
         b'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
         b'<channel><title>T &amp; co</title><link>http://example.org/</link>'
         b'<item><title>A &lt;b&gt;bold&lt;/b&gt; claim</title><link>/a?x=1&amp;y=2</link>'
         b'<guid isPermaLink="false">id-1</guid><pubDate>Tue, 01 Dec 2026 10:00:00 GMT</pubDate>'
         b'<description><![CDATA[<p>See <a href="/rel">this</a><script>x()</script></p>]]></description>'
         b'<content:encoded><![CDATA[<p>Full <img src="i.png"> text</p>]]></content:encoded>'
         b'<dc:creator>Ann (ann@example.org)</dc:creator><category domain="d">World</category>'
         b'<category>Sport</category><enclosure url="http://example.org/a.mp3" length="1" type="audio/mpeg"/>'
         b'</item><item><guid>http://example.org/b</guid><description>plain</description></item>'
         b'</channel></rss>')


def test_fast_path_reproduces_markup_links_authors_and_tags():
    url = "http://127.0.0.1/feed.xml"
    fast = parse_fast(PLAIN, url)
    assert fast is not None
    slow = feedmod._run_feedparser(PLAIN, url, "application/rss+xml; charset=utf-8")
    assert _differences(fast, slow) == []
    assert fast["entries"][0]["content"][0]["value"] == '<p>Full <img src="http://127.0.0.1/i.png" /> text</p>'
    assert "script" not in fast["entries"][0]["summary"]
    assert feedmod.parse_xml_feed(PLAIN, feed_id="f", url=url) == \
        feedmod.parse_xml_feed(PLAIN, feed_id="f", url=url, fast=False)


@pytest.mark.parametrize("change", [
    (b"<?xml version=\"1.0\" encoding=\"utf-8\"?>", b"<?xml version=\"1.0\"?><!DOCTYPE rss [<!ENTITY e \"x\">]>"),
    (b"<title>T &amp; co</title>", b"<title>T &e; co</title>"),  # an undefined entity: ill-formed
    (b"<item><title>", b"<item xml:base=\"http://other.example/\"><title>"),
    (b"<item><title>", b"<item><media:title xmlns:media=\"http://search.yahoo.com/mrss/\">m</media:title><title>"),
    (b"<dc:creator>", b"<author>a@example.org</author><dc:creator>"),  # two authors
    (b"</channel>", b"</channel><item><title>outside</title></item>"),
    (b'<rss version="2.0"', b'<rss version="0.91"'),
    (b"plain</description>", b"plain <b>bold</b></description>"),  # markup as elements, not text
    (b"<title>A", b"<title type=\"html\">A"),
])
def test_fast_path_declines_what_it_does_not_reproduce(change):
    body = PLAIN.replace(*change)
    assert body != PLAIN
    assert parse_fast(body, "http://127.0.0.1/feed.xml") is None


def test_a_declined_document_still_parses_through_feedparser():
    body = PLAIN.replace(b"<item><title>", b"<item><itunes:duration xmlns:itunes="
                         b"\"http://www.itunes.com/dtds/podcast-1.0.dtd\">1:00</itunes:duration><title>")
    assert parse_fast(body, "http://127.0.0.1/feed.xml") is None
    parsed = feedmod.parse_xml_feed(body, feed_id="f", url="http://127.0.0.1/feed.xml")
    assert [e.url for e in parsed.entries] == ["http://127.0.0.1/a?x=1&y=2", "http://example.org/b"]


def test_entity_bomb_is_never_expanded_on_either_path():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><rss version="2.0"><channel><title>&c;</title>'
            b'<item><title>&c;&c;&c;</title><link>http://example.org/x</link></item></channel></rss>')
    assert parse_fast(bomb, "http://127.0.0.1/feed.xml") is None
    parsed = feedmod.parse_feed(bomb, feed_id="f", url="http://127.0.0.1/feed.xml")
    assert all("aaaaaaaaaa" not in e.title for e in parsed.entries)


ATOM = (b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title type="html">'
        b'T &amp;amp; co</title><id>urn:feed</id><updated>2026-12-01T10:00:00Z</updated>'
        b'<entry><title>A &lt;b&gt; claim</title><id>tag:example.org,2026:1</id>'
        b'<link rel="alternate" type="text/html" href="/a?x=1&amp;y=2"/><link rel="replies" href="/a#c"/>'
        b'<published>2026-12-01T10:00:00+01:00</published><updated>2026-12-01T11:00:00Z</updated>'
        b'<author><name>Ann</name><email>ann@example.org</email><uri>/ann</uri></author>'
        b'<summary type="html">&lt;p&gt;See &lt;a href="/rel"&gt;this&lt;/a&gt;&lt;script&gt;x()&lt;/script&gt;'
        b'&lt;/p&gt;</summary><content type="html"><![CDATA[<p>Full <img src="i.png"> text</p>]]></content>'
        b'<category term="world" scheme="http://example.org/s" label="World"/><category term="sport"/></entry>'
        b'<entry><id>http://example.org/b</id><title>B</title><content>plain &amp; simple</content></entry>'
        b'<entry><content type="text">first</content><summary>then</summary><link href="http://example.org/c"/>'
        b'<id>c</id></entry></feed>')


def test_atom_fast_path_reproduces_text_constructs_links_authors_and_tags():
    url = "http://127.0.0.1/atom.xml"
    fast = parse_fast(ATOM, url)
    assert fast is not None and fast["version"] == "atom10"
    slow = feedmod._run_feedparser(ATOM, url, "application/atom+xml; charset=utf-8")
    assert _differences(fast, slow) == []
    first = fast["entries"][0]
    assert first["link"] == "http://127.0.0.1/a?x=1&y=2" and first["author"] == "Ann (ann@example.org)"
    assert first["content"][0]["value"] == '<p>Full <img src="http://127.0.0.1/i.png" /> text</p>'
    assert "script" not in first["summary"]
    assert fast["entries"][1]["link"] == "http://example.org/b"  # no link element: feedparser's link is the id
    assert feedmod.parse_xml_feed(ATOM, feed_id="f", url=url) == \
        feedmod.parse_xml_feed(ATOM, feed_id="f", url=url, fast=False)


def test_atom_fast_path_keeps_xml_base_and_xml_lang_in_scope_as_feedparser_does():
    body = (ATOM.replace(b'<feed xmlns="http://www.w3.org/2005/Atom">',
                         b'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en_GB" xml:base="/blog/">')
            .replace(b"<entry><title>A", b'<entry xml:base="posts/" xml:lang="de"><title>A')
            .replace(b'<content type="html">', b'<content type="html" xml:base="http://cdn.example.org/x/" '
                                               b'xml:lang="">')
            .replace(b'href="/a?x=1', b'href="a?x=1')
            .replace(b'<link rel="replies" href="/a#c"/>', b'<link xml:base="/other/" rel="replies" href="c"/>'))
    url = "http://127.0.0.1/atom.xml"
    fast = parse_fast(body, url)
    assert fast is not None
    slow = feedmod._run_feedparser(body, url, "application/atom+xml; charset=utf-8")
    assert _differences(fast, slow) == []
    assert dict.get(fast["feed"], "language") == dict.get(slow["feed"], "language") == "en-GB"
    first = fast["entries"][0]
    assert first["link"] == "http://127.0.0.1/blog/posts/a?x=1&y=2"
    assert first["links"][1]["href"] == "http://127.0.0.1/other/c" and first["links"][1]["xml:base"] == "/other/"
    assert first["content"][0]["value"] == '<p>Full <img src="http://cdn.example.org/x/i.png" /> text</p>'
    assert first["title_detail"]["language"] == "de" and first["content"][0]["language"] is None
    assert feedmod.parse_xml_feed(body, feed_id="f", url=url) == \
        feedmod.parse_xml_feed(body, feed_id="f", url=url, fast=False)


@pytest.mark.parametrize("change", [
    (b"<entry><title>", b"<entry lang=\"de\"><title>"),  # feedparser reads a plain lang (and base) as xml:'s
    (b"<title>B</title>", b"<title base=\"/x/\">B</title>"),
    (b'<content type="html">', b'<content type="xhtml">'),  # XHTML: markup as elements
    (b"<content>plain", b'<content src="http://example.org/x" type="text/plain">plain'),
    (b"<entry><title>", b"<entry><media:title xmlns:media=\"http://search.yahoo.com/mrss/\">m</media:title><title>"),
    (b"<entry><title>", b"<entry><contributor><name>Bo</name></contributor><title>"),
    (b"</author>", b"</author><author><name>Bo</name></author>"),  # two authors
    (b"<author><name>", b"<author>Ann<name>"),  # text of the author element itself
    (b'<link rel="replies" href="/a#c"/>', b"<link>/a</link>"),  # a link by its text, as in RSS
    (b'<link rel="replies"', b'<link xmlns:thr="http://purl.org/syndication/thread/1.0" thr:count="2" rel="replies"'),
    (b"<feed xmlns", b"<feed xmlns:rss=\"http://purl.org/rss/1.0/\" xmlns"),  # feedparser would say rss10
    (b"</feed>", b"<source><entry><title>x</title></entry></source></feed>"),
    (b"<title>B</title>", b"<title>B</title><title>C</title>"),
])
def test_atom_fast_path_declines_what_it_does_not_reproduce(change):
    body = ATOM.replace(*change)
    assert body != ATOM
    assert parse_fast(ATOM, "http://127.0.0.1/atom.xml") is not None
    assert parse_fast(body, "http://127.0.0.1/atom.xml") is None
