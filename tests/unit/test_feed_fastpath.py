"""The RSS 2.0 fast path (monitor/sources/fastfeed.py) gives what feedparser gives, and declines what it cannot.

Every corpus feed the fast path accepts is parsed both ways: the Entries (every field) and feedparser's parsed-entry
fields that feed.py reads or may read (title, links, id, dates, summary, content, author, tags) must be equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.sources import feed as feedmod
from monitor.sources.fastfeed import parse_rss

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
    fast = parse_rss(prepared, url) if note is None else None
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


def _sweep(root: Path) -> int:
    accepted = 0
    for path in _xml_files(root):
        both = _both_ways(path, root)
        if both is None:
            continue
        accepted += 1
        fast, slow, fast_parsed, slow_parsed = both
        assert _differences(fast, slow) == [], path
        assert fast_parsed == slow_parsed, path  # every Entry field, the feed title, bozo, version, skipped
    return accepted


def test_fast_path_gives_feedparsers_entries_on_the_corpus(corpus):
    # 43 of the subset's 209 XML feeds are plain RSS 2.0 (see BENCHMARKS.md); the rest must go to feedparser
    assert _sweep(corpus) >= 40


def test_fast_path_gives_feedparsers_entries_on_the_whole_corpus(full_corpus):
    assert _sweep(full_corpus) >= 40


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
    fast = parse_rss(PLAIN, url)
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
    assert parse_rss(body, "http://127.0.0.1/feed.xml") is None


def test_a_declined_document_still_parses_through_feedparser():
    body = PLAIN.replace(b"<item><title>", b"<item><itunes:duration xmlns:itunes="
                         b"\"http://www.itunes.com/dtds/podcast-1.0.dtd\">1:00</itunes:duration><title>")
    assert parse_rss(body, "http://127.0.0.1/feed.xml") is None
    parsed = feedmod.parse_xml_feed(body, feed_id="f", url="http://127.0.0.1/feed.xml")
    assert [e.url for e in parsed.entries] == ["http://127.0.0.1/a?x=1&y=2", "http://example.org/b"]


def test_entity_bomb_is_never_expanded_on_either_path():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><rss version="2.0"><channel><title>&c;</title>'
            b'<item><title>&c;&c;&c;</title><link>http://example.org/x</link></item></channel></rss>')
    assert parse_rss(bomb, "http://127.0.0.1/feed.xml") is None
    parsed = feedmod.parse_feed(bomb, feed_id="f", url="http://127.0.0.1/feed.xml")
    assert all("aaaaaaaaaa" not in e.title for e in parsed.entries)
