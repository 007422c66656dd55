"""Feed lists through the real `monitor` command: OPML import/export, sources.opml (checked, polled, reloaded) and
`feeds add` finding a site's feeds on pages served by a real loopback server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from servers import LoopbackServer

ROOT = Path(__file__).resolve().parents[2]
MONITOR_BIN = Path(sys.executable).with_name("monitor")
DATA = ROOT / "tests" / "data"
REAL_EXPORT = DATA / "opml" / "NetNewsWire-Subs-excerpt.opml"
PAGE = DATA / "corpus" / "pages" / "trafilatura" / "francais.radio.cz-ministre.html"
RSS = DATA / "corpus" / "feeds" / "real" / "feedreader__Rss20FazNet.xml"
ATOM = DATA / "corpus" / "feeds" / "real" / "feedreader__AtomVergeAllPosts.xml"
JSON_FEED = DATA / "corpus" / "feeds" / "jsonfeed" / "feedjira__json_feed.json"
HINT = "fetch.allow_private_addresses: true allows it"

CONFIG = """# the desk's sources
data_dir: {data}
sources:
  interval: 1h   # hourly is enough
  feeds:
    - {{url: https://known.example/rss, name: Known}}   # kept
{opml}rules: {{path: {rules}}}
channels: {{analysts: {{urls: ["jsonl://{data}/analysts.jsonl"]}}}}
fetch: {{allow_private_addresses: {private}, timeout: 10}}
service: {{listen: null}}
"""


def monitor(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run([str(MONITOR_BIN), *args], capture_output=True, timeout=120, env=env)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def amonitor(*args: str) -> tuple[int, str, str]:
    """The CLI while the test's own loopback server runs in this event loop."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = await asyncio.create_subprocess_exec(str(MONITOR_BIN), *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode, out.decode(), err.decode()


def write_config(tmp_path: Path, *, opml: str = "", private: bool = True) -> Path:
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "data", rules=ROOT / "rules", private=str(private).lower(),
                                    opml=f"  opml: {opml}   # the reader's export\n" if opml else ""))
    return config


def configured_feeds(config: Path) -> list[dict]:
    return yaml.safe_load(config.read_text())["sources"]["feeds"]


# --- import / export ---------------------------------------------------------------------------------------------

def test_import_prints_the_yaml_of_a_real_export_and_write_adds_it_keeping_comments(tmp_path):
    config = write_config(tmp_path)
    code, out, err = monitor("feeds", "import", str(REAL_EXPORT), "-c", str(config))
    assert code == 0, err
    items = yaml.safe_load(out)
    assert len(items) == 34 and items[4] == {"url": "http://corinnekrych.blogspot.com/feeds/posts/default",
                                             "name": "chat & code"}
    assert {"url": "http://optshiftk.com/feed/", "name": "⌥⇧K", "tags": ["Weblogs"]} in items
    before = config.read_text()

    code, out, err = monitor("feeds", "import", str(REAL_EXPORT), "--write", "-c", str(config))
    assert code == 0, err
    assert f"{config}: 34 feed source(s) added" in out
    text = config.read_text()
    assert all(line in text.splitlines() for line in before.splitlines())  # comments and layout kept
    assert [f["url"] for f in configured_feeds(config)] == ["https://known.example/rss"] + [i["url"] for i in items]
    code, out, err = monitor("check", "-c", str(config))
    assert code == 0 and "(35 sources," in out, err

    code, out, err = monitor("feeds", "import", str(REAL_EXPORT), "--write", "-c", str(config))
    assert code == 0 and "34 of 34 feeds" in err and "already configured" in err and "nothing to add" in err
    assert config.read_text() == text


def test_export_writes_opml_2_that_imports_back_to_the_same_sources(tmp_path):
    config = write_config(tmp_path)
    assert monitor("feeds", "import", str(REAL_EXPORT), "--write", "-c", str(config))[0] == 0
    exported = tmp_path / "out.opml"
    code, out, err = monitor("feeds", "export", "-c", str(config), "-o", str(exported))
    assert code == 0 and "35 feeds written" in err, err
    assert exported.read_bytes().startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')

    code, stdout, err = monitor("feeds", "export", "-c", str(config))
    assert code == 0 and stdout.startswith("<?xml")
    (tmp_path / "fresh").mkdir()
    fresh = write_config(tmp_path / "fresh")
    code, out, err = monitor("feeds", "import", str(exported), "-c", str(fresh))
    assert code == 0, err
    originals = {f["url"]: f for f in configured_feeds(config)}
    reimported = {i["url"]: i for i in yaml.safe_load(out)}
    assert set(reimported) == set(originals) - {"https://known.example/rss"}  # that one is configured there too
    assert all(reimported[url] == originals[url] for url in reimported)


