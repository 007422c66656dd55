"""Every feed file of the corpus, served over loopback and polled through poll_feed with a real WorkerPool.

Each must give entries or a PermanentError with a reason, in line with what feedparser found (manifest.json). The
sweep runs over the subset in tests/data/corpus, and over the whole shared corpus when $MONITOR_CORPUS names it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from servers import LoopbackServer

from monitor.errors import PermanentError
from monitor.models import Feed
from monitor.net import Fetcher
from monitor.settings import FetchSettings
from monitor.sources.feed import PollResult, poll_feed
from monitor.workers import WorkerPool

# feedparser counts these entries as linked, but their only "link" is a tag: URI copied from the id: we skip them
LINK_IS_TAG_URI = {"illformed/rss-parser__missing-fields.atom"}


def tracking_left(url: str) -> list[str]:
    """The tracking parameters of issue 12's list that `url` still carries (written out here, not the product's)."""
    parts = urlsplit(url)
    found = [k for k, v in parse_qsl(parts.query) if k.lower() in ("xtor", "emc", "cmp", "mwrsm")
             or (k.lower() in ("partner", "ref", "src", "source") and "rss" in v.lower())]
    return found + ([parts.fragment] if re.match(r"(xtor|ref)=|.*(?<![a-z])rss(?![a-z])", parts.fragment, re.I) else [])


async def poll_all(feeds_dir) -> dict[str, PollResult | PermanentError]:
    """Relative path -> the poll's result or its PermanentError (anything else propagates and fails the test)."""
    outcomes: dict[str, PollResult | PermanentError] = {}
    gate = asyncio.Semaphore(8)
    async with LoopbackServer() as server:
        served = server.serve_tree("/feeds", feeds_dir)
        paths = {p: f for p, f in served.items() if f.parent != feeds_dir}  # not manifest.json, duplicate_groups.json
        settings = FetchSettings(allow_private_addresses=True, per_host=8, timeout=30)
        with WorkerPool(processes=2) as pool:
            async with Fetcher(settings) as fetcher:

                async def one(path: str) -> None:
                    rel = paths[path].relative_to(feeds_dir).as_posix()
                    feed = Feed(id=rel, url=server.url(path), name="corpus")
                    async with gate:
                        try:
                            outcomes[rel] = await poll_feed(feed, etag=None, last_modified=None, fetcher=fetcher,
                                                            pool=pool, parse_timeout=20)
                        except PermanentError as exc:
                            outcomes[rel] = exc

                await asyncio.gather(*(one(p) for p in sorted(paths)))
    return outcomes


def table(outcomes: dict[str, PollResult | PermanentError]) -> str:
    rows = collections.defaultdict(lambda: {"files": 0, "ok": 0, "entries": 0, "errors": 0, "reasons": set()})
    for rel, outcome in outcomes.items():
        row = rows[rel.split("/", 1)[0]]
        row["files"] += 1
        if isinstance(outcome, PermanentError):
            row["errors"] += 1
            row["reasons"].add(str(outcome).split(": not a feed: ", 1)[-1])
        else:
            row["ok"] += 1
            row["entries"] += len(outcome.entries)
    lines = ["| category | files | ingested OK | entries | errors | distinct error reasons |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name in sorted(rows):
        r = rows[name]
        lines.append(f"| {name} | {r['files']} | {r['ok']} | {r['entries']} | {r['errors']} | "
                     f"{'; '.join(sorted(r['reasons'])) or '-'} |")
    total = {k: sum(r[k] for r in rows.values()) for k in ("files", "ok", "entries", "errors")}
    lines.append(f"| **all** | {total['files']} | {total['ok']} | {total['entries']} | {total['errors']} | |")
    return "\n".join(lines)


@pytest.fixture(params=["subset", "whole"])
def sweep_corpus(request):
    """tests/data/corpus, then the whole shared corpus ($MONITOR_CORPUS; skipped when unset)."""
    return request.getfixturevalue("corpus" if request.param == "subset" else "full_corpus")


async def test_every_corpus_feed_gives_entries_or_a_permanent_error_with_reason(sweep_corpus, capsys):
    feeds_dir = sweep_corpus / "feeds"
    manifest = {f["file"]: f for f in json.loads((feeds_dir / "manifest.json").read_text())["files"]}
    outcomes = await poll_all(feeds_dir)
    with capsys.disabled():
        print("\n" + table(outcomes))

    assert sorted(outcomes) == sorted(manifest)
    wrong = []
    for rel, outcome in sorted(outcomes.items()):
        observed = manifest.get(rel, {}).get("observed_feedparser_6_0_11", {})
        with_links = (observed.get("entries") or 0) - (observed.get("entries_without_link") or 0)
        no_feed = not observed.get("version") and not observed.get("entries") and not rel.startswith("jsonfeed/")
        if isinstance(outcome, PermanentError):
            reason = str(outcome).split(": not a feed: ", 1)
            if not no_feed or len(reason) != 2 or not reason[1].strip():
                wrong.append(f"{rel}: unexpected error {outcome}")
        elif no_feed:
            wrong.append(f"{rel}: feedparser found no feed, we got {len(outcome.entries)} entries")
        elif with_links > 0 and not outcome.entries and rel not in LINK_IS_TAG_URI:
            wrong.append(f"{rel}: feedparser found {with_links} linked entries, we got none")
    assert wrong == []
    urls = [e.url for o in outcomes.values() if isinstance(o, PollResult) for e in o.entries]
    assert urls and all(u.startswith(("http://", "https://")) for u in urls)  # relative links all resolved
    assert [u for u in urls if tracking_left(u)] == []  # before issue 12: 136 of the 2,740 real/ entries
    assert outcomes["illformed/feedparser__always_strip_doctype.xml"].title == "found"
    assert outcomes["illformed/rss-parser__missing-fields.atom"].skipped == 1
    assert len(outcomes["jsonfeed/feedjira__json_feed.json"].entries) == 20
    # the two gzip-compressed files decompress to full feeds
    assert len(outcomes["illformed/node-feedparser__invalid-characters-gzipped.xml"].entries) == 25
    assert len(outcomes["real/node-feedparser__compressed.xml"].entries) == 10


@pytest.mark.parametrize("rel, reason", [
    ("illformed/gofeed__empty_feed.xml", "empty body"),
    ("illformed/node-feedparser__notafeed.html", "HTML page, not a feed"),
    ("illformed/feedparser__rss_empty_document.xml", "XML syntax error at line 5, column 0: no element found"),
])
def test_corpus_non_feeds_have_clear_reasons(corpus, rel, reason):
    from monitor.sources.feed import parse_feed

    with pytest.raises(PermanentError, match=reason):
        parse_feed((corpus / "feeds" / rel).read_bytes(), feed_id="c", url="http://127.0.0.1/" + rel)
