"""Redis memory per new entry: what one article leaves in Redis for its retention (seen URL, story, archive, the
rules that matched it), measured on a private redis-server with INFO memory and MEMORY USAGE per key; and the
archive's compression, zlib against zstd and Brotli, on the corpus articles.

    python -m bench.redis_memory                      # this checkout against the baseline (main), side by side
    python -m bench.redis_memory --entries 2000 --no-write

The same run stores the same articles with this checkout's code and with the code of `--baseline` (a git revision,
its `monitor/` unpacked into a temporary folder and run by the same interpreter), each on its own redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, fmt, save_result, table, utc_now, write_section

TITLE = "Redis memory per entry"
SIZES_PER_DAY = (1_000, 5_000, 20_000, 100_000)
RETENTIONS = (7, 30, 90)
COPY_SHARE = 0.1  # entries that are another site's copy of an earlier story (they join it)
MATCH_SHARE = 0.1  # entries a rule fired on


# ------------------------------------------------------------------------------------------------ the articles
def synthetic_articles(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """`n` articles: 9 paragraphs of the corpus's annotated bodies each (unique stories), 10% copies of an earlier
    one under another site's URL, URLs with a tracking parameter as feeds give them."""
    from bench.server import corpus_paragraphs

    paras = corpus_paragraphs()
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        site = f"news{i % 250}.example"
        url = f"https://{site}/2026/12/01/{rng.randrange(10**9)}-story-{i}.html?utm_source=rss"
        if out and rng.random() < COPY_SHARE:
            original = rng.choice(out)
            out.append({**original, "url": url, "source": site, "copy": True})
            continue
        body = rng.sample(paras, k=min(9, len(paras)))
        out.append({"url": url, "title": body[0][:90], "text": "\n".join(body), "source": site, "copy": False,
                    "matched": ["rule-a"] if rng.random() < MATCH_SHARE else []})
    return out


# ------------------------------------------------------------------------------------------------ one store run
def _category(key: str) -> str:
    """A key's kind, from its name under the run's prefix (both layouts)."""
    parts = key.split(":")[1:]
    if parts[:2] == ["seen", "url"]:
        return "seen URLs"
    if parts[0] == "archive":
        return "archive index" if parts[1] in ("by-time", "t", "hours") else "archive entries"
    if parts[0] == "matched":
        return "matched rules"
    if parts[0] == "{stories}":
        kind = parts[1]
        if kind == "story":
            return "story members" if parts[-1] in ("urls", "members") else "story hashes"
        return {"b": "LSH band keys", "fp": "fingerprint keys", "s": "story records", "bk": "LSH band buckets",
                "bn": "LSH band buckets", "fk": "fingerprint buckets",
                "bm": "bucket levels"}.get(kind, "stories, other")
    return "other"