def test_a_file_that_is_not_opml_is_one_error_line_naming_file_and_line(tmp_path):
    config = write_config(tmp_path)
    code, out, err = monitor("feeds", "import", str(RSS), "-c", str(config))
    assert code == 2 and out == ""
    assert err == f"error: {RSS}:1: not an OPML feed list (the root element is <rss>, not <opml>)\n"
    broken = tmp_path / "broken.opml"
    broken.write_text('<?xml version="1.0"?>\n<opml version="2.0">\n<body>\n<outline text="x"\n</body>\n')
    code, out, err = monitor("feeds", "import", str(broken), "-c", str(config))
    assert code == 2 and err.startswith(f"error: {broken}:5: not well-formed XML (") and err.count("\n") == 1


# --- sources.opml ------------------------------------------------------------------------------------------------

def test_sources_opml_is_merged_with_sources_feeds_and_checked(tmp_path):
    (tmp_path / "reader.opml").write_bytes(REAL_EXPORT.read_bytes())
    config = write_config(tmp_path, opml="reader.opml")
    code, out, err = monitor("check", "-c", str(config))
    assert code == 0 and "(35 sources," in out, out + err

    (tmp_path / "reader.opml").write_text('<opml version="2.0"><body>\n'
                                          '<outline text="Pod" xmlUrl="feed://pod.example/rss"/></body></opml>')
    code, out, err = monitor("check", "-c", str(config))
    assert code == 1
    assert err == f"error: {tmp_path / 'reader.opml'}:2: outline 'Pod': feed url must be http:// or https://, " \
                  "got 'feed://pod.example/rss'\n"

    (tmp_path / "reader.opml").unlink()
    code, out, err = monitor("check", "-c", str(config))
    assert code == 1
    assert err.startswith(f"error: {config}:7:3: sources.opml: {tmp_path / 'reader.opml'}: cannot read the feed "
                          "list: No such file or directory") and err.count("\n") == 1


def opml_of(*urls: str) -> str:
    outlines = "".join(f'<outline type="rss" text="feed {i}" xmlUrl="{u}"/>\n' for i, u in enumerate(urls))
    return f'<?xml version="1.0"?>\n<opml version="2.0"><head><title>t</title></head><body>\n{outlines}</body></opml>'


async def test_the_daemon_polls_the_feeds_of_sources_opml_and_rereads_the_file_on_reload(tmp_path):
    async with LoopbackServer() as server:
        server.route("/one.xml", RSS.read_bytes(), content_type="application/rss+xml")
        server.route("/two.xml", ATOM.read_bytes(), content_type="application/atom+xml")
        (tmp_path / "reader.opml").write_text(opml_of(server.url("/one.xml")))
        config = write_config(tmp_path, opml="reader.opml")
        config.write_text(config.read_text().replace("    - {url: https://known.example/rss, name: Known}   # kept\n",
                                                     "    []\n").replace("interval: 1h", "interval: 1s")
                          + "pipeline: {tick: 0.2}\n")
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        proc = await asyncio.create_subprocess_exec(str(MONITOR_BIN), "run", "-c", str(config), env=env,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        try:
            await until(lambda: server.requests["/one.xml"] > 0, what="the OPML feed to be polled")
            (tmp_path / "reader.opml").write_text(opml_of(server.url("/one.xml"), server.url("/two.xml")))
            proc.send_signal(signal.SIGHUP)
            await until(lambda: server.requests["/two.xml"] > 0, what="the feed added to the OPML file to be polled")
            (tmp_path / "reader.opml").write_text("<opml><body><outline xmlUrl=")  # broken: the sources stay
            proc.send_signal(signal.SIGHUP)
            polled = server.requests["/two.xml"]
            await until(lambda: server.requests["/two.xml"] >= polled + 2, what="the running sources to stay")
            assert proc.returncode is None
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=60)


