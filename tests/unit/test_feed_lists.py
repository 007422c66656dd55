"""Feed lists as readers keep them: OPML in (real exports), OPML out, feed links found on a page, monitor.yaml edited
as text with its comments kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.config import listed_sources
from monitor.configedit import feed_item, insert_feed_items, write_feed_items
from monitor.errors import ConfigError
from monitor.sources.discover import feed_links
from monitor.sources.opml import ListedFeed, parse_opml, read_opml, write_opml

DATA = Path(__file__).resolve().parents[1] / "data"
OPML = DATA / "opml"


def test_a_real_reader_export_gives_every_feed_with_its_folder_as_tag():
    feeds = read_opml(OPML / "NetNewsWire-Subs-excerpt.opml").feeds
    assert len(feeds) == 34
    by_url = {f.url: f for f in feeds}
    assert by_url["http://corinnekrych.blogspot.com/feeds/posts/default"].name == "chat & code"
    assert by_url["http://optshiftk.com/feed/"].name == "⌥⇧K"
    assert by_url["http://optshiftk.com/feed/"].tags == ("Weblogs",)
    assert by_url["http://jvns.ca/atom.xml"].tags == ()
    # two outlines named alike are two feeds; the same feed in two folders stays one (listparser merges it)
    assert {"http://feed.katiefloyd.com", "http://feed.katiefloyd.com/"} <= set(by_url)
    assert by_url["http://nshipster.com/feed.xml"].tags == ("Programming",)
    assert by_url["http://feeds.feedburner.com/NSHipster"].tags == ("Weblogs",)
    assert by_url["http://www.gerrold.com/feed/"].line == 47


def test_the_flat_opml2_default_list_of_a_reader_imports_whole():
    feeds = read_opml(OPML / "NetNewsWire-DefaultFeeds.opml").feeds
    assert len(feeds) == 16
    assert feeds[0] == ListedFeed(url="http://inessential.com/feed.json", name="inessential.com", line=7)


NESTED = b"""<?xml version="1.0"?>
<opml version="2.0"><head><title>t</title></head><body>
  <outline text="News">
    <outline text="Europe">
      <outline text="UK">
        <outline type="rss" text="Guardian" xmlUrl="https://www.theguardian.com/world/rss?a=1&amp;b=2"
                 category="/Papers,/Wire/Europe"/>
      </outline>
    </outline>
  </outline>
  <outline type="rss" text="https://x.example/feed" xmlUrl="https://x.example/feed"/>
