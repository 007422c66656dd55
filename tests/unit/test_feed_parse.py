"""parse_feed on bytes: DOCTYPE stripping, JSON Feed, relative links, canonical URLs, bozo feeds, not-a-feed errors."""

from __future__ import annotations

import gzip
import json

import pytest

from monitor.errors import PermanentError
from monitor.sources.feed import parse_feed, strip_doctype

URL = "http://feeds.example.org/world/rss.xml"


def rss(items: str, *, title: str = "World News", extra_head: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>{extra_head}\n<rss version="2.0"><channel><title>{title}</title>'
            f"<link>http://example.org/</link>{items}</channel></rss>").encode()


def parse(body: bytes, **kw) -> object:
    return parse_feed(body, feed_id="f1", url=kw.pop("url", URL), **kw)


def test_a_large_entity_of_the_internal_subset_never_expands():
    big = "x" * 5000
    head = f'<!DOCTYPE rss [ <!ENTITY big "{big}"> <!ENTITY q "a]>b"> ]>'
    body = rss("<item><title>t &big;&big;&big;</title><link>http://example.org/1</link></item>", extra_head=head)
    parsed = parse(body)
    assert [e.url for e in parsed.entries] == ["http://example.org/1"]
    assert big not in parsed.entries[0].title


def test_strip_doctype_removes_subset_with_brackets_in_quotes_and_comments():
    body = b'<?xml version="1.0"?><!DOCTYPE x [ <!-- ] > --> <!ENTITY a "]>"> ]><rss/>'
    assert strip_doctype(body) == b'<?xml version="1.0"?><rss/>'


def test_strip_doctype_leaves_text_after_the_root_alone():
    body = b"<rss><channel><description>&lt;!DOCTYPE x&gt; <!DOCTYPE y></description></channel></rss>"
    assert strip_doctype(body) == body


def test_utf16_feed_with_doctype_is_parsed():
    text = ('<?xml version="1.0" encoding="utf-16"?><!DOCTYPE rss [<!ENTITY e "zzz">]>'
            '<rss version="2.0"><channel><title>Новости</title><item><title>Привет</title>'
            "<link>http://example.org/ru/1</link></item></channel></rss>")
    parsed = parse(text.encode("utf-16"))
    assert parsed.title == "Новости"
    assert [(e.title, e.url) for e in parsed.entries] == [("Привет", "http://example.org/ru/1")]


# Nested internal entities: 10^5 x "lol" once expanded. Each document below hides its DOCTYPE from a byte-level look.
_ENTITIES = '<!ENTITY e0 "lol">' + "".join(f'<!ENTITY e{i} "{("&e%d;" % (i - 1)) * 10}">' for i in range(1, 6))
_BOMB_ITEM = ('<rss version="2.0"><channel><title>T</title><item><title>&e5;</title>'
              "<link>http://example.org/bomb</link></item></channel></rss>")


def _bomb(decl: str, doctype_open: str = "<!DOCTYPE rss [", before: str = "") -> str:
    return decl + before + doctype_open + _ENTITIES + "]>" + _BOMB_ITEM


@pytest.mark.parametrize("body, content_type", [
    (_bomb('<?xml version="1.0" encoding="cp037"?>').encode("cp037"), ""),  # EBCDIC
    (_bomb('<?xml version="1.0" encoding="cp500"?>').encode("cp500"), "application/rss+xml"),
    (_bomb('<?xml version="1.0" encoding="cp1140"?>').encode("cp1140"), "application/xml"),
    (_bomb("", before="<!-- x -->").encode("utf-16-le"), "application/xml; charset=utf-16le"),  # no BOM, no '<?'
    (_bomb('<?xml version="1.0" encoding="utf-7"?>', doctype_open="+ADw-!DOCTYPE rss [").encode(), ""),
    (_bomb('<?xml version="1.0" encoding="utf-8"?>', before="<!-- <a -->").encode(), ""),  # '<a' in a comment
    (_bomb('<?xml version="1.0" encoding="utf-8"?>', before="<?pi <b?>").encode(), ""),  # '<b' in a PI
], ids=["cp037", "cp500", "cp1140", "utf16le-by-header", "utf7", "comment-before", "pi-before"])
def test_entities_never_expand_whatever_the_encoding_or_what_precedes_the_doctype(body, content_type):
    parsed = parse(body, content_type=content_type)
    [entry] = parsed.entries
    assert entry.url == "http://example.org/bomb"
    assert "lol" not in entry.title and len(entry.title) < 20