async def until(condition, *, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


# --- feeds add ---------------------------------------------------------------------------------------------------

async def test_add_finds_the_feed_a_real_news_page_links_relatively_and_write_adds_it(tmp_path):
    config = write_config(tmp_path)
    async with LoopbackServer() as server:
        server.route("/fr/rubrique/ministre", PAGE.read_bytes(), content_type="text/html")
        server.route("/rcz-rss/fr", RSS.read_bytes(), content_type="application/rss+xml")
        code, out, err = await amonitor("feeds", "add", server.url("/fr/rubrique/ministre"), "-c", str(config))
        assert code == 0, err
        assert yaml.safe_load(out) == [{"url": server.url("/rcz-rss/fr"),
                                        "name": "Radio Prague International - RSS feed"}]
        assert "# RSS: Radio Prague International - RSS feed" in err

        code, out, err = await amonitor("feeds", "add", server.url("/fr/rubrique/ministre"), "--write",
                                        "-c", str(config))
        assert code == 0, err
    assert configured_feeds(config)[-1] == {"url": server.url("/rcz-rss/fr"),
                                            "name": "Radio Prague International - RSS feed"}
    assert "# the desk's sources" in config.read_text() and "# kept" in config.read_text()


async def test_add_checks_each_linked_feed_and_offers_only_real_ones(tmp_path):
    config = write_config(tmp_path)
    page = b"""<!doctype html><html><head><title>Site</title>
      <link rel="alternate" type="application/rss+xml" title="News" href="/rss">
      <link rel="alternate" type="application/atom+xml" href="feeds/atom.xml">
      <link rel="alternate" type="application/feed+json" title="JSON" href="/feed.json">
      <link rel="alternate" type="application/rss+xml" title="Gone" href="/gone.xml">
      <link rel="alternate" type="application/rss+xml" title="Page" href="/">
    </head><body><p>hello</p></body></html>"""
    async with LoopbackServer() as server:
        server.route("/", page, content_type="text/html")
        server.route("/rss", RSS.read_bytes(), content_type="application/rss+xml")
        server.route("/feeds/atom.xml", ATOM.read_bytes(), content_type="application/atom+xml")
        server.route("/feed.json", JSON_FEED.read_bytes(), content_type="application/feed+json")
        code, out, err = await amonitor("feeds", "add", server.url("/"), "-c", str(config))
        assert code == 0, err
        urls = [item["url"] for item in yaml.safe_load(out)]
        assert urls == [server.url("/rss"), server.url("/feeds/atom.xml"), server.url("/feed.json")]
        assert f"# not a feed: {server.url('/gone.xml')}: HTTP 404" in err
        assert f"# not a feed: {server.url('/')}: linked as RSS but not a feed" in err

        code, out, err = await amonitor("feeds", "add", server.url("/"), "--write", "-c", str(config))
        assert code == 0 and "--write adds the first, --all adds every one" in err
        assert [f["url"] for f in configured_feeds(config)][1:] == [server.url("/rss")]
        code, out, err = await amonitor("feeds", "add", server.url("/"), "--write", "--all", "-c", str(config))
        assert code == 0 and "1 of" in err and "already configured" in err
        assert [f["url"] for f in configured_feeds(config)][1:] == urls


async def test_add_of_a_feed_url_offers_the_feed_itself_with_its_title(tmp_path):
    config = write_config(tmp_path)
    async with LoopbackServer() as server:
        server.route("/feed.json", JSON_FEED.read_bytes(), content_type="application/feed+json")
        server.route("/mislabelled", RSS.read_bytes(), content_type="text/html")  # what some servers send
        code, out, err = await amonitor("feeds", "add", server.url("/feed.json"), "-c", str(config))
        assert code == 0, err
        (item,) = yaml.safe_load(out)
        assert item["url"] == server.url("/feed.json") and item["name"] == "inessential.com"
        code, out, err = await amonitor("feeds", "add", server.url("/mislabelled"), "-c", str(config))
        assert code == 0, err
        assert yaml.safe_load(out) == [{"url": server.url("/mislabelled"), "name": "Aktuell - FAZ.NET"}]


async def test_add_of_a_page_without_feeds_says_so_in_one_line(tmp_path):
    config = write_config(tmp_path)
    async with LoopbackServer() as server:
        server.route("/plain", b"<html><head><title>x</title></head><body>no feeds</body></html>",
                     content_type="text/html")
        code, out, err = await amonitor("feeds", "add", server.url("/plain"), "-c", str(config))
    assert code == 1 and out == ""
    assert err.startswith(f"error: {server.url('/plain')}: no feed found") and err.count("\n") == 1


async def test_add_of_a_private_address_names_the_setting_that_allows_it(tmp_path):
    config = write_config(tmp_path, private=False)
    async with LoopbackServer() as server:
        server.route("/", PAGE.read_bytes(), content_type="text/html")
        code, out, err = await amonitor("feeds", "add", server.url("/"), "-c", str(config))
        assert server.requests["/"] == 0
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: {server.url('/')}: address 127.0.0.1 is not public (a loopback address); ")
    assert HINT in err


async def test_the_daemons_error_for_a_feed_at_a_private_address_names_the_setting(tmp_path):
    config = write_config(tmp_path, private=False)
    async with LoopbackServer() as server:
        server.route("/feed.xml", RSS.read_bytes(), content_type="application/rss+xml")
        config.write_text(config.read_text().replace("https://known.example/rss", server.url("/feed.xml")))
        code, out, err = await amonitor("run", "--once", "-c", str(config))
        assert server.requests["/feed.xml"] == 0
    failed = [line for line in err.splitlines() if "failed" in line and server.url("/feed.xml") in line]
    assert failed and HINT in failed[0], err[-3000:]