async def store_articles(redis_url: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Every item through what the pipeline stores for it; INFO memory and MEMORY USAGE per key kind after."""
    from monitor.archive import ArticleArchive
    from monitor.dedup import StoryIndex, canonical_url
    from monitor.settings import ArchiveSettings, StorySettings
    from monitor.feedstate import FeedStore
    from monitor.models import Article, Entry
    from monitor.replay import record_matched
    from monitor.store import Keys, connect

    redis = connect(redis_url)
    keys = Keys("m:")
    feeds = FeedStore(redis, keys)
    stories = StoryIndex(redis, keys, settings=StorySettings())
    archive = ArticleArchive(redis, keys, settings=ArchiveSettings())
    await redis.config_set("appendonly", "no")
    before = (await redis.info("memory"))["used_memory"]
    now = time.time()
    for i, item in enumerate(items):
        url = canonical_url(item["url"])
        entry = Entry(feed_id=f"f{i % 1000}", url=url, link=item["url"], title=item["title"],
                      summary=item["text"][:300], source=item["source"])
        await feeds.mark_seen([entry], now=now + i)
        article = Article(url=url, feed_id=entry.feed_id, title=item["title"], text=item["text"],
                          source=item["source"], language="en", fetched_at="2026-12-01T10:00:00+00:00",
                          published="2026-12-01T09:00:00+00:00", site_name=item["source"])
        assignment = await stories.assign(article, now=now + i)
        article = Article(**{**article.to_dict(), "story_id": assignment.story_id,
                             "fingerprint": assignment.fingerprint})
        await archive.put(article, now=now + i)
        await record_matched(redis, keys, url, item.get("matched", []), ttl=30 * 86400)
        if item.get("matched"):
            await stories.members(assignment.story_id)
    used = (await redis.info("memory"))["used_memory"]
    by_kind: Counter[str] = Counter()
    count: Counter[str] = Counter()
    async for key in redis.scan_iter(match="m:*", count=1000):
        kind = _category(key)
        by_kind[kind] += int(await redis.memory_usage(key, samples=0) or 0)
        count[kind] += 1
    replayed = 0
    async for _ in archive.since(0):
        replayed += 1
    await redis.aclose()
    import monitor

    return {"code": str(Path(monitor.__file__).parent), "used_delta": used - before, "entries": len(items),
            "by_kind": dict(by_kind), "keys": dict(count),
            "replayed": replayed}


def run_layout(pythonpath: str, n: int, items_file: Path, *, seen: int = 0) -> Any:
    """One layout (the code under `pythonpath`) on its own redis-server, in a child process started there (the
    folder first on sys.path, ahead of the editable install of this checkout)."""
    mode = ["--seen-child", str(seen)] if seen else ["--child", "--items-file", str(items_file)]
    out = subprocess.run([PYTHON, "-m", "bench.redis_memory", *mode],
                         cwd=pythonpath, env={"PYTHONPATH": f"{pythonpath}:{ROOT}", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"layout under {pythonpath} failed: {out.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def child(items_file: Path) -> None:
    from monitor.store import EmbeddedRedis

    items = json.loads(items_file.read_text())
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        server = EmbeddedRedis(folder)
        url = server.start()
        try:
            result = asyncio.run(store_articles(url, items))
        finally:
            server.stop()
    print("RESULT " + json.dumps(result), flush=True)


async def seen_at_scale(redis_url: str, n: int) -> float:
    """Bytes per seen URL with `n` of them (mark_seen in batches): past 32,768 (256 shards x 128 fields) the shards
    leave Redis's compact hash encoding, which a run of a few thousand entries does not show."""
    from monitor.feedstate import FeedStore
    from monitor.models import Entry
    from monitor.store import Keys, connect

    redis = connect(redis_url)
    feeds = FeedStore(redis, Keys("s:"))
    now = time.time()
    for start in range(0, n, 2000):
        batch = [Entry(feed_id="f", url=f"https://news{i % 250}.example/2026/12/01/{i * 7919}-story-{i}.html",
                       link="", title="") for i in range(start, min(n, start + 2000))]
        await feeds.mark_seen(batch, now=now + start)
    total = 0
    async for key in redis.scan_iter(match="s:seen:*", count=1000):
        total += int(await redis.memory_usage(key, samples=0) or 0)
    await redis.aclose()
    return total / n


def seen_child(n: int) -> None:
    from monitor.store import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        server = EmbeddedRedis(folder)
        url = server.start()
        try:
            result = asyncio.run(seen_at_scale(url, n))
        finally:
            server.stop()
    print("RESULT " + json.dumps(result), flush=True)


def baseline_tree(rev: str, folder: Path) -> Path:
    """`monitor/` of git revision `rev`, unpacked under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "monitor"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


# ------------------------------------------------------------------------------------------------ compression
def compression_table(runs: int) -> list[dict[str, Any]]:
    """The archive's payload (Article JSON of the corpus articles) through zlib, zstd and Brotli: ratio and MB/s."""
    import brotli
    import zstandard

    from bench.matching import extracted_articles

    blobs = [a.to_json().encode("utf-8") for a in extracted_articles()]
    total = sum(len(b) for b in blobs)
    codecs: list[tuple[str, Any, Any]] = []
    for level in (1, 6, 9):
        codecs.append((f"zlib {level}", lambda b, lv=level: zlib.compress(b, lv), zlib.decompress))
    for level in (3, 9, 19):
        c, d = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
        codecs.append((f"zstd {level}", c.compress, d.decompress))
    for quality in (5, 10, 11):  # the archive's: 5 (store/archive.py)
        codecs.append((f"brotli {quality}", lambda b, q=quality: brotli.compress(b, quality=q, lgwin=16,
                                                                              mode=brotli.MODE_TEXT),
                       brotli.decompress))
    rows = []
    for name, comp, decomp in codecs:
        packed = [comp(b) for b in blobs]
        assert all(decomp(p) == b for p, b in zip(packed, blobs))
        c_times, d_times = [], []
        for _ in range(runs):  # alternating codecs would be fairer still; each codec's runs are back to back
            t = time.process_time()
            for b in blobs:
                comp(b)
            c_times.append(time.process_time() - t)
            t = time.process_time()
            for p in packed:
                decomp(p)
            d_times.append(time.process_time() - t)
        size = sum(len(p) for p in packed)
        rows.append({"codec": name, "ratio": total / size, "bytes_per_article": size / len(blobs),
                     "compress_mb_s": total / 1e6 / statistics.median(c_times),
                     "decompress_mb_s": total / 1e6 / statistics.median(d_times)})
    return [{"articles": len(blobs), "json_bytes_per_article": total / len(blobs)}, *rows]


# ------------------------------------------------------------------------------------------------ the report
KINDS = ("seen URLs", "story hashes", "story members", "story records", "LSH band keys", "LSH band buckets",
         "fingerprint keys", "fingerprint buckets", "bucket levels", "archive entries", "archive index",
         "matched rules", "stories, other", "other")


def section(now: dict[str, Any], base: dict[str, Any], comp: list[dict[str, Any]], args: argparse.Namespace,
            command: str) -> str:
    n = now["entries"]
    per = now["used_delta"] / n
    per_base = base["used_delta"] / n
    rows = [[kind, fmt(base["by_kind"].get(kind, 0) / n, 0), fmt(now["by_kind"].get(kind, 0) / n, 0),
             f"{base['keys'].get(kind, 0):,} / {now['keys'].get(kind, 0):,}"]
            for kind in KINDS if base["by_kind"].get(kind) or now["by_kind"].get(kind)]
    rows.append(["**all (MEMORY USAGE sum)**", fmt(sum(base["by_kind"].values()) / n, 0),
                 fmt(sum(now["by_kind"].values()) / n, 0), ""])
    rows.append(["**INFO used_memory growth**", fmt(per_base, 0), fmt(per, 0), ""])
    head, *codecs = comp
    comp_rows = [[c["codec"], f"{c['ratio']:.2f}", fmt(c["bytes_per_article"], 0), fmt(c["compress_mb_s"]),
                  fmt(c["decompress_mb_s"])] for c in codecs]
    # at scale the seen URLs cost what seen_at_scale measured, not what this run's few thousand did
    scale_now = per - now["by_kind"].get("seen URLs", 0) / n + now["seen_at_scale"]
    scale_base = per_base - base["by_kind"].get("seen URLs", 0) / n + base["seen_at_scale"]
    sizing = [[f"{day:,}"] + [f"{_gb(scale_base * day * days)} / {_gb(scale_now * day * days)}" for days in RETENTIONS]
              for day in SIZES_PER_DAY]
    verdict = "met" if per <= 3000 else f"missed by {per - 3000:,.0f} bytes"
    scale_verdict = "met" if scale_now <= 3000 else f"missed by {scale_now - 3000:,.0f} bytes"
    return "\n".join([
        f"Measured {utc_now()}. Command: `{command}`",
        "",
        f"{n:,} new entries stored as the pipeline stores them (`FeedStore.mark_seen`, `StoryIndex.assign`, "
        "`ArticleArchive.put`, `record_matched`; `StoryIndex.members` for the matched ones), each on a private "
        "redis-server 7 (`EmbeddedRedis`, persistence off for the count), once with this checkout and once with "
        f"`{args.baseline}` (the layout before), the same articles in one run. Articles: 9 paragraphs of the "
        f"corpus's annotated bodies each (~{_mean_chars(args.items_path):,.0f} "
        f"characters), {COPY_SHARE:.0%} of them another site's copy of an earlier story, {MATCH_SHARE:.0%} matched by "
        "a rule; retention 30 days (the defaults). Per entry: INFO used_memory after minus before, divided by the "
        "entries; the kinds are MEMORY USAGE of every key (SAMPLES 0), summed per kind. The entries stream is not "
        "in it: it is capped (streams maxlen 100,000 messages), whatever the retention. The machine was shared with "
        "other helpers' runs: the byte counts do not depend on it, the codec speeds do (ratios between codecs are "
        "side by side in one process).",
        "",
        table(["kind", f"bytes per entry, {args.baseline}", "bytes per entry, now", "keys (before / now)"], rows),
        "",
        f"- Redis memory per new entry: **{per:,.0f} bytes** (was {per_base:,.0f} in the same run; "
        f"{per_base / per:.1f}x less; target <= 3 KB: {verdict}); at scale (the sizing below) **{scale_now:,.0f} "
        f"bytes** ({scale_base:,.0f} on {args.baseline}; target: {scale_verdict})",
        f"- replay reads every archived article back: {now['replayed']:,} of {n:,} (before: {base['replayed']:,})",
        "",
        f"Archive compression, the Article JSON of the {head['articles']} corpus articles (`bench.matching`'s "
        f"extraction of `../shared/corpus/pages`, {head['json_bytes_per_article']:,.0f} bytes each on average), one "
        f"process, CPU time, medians of {args.runs} runs:",
        "",
        table(["codec", "ratio", "bytes per article", "compress MB/s", "decompress MB/s"], comp_rows),
        "",
        "Sizing: Redis memory for the retained entries, articles a day x days kept x the bytes per entry measured "
        + (f"above with the seen URLs at their cost at scale ({args.seen_scale:,} seen URLs: "
           f"{now['seen_at_scale']:,.0f} bytes each now, {base['seen_at_scale']:,.0f} on {args.baseline}, instead "
           f"of this run's {now['by_kind'].get('seen URLs', 0) / n:,.0f}: 256 hashes outgrow Redis's compact "
           "encoding past 32,768 URLs; store/feeds.py moves new URLs to more shards as they grow)"
           if args.seen_scale else "above (seen URLs at this run's cost: `--seen-scale` measures them at scale)")
        + f": {scale_base:,.0f} bytes an entry for {args.baseline}, {scale_now:,.0f} now. Plus the fixed entries "
        "stream and alert history, not in it:",
        "",
        table(["articles a day"] + [f"kept {d} days ({args.baseline} / now)" for d in RETENTIONS], sizing),
    ])


def _mean_chars(items_path: Path) -> float:
    return statistics.mean(len(item["text"]) for item in json.loads(items_path.read_text()))


def _gb(value: float) -> str:
    return f"{value / 1e9:.2f} GB" if value >= 1e9 else f"{value / 1e6:.0f} MB"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, default=5000)
    p.add_argument("--baseline", default="main", help="git revision whose layout is measured side by side")
    p.add_argument("--runs", type=int, default=5, help="timing runs per codec")
    p.add_argument("--no-write", dest="write", action="store_false")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seen-child", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--seen-scale", type=int, default=None,
                   help="seen URLs stored for the at-scale figure the sizing table uses (default 600,000: 20,000 a "
                        "day x 30 days; 0, the default below 1,000 entries, uses this run's own)")
    p.add_argument("--items-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(Path(args.items_file))
        return
    if args.seen_child:
        seen_child(args.seen_child)
        return
    command = "python -m bench.redis_memory " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bench-redis-mem-") as folder:
        args.items_path = Path(folder) / "items.json"
        args.items_path.write_text(json.dumps(synthetic_articles(args.entries)))
        old = baseline_tree(args.baseline, Path(folder) / "baseline")
        base = run_layout(str(old), args.entries, args.items_path)
        now = run_layout(str(ROOT), args.entries, args.items_path)
        if base["code"] == now["code"]:
            raise SystemExit(f"the baseline ran this checkout's code ({now['code']}), not {args.baseline}'s")
        if args.seen_scale is None:  # a smoke run (python -m bench --quick) skips the 600,000 URLs
            args.seen_scale = 600_000 if args.entries >= 1000 else 0
        for result, tree in ((now, str(ROOT)), (base, str(old))):
            result["seen_at_scale"] = (run_layout(tree, args.entries, args.items_path, seen=args.seen_scale)
                                       if args.seen_scale else result["by_kind"].get("seen URLs", 0) / args.entries)
        comp = compression_table(args.runs)
        print(json.dumps({"now": now, "baseline": base, "compression": comp}, indent=1))
        save_result("redis_memory", {"now": now, "baseline": base, "compression": comp})
        if args.write:
            write_section(TITLE, section(now, base, comp, args, command.strip()))


if __name__ == "__main__":
    main()