def test_a_doctype_inside_a_comment_is_left_alone_and_the_real_one_after_it_is_removed():
    body = b'<?xml version="1.0"?>\n<!-- <!DOCTYPE x [ <!ENTITY a "b"> ]> -->\n<!DOCTYPE rss [\n<!ENTITY c "d">\n]><rss/>'
    assert strip_doctype(body) == b'<?xml version="1.0"?>\n<!-- <!DOCTYPE x [ <!ENTITY a "b"> ]> -->\n\n\n<rss/>'


def test_every_entry_field_is_capped_and_an_overlong_link_skips_the_entry():
    huge = "word " * 20000
    body = rss(f"<item><title>{huge}</title><description>{huge}</description><guid>{'g' * 5000}</guid>"
               "<link>http://example.org/long-fields</link></item>"
               f"<item><title>long link</title><link>http://example.org/{'p' * 5000}</link></item>",
               title="feed " * 1000)
    parsed = parse(body)
    [entry] = parsed.entries
    assert (len(entry.title), len(entry.summary), len(entry.entry_id)) == (1000, 2000, 1000)
    assert entry.title.startswith("word word") and len(entry.source) == len(parsed.title) == 300
    assert parsed.skipped == 1


def test_json_feed_items_become_entries():
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "JSON News",
           "feed_url": "https://json.example.com/feed.json",
           "items": [
               {"id": "1", "url": "/posts/1?utm_medium=feed", "title": "One",
                "content_html": "<p>Hello &amp; bye</p>", "date_published": "2024-03-01T10:00:00+02:00"},
               {"id": "https://json.example.com/posts/2", "title": "Two"},
               {"id": "urn:uuid:3", "title": "No link"},
           ]}
    parsed = parse(json.dumps(doc).encode(), url="https://json.example.com/feed.json",
                   content_type="application/feed+json")
    assert parsed.version == "json11"
    assert parsed.title == "JSON News"
    assert [e.url for e in parsed.entries] == ["https://json.example.com/posts/1", "https://json.example.com/posts/2"]
    first = parsed.entries[0]
    assert (first.summary, first.published, first.source) == ("Hello & bye", "2024-03-01T08:00:00+00:00", "JSON News")
    assert parsed.skipped == 1


def test_json_that_is_not_a_json_feed_is_refused_with_reason():
    with pytest.raises(PermanentError, match=r"not a feed: JSON syntax error at line 2"):
        parse(b'{"items": [\n  oops]}')
    with pytest.raises(PermanentError, match=r"not a JSON Feed"):
        parse(b'{"hello": "world"}')