</body></opml>"""


def test_nested_outlines_and_the_category_attribute_become_tags():
    guardian, bare = parse_opml(NESTED, label="n.opml").feeds
    assert guardian == ListedFeed(url="https://www.theguardian.com/world/rss?a=1&b=2", name="Guardian",
                                  tags=("Papers", "Wire/Europe", "News/Europe/UK"), line=6)
    assert bare.name == ""  # a text that only repeats the URL is no name


def test_export_then_import_gives_the_same_feeds_names_and_tags():
    feeds = [ListedFeed(url="https://a.example/rss?x=1&y=2", name="A & B — “quoted”", tags=("News/World", "wire")),
             ListedFeed(url="https://b.example/atom", name="", tags=()),
             ListedFeed(url="https://c.example/feed.json", name="C", tags=("News/World",)),
             ListedFeed(url="https://d.example/rss", name="Ü <d>", tags=("wire",))]
    again = parse_opml(write_opml(feeds, title="export"), label="export.opml")
    assert again.warnings == ()
    assert sorted((f.url, f.name, f.tags) for f in again.feeds) == sorted((f.url, f.name, f.tags) for f in feeds)


def test_the_export_is_opml_2_with_folders_from_the_first_tag():
    from lxml import etree

    root = etree.fromstring(write_opml([ListedFeed(url="https://a.example/rss", name="A", tags=("News/World",))],
                                       title="t"))
    assert root.get("version") == "2.0"
    feed = root.find("body/outline/outline/outline")
    assert root.find("body/outline").get("text") == "News" and feed.get("xmlUrl") == "https://a.example/rss"
    assert feed.get("category") == "/News/World" and feed.get("type") == "rss" and feed.get("text") == "A"


@pytest.mark.parametrize("body, expected", [
    (b"", "empty.opml:1: empty file, not an OPML feed list"),
    (b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>x</title></channel></rss>',
     "empty.opml:1: not an OPML feed list (the root element is <rss>, not <opml>)"),
    (b"<!doctype html><html><body><p>hello</p></body></html>",
     "empty.opml:1: not an OPML feed list (the root element is <html>, not <opml>)"),
    (b'<?xml version="1.0"?>\n<opml version="2.0">\n<head><title>x</title>\n<body>\n<outline text="a"\n',
     "empty.opml:6: not well-formed XML ("),
])
def test_a_file_that_is_not_a_feed_list_is_one_line_naming_file_and_line(body, expected):
    with pytest.raises(ConfigError) as caught:
        parse_opml(body, label="empty.opml")
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)


def test_a_broken_file_with_feeds_is_read_with_a_warning_naming_the_line():
    body = b'<opml version="2.0">\n<body>\n<outline text="A & B" xmlUrl="https://a.example/rss"/>\n</body></opml>'
    listed = parse_opml(body, label="amp.opml")
    assert [f.name for f in listed.feeds] == ["A & B"]
    assert listed.warnings[0].startswith("amp.opml:3: not well-formed XML (")


def test_an_outline_with_a_non_http_url_is_an_error_at_its_line(tmp_path):
    path = tmp_path / "list.opml"
    path.write_text('<opml version="2.0"><body>\n<outline text="ok" xmlUrl="https://ok.example/rss"/>\n'
                    '<outline text="Podcast" xmlUrl="feed://podcast.example/rss"/>\n</body></opml>')
    with pytest.raises(ConfigError) as caught:
        listed_sources(path, label="list.opml")
    assert caught.value.problems == ["list.opml:3: outline 'Podcast': feed url must be http:// or https://, "
                                     "got 'feed://podcast.example/rss'"]


def test_a_missing_file_says_it_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError, match=r"^nothere.opml: cannot read the feed list: No such file"):
        read_opml(tmp_path / "nothere.opml", label="nothere.opml")


# --- monitor.yaml edited as text ---------------------------------------------------------------------------------

NEW = [feed_item("https://n.example/rss", name="New: one", tags=["a/b"]), feed_item("https://m.example/feed")]
LAYOUTS = {
    "block list of block mappings": "# top\nsources:\n  interval: 5m   # five\n  feeds:\n"
                                    "    - url: https://a.example/rss  # first\n      name: A\n"
                                    "    # trailing comment\n\nrules: {path: rules}\n",
    "indentless list of flow items": "sources:\n  feeds:\n  - {url: https://a.example/rss}\n"
                                     "  - {url: https://b.example/rss, name: B}   # b\nrules:\n  path: rules",
    "flow list": "sources:\n  feeds: [{url: https://a.example/rss}]  # one\n",
    "empty flow list": "sources:\n  feeds: []\n",
    "no feeds key": "sources:\n  # dirs\n  directories:\n    - path: seeds\nrules: {path: rules}\n",
    "no sources": "data_dir: data\n# end",
    "flow sources": "sources: {interval: 5m}  # flow\n",
    "empty sources": "sources:\nrules: {path: r}\n",
    "empty feeds": "sources:\n  feeds:\n  interval: 5m\n",
    "empty file": "",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_new_feeds_are_added_to_any_layout_keeping_every_line(layout):
    raw = LAYOUTS[layout]
    edited = insert_feed_items(raw, NEW, label="monitor.yaml")
    data = yaml.safe_load(edited)
    before = (yaml.safe_load(raw) or {}).get("sources") or {}
    urls = [f["url"] for f in data["sources"]["feeds"]]
    assert urls == [f["url"] for f in before.get("feeds") or []] + ["https://n.example/rss", "https://m.example/feed"]
    assert data["sources"]["feeds"][-2] == {"url": "https://n.example/rss", "name": "New: one", "tags": ["a/b"]}
    assert {k: v for k, v in data.items() if k != "sources"} == {k: v for k, v in (yaml.safe_load(raw) or {}).items()
                                                                 if k != "sources"}
    kept = [line for line in raw.splitlines() if line.strip()]
    edited_lines = edited.splitlines()
    assert all(line in edited_lines for line in kept if "[" not in line and "{interval" not in line)
    assert all("#" + c in edited for line in kept for c in line.split("#")[1:])  # every comment survives


def test_the_shipped_demo_configuration_gets_a_feeds_key_after_its_directories():
    raw = (Path(__file__).resolve().parents[2] / "monitor.yaml").read_text()
    edited = insert_feed_items(raw, NEW[:1], label="monitor.yaml")
    assert edited.replace("  feeds:\n    - " + NEW[0] + "\n", "") == raw
    assert yaml.safe_load(edited)["sources"]["directories"] == [{"path": "seeds", "name": "seeds"}]


def test_write_replaces_the_file_keeping_its_mode_and_refuses_an_invalid_result(tmp_path):
    config = tmp_path / "monitor.yaml"
    config.write_text("# mine\nsources:\n  feeds: []\nrules: {path: %s}\n" % (DATA.parent.parent / "rules"))
    config.chmod(0o640)
    write_feed_items(config, NEW[:1])
    assert config.stat().st_mode & 0o777 == 0o640
    assert config.read_text().startswith("# mine\n") and "https://n.example/rss" in config.read_text()

    broken = "sources:\n  feeds: []\n  intervall: 5m\n"
    config.write_text(broken)
    with pytest.raises(ConfigError) as caught:
        write_feed_items(config, NEW[:1])
    assert caught.value.problems == [f"{config}:3:3: sources.intervall: unknown setting (check the spelling)"]
    assert config.read_text() == broken and list(tmp_path.iterdir()) == [config]


# --- feed links on a page ----------------------------------------------------------------------------------------

def test_the_feed_link_of_a_real_news_page_is_resolved_against_the_page():
    body = (DATA / "corpus" / "pages" / "trafilatura" / "francais.radio.cz-ministre.html").read_bytes()
    found = feed_links(body, page_url="http://127.0.0.1:8080/fr/rubrique/ministre")
    assert [(f.url, f.title, f.kind) for f in found] == [
        ("http://127.0.0.1:8080/rcz-rss/fr", "Radio Prague International - RSS feed", "RSS")]


def test_rss_atom_and_json_feed_links_are_found_and_other_alternates_are_not():
    page = b"""<!doctype html><html><head><base href="/news/">
    <link rel="alternate" type="application/rss+xml" title="All  news" href="rss.xml">
    <link rel="Alternate feed" type="application/atom+xml; charset=utf-8" href="//cdn.example.org/atom">
    <link rel="alternate" type="application/feed+json" href="https://site.example/feed.json">
    <link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/12">
    <link rel="alternate" type="application/json+oembed" href="/oembed?url=x">
    <link rel="alternate" hreflang="de" href="/de/">
    <link rel="stylesheet" type="application/rss+xml" href="/not-a-feed">
    <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
    <link rel="alternate" type="application/rss+xml" href="rss.xml">
    </head><body></body></html>"""
    found = feed_links(page, page_url="https://site.example/news/today.html")
    assert [(f.url, f.kind, f.title) for f in found] == [
        ("https://site.example/news/rss.xml", "RSS", "All news"),
        ("https://cdn.example.org/atom", "Atom", ""),
        ("https://site.example/feed.json", "JSON Feed", ""),
    ]