def test_relative_links_resolve_against_xml_base_and_feed_url():
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://example.com/news/">
      <title>Base</title>
      <entry><title>a</title><link href="a/1.html"/><id>t1</id></entry>
      <entry xml:base="http://other.example.com/x/"><title>b</title><link href="../b.html"/><id>t2</id></entry>
    </feed>"""
    assert [e.url for e in parse(atom).entries] == [
        "http://example.com/news/a/1.html", "http://other.example.com/b.html"]
    no_base = rss("<item><title>r</title><link>/world/2024/story.html</link></item>")
    assert [e.url for e in parse(no_base).entries] == ["http://feeds.example.org/world/2024/story.html"]


def test_tracking_parameters_and_fragment_are_dropped_from_entry_url():
    body = rss("<item><title>t</title>"
               "<link>HTTP://Example.ORG:80/a?id=3&amp;utm_source=rss&amp;fbclid=z#top</link></item>")
    entry = parse(body).entries[0]
    assert entry.url == "http://example.org/a?id=3"
    assert "utm_source" in entry.link


def test_bozo_feed_keeps_its_valid_entries():
    body = rss("<item><title>Fish & Chips</title><link>http://example.org/fish</link></item>"
               "<item><title>Second</title><link>http://example.org/2</link></item>")
    parsed = parse(body)
    assert parsed.bozo
    assert "XML syntax error at line" in parsed.bozo_reason
    assert [e.url for e in parsed.entries] == ["http://example.org/fish", "http://example.org/2"]


@pytest.mark.parametrize("body, reason", [
    (b"", "empty body"),
    (b"  \n\t ", "empty body"),
    (b"<!DOCTYPE html>\n<html><head><title>Hi</title></head><body>x</body></html>", "HTML page, not a feed"),
    (b"<!-- nothing -->\n<note><to>x</note>", "XML syntax error at line 2"),
    (b"<?xml version='1.0'?><note><to>Tove</to></note>", "root element <note>"),
])
def test_body_without_any_feed_is_a_permanent_error_with_reason(body, reason):
    with pytest.raises(PermanentError) as caught:
        parse(body)
    assert str(caught.value).startswith(f"{URL}: not a feed: ")
    assert reason in str(caught.value)


def test_valid_feed_without_items_is_an_empty_feed_not_an_error():
    parsed = parse(rss(""))
    assert (parsed.entries, parsed.bozo, parsed.version) == ((), False, "rss20")


def test_gzip_compressed_body_is_decompressed():
    body = gzip.compress(rss("<item><title>z</title><link>http://example.org/z</link></item>"))
    assert [e.url for e in parse(body).entries] == ["http://example.org/z"]


def test_entries_repeating_a_url_appear_once():
    item = "<item><title>{}</title><link>http://example.org/same?utm_campaign={}</link></item>"
    parsed = parse(rss(item.format("first", 1) + item.format("again", 2)))
    assert [e.title for e in parsed.entries] == ["first"]


def test_published_is_iso8601_utc():
    body = rss("<item><title>d</title><link>http://example.org/d</link>"
               "<pubDate>Tue, 10 Jun 2003 04:00:00 +0200</pubDate></item>"
               "<item><title>n</title><link>http://example.org/n</link></item>")
    assert [e.published for e in parse(body).entries] == ["2003-06-10T02:00:00+00:00", None]


def test_entry_without_link_uses_http_guid_else_is_skipped_and_counted():
    body = rss('<item><title>g</title><guid isPermaLink="false">https://example.org/by-guid</guid></item>'
               '<item><title>x</title><guid isPermaLink="false">urn:x:1</guid></item>'
               "<item><title>j</title><link>javascript:alert(1)</link></item>")
    parsed = parse(body)
    assert [e.url for e in parsed.entries] == ["https://example.org/by-guid"]
    assert parsed.skipped == 2


def test_entry_source_is_feed_title_else_given_source():
    item = "<item><title>s</title><link>http://example.org/s</link></item>"
    assert parse(rss(item), source="Configured").entries[0].source == "World News"
    assert parse(rss(item, title=""), source="Configured").entries[0].source == "Configured"


# --- issue 12: ingestion defects found on other projects' test data ------------------------------------------------

def corpus_feed(corpus, rel: str, **kw) -> object:
    return parse((corpus / "feeds" / rel).read_bytes(), url="http://127.0.0.1/feeds/" + rel, **kw)


def test_posts_anchored_on_one_day_page_are_distinct_entries(corpus):
    # Scripting News: 50 items, each an anchor on its day's page (2017/06/26.html#a080605); two are listed twice
    parsed = corpus_feed(corpus, "real/netnewswire__scriptingNews.rss")
    urls = [e.url for e in parsed.entries]
    assert len(urls) == len(set(urls)) == 48
    assert "http://scripting.com/2017/06/26.html#a080605" in urls
    assert all(e.url == e.entry_id for e in parsed.entries)  # each post's guid is its anchored link


def test_podcast_episodes_sharing_the_show_link_are_distinct_entries(corpus):
    # Taverncast: 131 episodes, 130 distinct guids (the mp3 URLs); 123 link only the show's home page
    parsed = corpus_feed(corpus, "real/rss-parser__itunes-missing-image.rss")
    assert len({e.entry_id for e in parsed.entries}) == len(parsed.entries) == 130
    shared = [e for e in parsed.entries if e.link in ("http://www.taverncast.com", "http://taverncast.com/")]
    assert len(shared) == 123
    assert len({e.url for e in parsed.entries}) == 130
    assert all(e.url.split("#")[1].startswith("guid-") for e in shared)
    again = corpus_feed(corpus, "real/rss-parser__itunes-missing-image.rss")
    assert [e.url for e in again.entries] == [e.url for e in parsed.entries]  # the key of an episode is stable


def test_items_with_one_link_and_one_guid_are_one_entry_whatever_else_differs():
    item = "<item><title>{}</title><link>http://example.org/same?utm_campaign={}</link><guid>g1</guid></item>"
    parsed = parse(rss(item.format("first", 1) + item.format("again", 2)))
    assert [(e.title, e.url) for e in parsed.entries] == [("first", "http://example.org/same")]


def test_hashbang_routes_stay_distinct_and_tracking_fragments_go():
    body = rss("<item><title>a</title><link>http://app.example.org/#!/story/123</link></item>"
               "<item><title>b</title><link>http://app.example.org/#!/story/456</link></item>"
               "<item><title>c</title><link>http://www.leparisien.fr/x-6537822.php#xtor=RSS-1481423633</link></item>"
               "<item><title>d</title><link>http://www.spiegel.de/a-1128846.html#ref=rss</link></item>"
               "<item><title>e</title><link>http://www.macworld.com/article/3238868.html#tk.rss_all</link></item>")
    assert [e.url for e in parse(body).entries] == [
        "http://app.example.org/#!/story/123", "http://app.example.org/#!/story/456",
        "http://www.leparisien.fr/x-6537822.php", "http://www.spiegel.de/a-1128846.html",
        "http://www.macworld.com/article/3238868.html"]


def test_plain_text_titles_stay_as_written_and_only_html_loses_its_tags():
    body = rss("<item><title>Inflation &lt; 2% and rates &gt; 4%: what next</title>"
               "<description>Inflation &lt; 2% and rates &gt; 4%: what next</description>"
               "<link>http://example.org/1</link></item>"
               "<item><title>History of the &lt;blink&gt; tag</title>"
               "<description>&lt;p&gt;Tom &amp;amp; Jerry&lt;/p&gt;&lt;p&gt;again&lt;/p&gt;</description>"
               "<link>http://example.org/2</link></item>")
    first, second = parse(body).entries
    assert first.title == first.summary == "Inflation < 2% and rates > 4%: what next"
    assert second.title == "History of the <blink> tag"
    assert second.summary == "Tom & Jerry again"  # HTML: tags dropped, references decoded once


def test_atom_text_constructs_are_decoded_once_by_their_type():
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
      <title type="text">AT&amp;amp;T news</title>
      <entry><title type="text">AT&amp;amp;T &lt;b&gt;deal&lt;/b&gt;</title><link href="http://example.com/1"/>
        <id>tag:example.com,2024:1</id><summary type="html">AT&amp;amp;T &lt;b&gt;deal&lt;/b&gt;</summary></entry>
      <entry><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">a &lt; b <b>bold</b></div></title>
        <link href="http://example.com/2"/><id>tag:example.com,2024:2</id></entry>
    </feed>"""
    parsed = parse(atom)
    first, second = parsed.entries
    assert parsed.title == "AT&amp;T news"
    assert (first.title, first.summary) == ("AT&amp;T <b>deal</b>", "AT&T deal")
    assert second.title == "a < b bold"


def test_json_feed_title_and_summary_are_plain_text_and_content_html_is_html():
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "Q&amp;A <live>",
           "items": [{"id": "1", "url": "https://json.example.com/1", "title": "2 < 3 <b>not bold</b>",
                      "summary": "AT&amp;T"},
                     {"id": "2", "url": "https://json.example.com/2", "title": "t",
                      "content_html": "<p>a &lt; b</p><script>x()</script>"}]}
    parsed = parse(json.dumps(doc).encode(), url="https://json.example.com/feed.json")
    assert parsed.title == "Q&amp;A <live>"
    assert [(e.title, e.summary) for e in parsed.entries] == [("2 < 3 <b>not bold</b>", "AT&amp;T"), ("t", "a < b")]


def test_a_relative_id_is_never_made_into_a_url():
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://example.com/news/">
      <title>Ids</title>
      <entry><title>no link, relative id</title><id>12345</id></entry>
      <entry><title>link after a relative id</title><id>right</id><link href="story/2"/></entry>
      <entry><title>no link, absolute id</title><id>https://example.com/news/3</id></entry>
      <entry><title>enclosure only</title><id>777</id><link rel="enclosure" href="/a.mp3"/></entry>
    </feed>"""
    parsed = parse(atom)
    assert [(e.title, e.url, e.entry_id) for e in parsed.entries] == [
        ("link after a relative id", "http://example.com/news/story/2", "right"),
        ("no link, absolute id", "https://example.com/news/3", "https://example.com/news/3")]
    assert parsed.skipped == 2
    feed = rss("<item><title>p</title><guid>12345</guid></item>"
               "<item><title>q</title><guid>https://example.org/permalink</guid></item>")
    parsed = parse(feed)
    assert [e.url for e in parsed.entries] == ["https://example.org/permalink"] and parsed.skipped == 1


# The shape of FeedWatcher's (zouroboros) "entityInDoctype" test feed, with a link and a title added
ENTITY_FEED = b"""<!DOCTYPE rss [
  <!ENTITY id "tag:example.com,">
  <!ENTITY nbsp "&#160;">
  <!-- <!ENTITY hidden "never"> -->
]>
<rss version="2.0">
    <channel><title>Entities</title>
        <item>
            <guid isPermaLink='false'>&id;2006-05-04:/blog/</guid>
            <link>http://example.com/blog/2006-05-04</link>
            <title>Tea&nbsp;time at &id;</title>
        </item>
    </channel>
</rss>"""


def test_entities_of_the_internal_subset_are_expanded_in_guid_and_title():
    parsed = parse(ENTITY_FEED)
    [entry] = parsed.entries
    assert not parsed.bozo
    assert entry.entry_id == "tag:example.com,2006-05-04:/blog/"
    assert entry.title == "Tea time at tag:example.com,"  # &nbsp; is U+00A0, white space like any other


def test_entities_are_expanded_in_an_ill_formed_feed_too_and_errors_keep_their_line():
    body = ENTITY_FEED.replace(b"<title>Tea", b"<title>Fish & Chips, tea")  # line 11: a bare '&'
    parsed = parse(body)
    assert parsed.bozo and parsed.bozo_reason.startswith("XML syntax error at line 11,")
    assert parsed.entries[0].entry_id == "tag:example.com,2006-05-04:/blog/"


def test_huge_or_nested_or_external_entities_stay_unexpanded():
    wide = "w" * 900
    head = (f'<!DOCTYPE rss [<!ENTITY wide "{wide}"><!ENTITY nest "&wide;&wide;">'
            '<!ENTITY ext SYSTEM "file:///etc/passwd"><!ENTITY % par "x"><!ENTITY ok "fine">]>')
    body = rss("<item><title>&ok; " + "&wide;" * 2000 + "</title><link>http://example.org/w</link></item>"
               "<item><title>&nest; &ext;</title><link>http://example.org/n</link></item>", extra_head=head)
    first, second = parse(body).entries
    assert wide not in first.title + second.title  # 2000 x 900 bytes is over the expansion bound
    assert "root:" not in second.title
    assert first.title.startswith("fine &wide;")  # the small plain entity is expanded, the others stay references


# --- the entry's own full text (fetch_page: auto uses it instead of the page) ------------------------------------

def _corpus_feed(corpus, name: str):
    return parse_feed((corpus / "feeds" / name).read_bytes(), feed_id="f1", url="http://127.0.0.1:8080/feed")


def test_content_encoded_of_a_real_rss_feed_is_the_entry_content_as_plain_text(corpus):
    parsed = _corpus_feed(corpus, "real/feedreader__Rss20NYTimes.xml")
    with_content = [e for e in parsed.entries if e.content]
    assert len(with_content) == 27  # the NYT items that carry content:encoded
    first = parsed.entries[0]
    assert first.content.startswith("U.S. intelligence agencies presented their unanimous conclusions")
    assert first.summary.startswith("President-elect Donald J. Trump left One World Trade Center")  # description
    assert not any("<" in e.content and ">" in e.content for e in with_content)


def test_atom_content_is_the_entry_content(corpus):
    parsed = _corpus_feed(corpus, "real/netnewswire__qemu.atom")
    assert all(len(e.content) >= 200 for e in parsed.entries)
    assert parsed.entries[0].content.startswith("We’d like to announce the availability of the QEMU 10.1.0 release.")
    assert "<p>" not in parsed.entries[0].content


def test_json_feed_content_html_and_content_text_are_the_entry_content(corpus):
    parsed = _corpus_feed(corpus, "jsonfeed/feedjira__json_feed.json")
    assert parsed.entries[0].content.startswith("On Wednesday night I know where I’ll be")
    assert "<a href" not in parsed.entries[0].content
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [
        {"id": "1", "url": "http://example.org/1", "content_text": "Rates < 2% & <b>plain</b> text"}]}).encode()
    [entry] = parse(body).entries
    assert entry.content == "Rates < 2% & <b>plain</b> text"  # content_text is plain: nothing stripped


def test_an_item_without_content_has_none_and_the_summary_stays_the_summary(corpus):
    parsed = _corpus_feed(corpus, "real/feedreader__Rss20Reuters.xml")
    assert all(e.content == "" and len(e.summary) > 100 for e in parsed.entries)


@pytest.mark.parametrize("ref", ["&#xD800;", "&#57343;", "&#x110000;", "&#99999999999;", "&#xFFFFFFFF;", "&#0;",
                                 "&#x00dc00;"])
def test_a_reference_to_no_character_is_the_replacement_character_and_the_feed_keeps_every_entry(ref):
    """feedparser's loose parser raised on one (UnicodeEncodeError, ValueError, OverflowError): the whole feed was
    "not a feed". As in HTML (and in pages, through lxml), such a reference is U+FFFD."""
    body = rss(f"<item><title>Tanks {ref} for Kyiv</title><link>http://example.org/1</link>"
               f"<description>a{ref}b &#8217; &#x10FFFF; &#55295;</description></item>"
               "<item><title>Second</title><link>http://example.org/2</link></item>")
    parsed = parse(body)
    assert [e.title for e in parsed.entries] == ["Tanks \ufffd for Kyiv", "Second"]
    assert parsed.entries[0].summary == "a\ufffdb \u2019 \U0010ffff \ud7ff"  # references to characters stay


def test_lone_surrogates_of_a_json_feed_become_the_replacement_character_in_every_field():
    """json.loads turns "\\ud800" into a lone surrogate, which no store or encoder takes (the article would fail at
    every try): every text field and the URL get U+FFFD instead; a pair stays the character it encodes."""
    item = {"id": "a\\ud800", "url": "http://example.org/1\\udfff", "title": "Tanks \\ud800 for Kyiv",
            "content_text": "Germany sends \\udcff tanks \\ud83d\\ude00"}
    raw = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T\\ud800", "items": [item]})
    parsed = parse(raw.replace("\\\\u", "\\u").encode())
    (entry,) = parsed.entries
    assert parsed.title == "T\ufffd" and entry.source == "T\ufffd"
    assert (entry.entry_id, entry.title) == ("a\ufffd", "Tanks \ufffd for Kyiv")
    assert entry.content == entry.summary == "Germany sends \ufffd tanks \U0001f600"
    assert "\ufffd" in entry.url and entry.url.encode() and entry.link.encode()


@pytest.mark.parametrize("stray, failure", [("</width>", "TypeError"), ("</media:player>", "KeyError: 'media_player'")])
def test_a_feed_feedparser_fails_on_is_read_as_lxml_rebuilds_it_and_keeps_its_items(stray, failure):
    """A stray end tag made feedparser's loose parser raise inside its handlers (int(None) for a </width> it had
    not seen open, a missing key for </media:player>), and the whole feed was "not a feed"."""
    body = (b'<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
            b"<title>T</title><image><url>http://example.org/i.png</url></image>" + stray.encode() +
            b"<item><title>One</title><link>http://example.org/1</link></item>"
            b"<item><title>Two</title><link>http://example.org/2</link></item></channel></rss>")
    parsed = parse(body)
    assert [e.title for e in parsed.entries] == ["One", "Two"]
    assert parsed.bozo and parsed.bozo_reason.startswith("rebuilt after the parser failed") and failure in \
        parsed.bozo_reason


HOSTILE_PIECES = [b"&#x;", b"&#;", b"&#x110000", b"&#1114112", b"&#xFFFFFFFFFFFFFFFFFFFF;", b"\x00", b"\xff\xfe",
                  b"<![CDATA[", b"]]>", b"&nbsp;", b"&undefined;", b"<!ENTITY x 'y'>", b"<item>", b"</item>",
                  b"<entry>", b"</width>", b"</media:player>", b"</link>", b"<link>http://[::1</link>",
                  b"<pubDate>Mon, 99 Foo 99999 99:99:99 +9999</pubDate>", b"<updated>99999-99-99T99:99:99Z</updated>",
                  b"<?xml version='1.0' encoding='bogus'?>", b"\xed\xa0\x80", b"&#55296;&#56320;",
                  b"<content type='text/html' mode='base64'>!!!</content>", b"<link href='http://example.org:99999/x'/>",
                  b"<enclosure url='http://e.org/x' length='99999999999999999999'/>", b"<a href='"]


def test_hostile_pieces_in_real_feeds_end_as_entries_or_one_not_a_feed_error():
    """Real feeds of tests/data/corpus with 1-3 hostile pieces inserted anywhere (a seeded sample of the sweep in
    docs/decisions.md): every document gives entries whose every field is encodable text, or a PermanentError;
    none raises anything else, and feedparser failing is rare."""
    import random
    from pathlib import Path

    files = sorted(p for p in (Path(__file__).resolve().parents[1] / "data" / "corpus" / "feeds").rglob("*")
                   if p.is_file() and p.stat().st_size < 200_000)
    rnd = random.Random(11)
    parsed_ok, parser_failed = 0, []
    for _ in range(150):
        body = rnd.choice(files).read_bytes()
        for _ in range(rnd.randrange(1, 4)):
            at = rnd.randrange(len(body) + 1)
            body = body[:at] + rnd.choice(HOSTILE_PIECES) + body[at:]
        try:
            result = parse(body)
        except PermanentError as exc:
            if "parser failed" in str(exc):  # feedparser raised, even on the rebuilt document
                parser_failed.append(str(exc))
            continue
        for entry in result.entries:
            for value in (entry.title, entry.summary, entry.content, entry.url, entry.link, entry.entry_id):
                value.encode("utf-8")
        parsed_ok += 1
    # pinned (raise them when parsing improves): before references to no character became U+FFFD and failed
    # documents were rebuilt, 125 of these 150 parsed and feedparser failed on 18; the 2 left have a mangled prolog
    assert parsed_ok >= 141 and len(parser_failed) <= 2, parser_failed
