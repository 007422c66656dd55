"""Matching benchmark: 10 .. 10,000 generated rules over the corpus pages' extracted text; writes BENCHMARKS.md.

Run: python -m bench.matching   (extraction is cached under bench/.cache/, which git ignores)
Old and new side by side: python -m bench.matching --against ../wt-base   (another checkout, e.g. of main: this
file runs as a worker of this interpreter with that checkout's `monitor` first on its path, on the same inputs, timed
in alternation)
Where the time goes: python -m bench.matching --phases --shapes desk --sizes 10,10000 [--against ...]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import gc
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from monitor.models import Article
from monitor.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
BENCHMARKS = ROOT / "BENCHMARKS.md"
SIZES = (10, 100, 1000, 10000)
SHAPES = ("generic", "desk", "desk-10")
# The shipped pack (rules/, the rules this checkout ships) as it is, over the corpus articles ("pack") and over the
# pledge-dev White House texts ("pack-dev": long transcripts, the texts the pack is written for); one size each.
PACKS = ("pack", "pack-dev")
DEV = ROOT / "tests" / "data" / "pledge-dev" / "dev.jsonl"


def corpus_pages() -> Path:
    """$MONITOR_CORPUS/pages, as bench.corpus gives it: this file also runs as a script on another checkout's path
    (--against), so it imports nothing of the bench package."""
    value = os.environ.get("MONITOR_CORPUS")
    if not value or not (Path(value) / "pages").is_dir():
        raise SystemExit(f"bench: this figure reads the shared corpus's pages: set MONITOR_CORPUS=/path/to/shared/"
                         f"corpus (now {value or 'unset'})")
    return Path(value) / "pages"


def extracted_articles() -> list[Article]:
    """The pages' text as the daemon would see it (trafilatura bare_extraction), extracted once and cached."""
    cache = CACHE / "articles.json"
    if not cache.exists():
        import trafilatura

        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        items = []
        for page in sorted(corpus_pages().rglob("*.html")):
            doc = trafilatura.bare_extraction(page.read_bytes().decode("utf-8", "replace"), with_metadata=True)
            data = doc.as_dict() if hasattr(doc, "as_dict") else (doc or {})
            if data.get("text"):
                items.append({"url": page.name, "title": data.get("title") or "", "text": data["text"]})
        cache.write_text(json.dumps(items, ensure_ascii=False))
    from monitor.language import detect_language  # extraction sets the language; the rules pick cue lists by it

    return [Article(url=i["url"], title=i["title"], text=i["text"],
                    language=detect_language(f"{i['title']}\n\n{i['text']}"))
            for i in json.loads(cache.read_text())]


def dev_articles() -> list[Article]:
    """The pledge-dev texts as `monitor rules eval` hands them to the rules (dated as labelled, language detected)."""
    from monitor.rules.evaluate import article_of, read_labelled

    return [article_of(record) for record in read_labelled(DEV)]


def vocabulary(articles: list[Article]) -> list[str]:
    """Frequent news words of the corpus (4+ letters), the realistic terms of generated rules."""
    counts = collections.Counter(w.lower() for a in articles for w in re.findall(r"[^\W\d_]{4,}", a.text))
    return [w for w, _n in counts.most_common(20000)[200:]]  # skip the 200 most common (stop-word-like)


def aliases() -> list[str]:
    """The gazetteers' language-neutral and English names as written (rule terms an English-language desk writes)."""
    from monitor.rules.loader import load_gazetteer

    out = []
    for kind in load_gazetteer(ROOT / "rules").kinds.values():
        for entity in kind.entities:
            if entity.language in ("", "en"):
                out.extend(entity.aliases)
    return [a for a in out if '"' not in a and "..." not in a and not a.startswith("*")]


TEMPLATES = (
    '"{a}" AND ({w1} OR {w2})',
    "sentence:(@state AND {w1} AND NOT {w2})",
    '{s}* AND "{a}"',
    "({w1} OR {w2}) AND {w3} AND NOT {w4}",
    '"{w1} {w2}"~5',
    'title:{w1} OR ({w2} AND @weapon)',
    '"{a}" NEAR/8 {w1}',
    "sentence:(({w1} OR {w2}) AND (@weapon OR @materiel) AND NOT @hedge)",
)


def generate_rules(n: int, words: list[str], names: list[str], seed: int = 7) -> list[tuple[str, str]]:
    rnd = random.Random(seed)
    rules = []
    for i in range(n):
        w = rnd.sample(words, 4)
        query = TEMPLATES[i % len(TEMPLATES)].format(
            a=rnd.choice(names), w1=w[0], w2=w[1], w3=w[2], w4=w[3], s=w[0][: max(4, len(w[0]) - 2)])
        rules.append((f"gen-{i}", query))
    return rules


# Rules shaped like an analysts' desk: each watches something of its own (a rare word or name of the corpus: a person,
# place, company or programme) and judges it with the cue words and entities that all rules share.
ANALYST_SHAPES = (
    'sentence:("{r}" AND (@commitment OR pledg*) AND NOT (@hedge OR @appeal))',
    '"{r}" AND (@weapon OR @materiel OR @arms) AND NOT (@sanction OR @combat)',
    'title:"{r}" OR sentence:("{r}" AND @state AND @money)',
    '"{r}" AND sentence:(@state AND NOT @question)',
    '"{r} {w}"~6 AND NOT @nonmilitary',
)


def analyst_rules(n: int, rare: list[str], words: list[str], seed: int = 11,
                  in_corpus: float = 1.0) -> list[tuple[str, str]]:
    """`in_corpus`: the share of rules whose watched word occurs in the corpus at all; the others watch a name
    that today's 141 articles do not mention (a made-up word), as most of a real desk's watch list on most days."""
    rnd = random.Random(seed)
    rules = []
    for i in range(n):
        watched = rnd.choice(rare) if rnd.random() < in_corpus else f"{rnd.choice(rare)}x{i}"
        rules.append((f"desk-{i}", ANALYST_SHAPES[i % len(ANALYST_SHAPES)].format(r=watched, w=rnd.choice(words))))
    return rules


def rare_words(articles: list[Article]) -> list[str]:
    """Words that occur in one or two articles of the corpus: the specific thing a rule watches."""
    counts = collections.Counter(w.lower() for a in articles for w in set(re.findall(r"[^\W\d_]{6,}", a.text)))
    return sorted(w for w, c in counts.items() if c <= 2)


def write_folder(rules: list[tuple[str, str]], folder: Path) -> None:
    shutil.copytree(ROOT / "rules" / "entities", folder / "entities")
    lines = ["rules:"]
    for rid, query in rules:
        lines.append(f"  - id: {rid}\n    query: {json.dumps(query)}")
    (folder / "generated.yaml").write_text("\n".join(lines) + "\n")


def regex_for(query: str) -> re.Pattern:
    """The naive alternative: one compiled regex per rule over the raw text (only its positive terms)."""
    terms = re.findall(r'"([^"]+)"|(?<![@\w])([^\W\d_][\w]*\*?)', query.replace("NOT ", "NOT_"))
    parts = []
    for phrase, word in terms:
        t = phrase or word
        if not t or t in ("AND", "OR") or t.startswith("NOT_") or t in ("sentence", "title"):
            continue
        body = r"[\s\-]+".join(re.escape(x) for x in t.rstrip("*").split())
        parts.append(body + (r"\w*" if t.endswith("*") else ""))
    return re.compile(r"\b(?:" + "|".join(parts or ["$^"]) + r")\b", re.IGNORECASE)


def time_runs(fn, runs: int) -> float:
    """Median CPU seconds of this process over `runs` calls (CPU time: other jobs on the machine distort wall time)."""
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def rule_set(shape: str, n: int, articles: list[Article]) -> list[tuple[str, str]]:
    """The generated rules of one shape: "generic" (corpus words), "desk" (analysts' shapes, every watched word in
    the corpus), "desk-10" (the same, 10% of the watched words in the corpus)."""
    words = vocabulary(articles)
    if shape == "generic":
        return generate_rules(n, words, aliases())
    return analyst_rules(n, rare_words(articles), words, in_corpus=1.0 if shape == "desk" else 0.1)


class Bench:
    """One side of the comparison, in its own process: loads a rule set, times `RuleSet.match` over every article."""

    def __init__(self) -> None:
        self.corpus = self.articles = extracted_articles()
        self.ruleset = None
        self.rules: list[tuple[str, str]] = []

    def load(self, shape: str, n: int) -> dict:
        self.ruleset = None
        gc.collect()
        if shape in PACKS:
            self.articles = self.corpus if shape == "pack" else dev_articles()
            t0 = time.perf_counter()
            ruleset = load_rules(ROOT / "rules")
            compile_s = time.perf_counter() - t0
            self.rules = [(rule.id, "") for rule in ruleset.rules]
        else:
            self.articles = self.corpus
            self.rules = rule_set(shape, n, self.articles)
            with tempfile.TemporaryDirectory() as tmp:
                write_folder(self.rules, Path(tmp))
                t0 = time.perf_counter()
                ruleset = load_rules(tmp)
                compile_s = time.perf_counter() - t0
        gc.collect()
        gc.freeze()  # the compiled rules are long-lived: keep the cyclic GC from rescanning them (daemon: same)
        self.ruleset = ruleset
        found = [ruleset.match(a) for a in self.articles]
        # rules that pass the index and get their logic evaluated (an internal figure)
        evaluated = sum(len(ruleset._compiled.candidates(ruleset.context(a).keys)) for a in self.articles)
        return {"compile_s": compile_s, "matches": sum(map(len, found)), "evaluated": evaluated / len(self.articles),
                "rules": len(ruleset.rules), "articles": len(self.articles),
                "digest": hashlib.sha256(repr(found).encode()).hexdigest()[:16]}

    def time(self, runs: int) -> float:
        """Median CPU µs per article of matching every article once."""
        ruleset = self.ruleset
        return time_runs(lambda: [ruleset.match(a) for a in self.articles], runs) / len(self.articles) * 1e6

    def phases(self, runs: int = 3) -> dict[str, float]:
        """Where `match`'s time goes, median CPU µs per article: the context (normalisation, automaton scan), the
        candidate check, rule logic and evidence each twice on the same context: the first time pays the per-article
        work computed on first use (sentences, entity lists, the second automaton pass, sums, dates), the second
        only the rules' own work (shared clauses are answered from the article's memo then)."""
        from monitor.rules.evidence import build_match

        rs = self.ruleset
        totals: dict[str, list[float]] = collections.defaultdict(list)
        clock = time.process_time
        for _ in range(runs):
            spent: collections.Counter = collections.Counter()
            for article in self.articles:
                t0 = clock()
                ctx = rs.context(article)
                t1 = clock()
                candidates = rs._compiled.candidates(ctx.keys)
                t2 = clock()
                fired = []
                for rep in ("first", "again"):
                    t3 = clock()
                    for i in candidates:
                        ctx.scopes, evidence = [], []
                        if ctx.ev(rs.rules[i].node, 0, len(ctx.nz.norm), evidence) and rep == "first":
                            fired.append((rs.rules[i], evidence, list(dict.fromkeys(ctx.scopes))))
                    spent[f"rule logic ({rep})"] += clock() - t3
                for rep in ("first", "again"):
                    t4 = clock()
                    for rule, evidence, scopes in fired:
                        build_match(rule, ctx, list(evidence), scopes)
                    spent[f"evidence ({rep})"] += clock() - t4
                spent["context"] += t1 - t0
                spent["candidates"] += t2 - t1
            for name, seconds in spent.items():
                totals[name].append(seconds / len(self.articles) * 1e6)
        return {name: statistics.median(v) for name, v in totals.items()}

    def regex_ratio(self, sample_articles: int = 20, runs: int = 3) -> float:
        sample = self.articles[:sample_articles]
        patterns = [regex_for(q) for _id, q in self.rules[:1000]]
        regex_s = time_runs(lambda: [p.search(a.title + "\n\n" + a.text) for a in sample for p in patterns], 1)
        ours_s = time_runs(lambda: [self.ruleset.match(a) for a in sample], runs)
        return (regex_s * len(self.rules) / len(patterns)) / ours_s


def serve() -> None:
    """The worker: one JSON command per line on stdin, one JSON answer per line on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the answers
    bench = Bench()
    for line in sys.stdin:
        cmd = json.loads(line)
        answer = getattr(bench, cmd.pop("op"))(**cmd)
        out.write(json.dumps(answer) + "\n")
        out.flush()


class Worker:
    """A Bench in a child process of this interpreter, with this or another checkout's `monitor`, the same inputs."""

    def __init__(self, checkout: Path | None = None) -> None:
        """This interpreter; `checkout`: another source tree whose `monitor` it imports first (PYTHONPATH)."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(checkout), os.environ.get(
            "PYTHONPATH", "")]))} if checkout else None
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def call(self, op: str, **args):
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the benchmark worker {self.proc.args[0]} stopped")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


def run(workers: dict[str, Worker], shape: str, sizes=SIZES, runs: int = 5) -> list[dict]:
    """Each size loaded in every worker, then timed in alternation (old, new, old, ...): load on a shared machine
    falls on both alike. Medians of `runs`."""
    rows = []
    if shape in PACKS:
        print("| rules | articles | load + compile s | old µs/article | new µs/article | new/old | evaluated/article | "
              "matches | same | vs regex |")
    for n in (0,) if shape in PACKS else sizes:  # (a pack has the one size it has)
        loaded = {name: w.call("load", shape=shape, n=n) for name, w in workers.items()}
        times: dict[str, list[float]] = {name: [] for name in workers}
        for _ in range(runs):
            for name, w in workers.items():
                times[name].append(w.call("time", runs=1))
        new = loaded["new"]
        row = {"rules": new["rules"], **({"articles": new["articles"]} if shape in PACKS else {}), "compile_s": new["compile_s"], "matches": new["matches"], "evaluated": new["evaluated"],
               "us": {name: statistics.median(t) for name, t in times.items()},
               "same": all(v["digest"] == new["digest"] for v in loaded.values())}
        if n >= 1000 and shape == "generic":
            row["regex_ratio"] = workers["new"].call("regex_ratio")
        rows.append(row)
        print(shape, _row_text(row), flush=True)
    return rows


def print_phases(workers: dict[str, Worker], shapes: list[str], sizes: list[int]) -> None:
    """`--phases`: one table per shape, a column per size and side."""
    try:
        for shape in shapes:
            columns = {}
            for n in sizes:
                for name, w in workers.items():
                    w.call("load", shape=shape, n=n)
                    columns[f"{name} {n:,}"] = w.call("phases")
            names = list(next(iter(columns.values())))
            print(f"\n{shape}: median CPU µs per article\n| phase | " + " | ".join(columns) + " |")
            print("| --- |" + " ---: |" * len(columns))
            for name in [*names, "total"]:  # (total: what `match` does, the first time of each)
                cells = [sum(v for k, v in c.items() if "again" not in k) if name == "total" else c[name]
                         for c in columns.values()]
                print(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in cells) + " |", flush=True)
    finally:
        for w in workers.values():
            w.close()


def _row_text(row: dict) -> str:
    us = row["us"]
    old = f"{us['old']:,.0f}" if "old" in us else "-"
    ratio = f"{us['new'] / us['old']:.2f}" if "old" in us else "-"
    regex = f"{row['regex_ratio']:.0f}x" if "regex_ratio" in row else "-"
    same = "yes" if row["same"] else "**no**"
    articles = f" {row['articles']:,} |" if "articles" in row else ""  # (the packs' tables: their texts differ)
    return (f"| {row['rules']:,} |{articles} {row['compile_s']:.2f} | {old} | {us['new']:,.0f} | {ratio} | "
            f"{row['evaluated']:,.1f} | {row['matches']:,} | {same} | {regex} |")


def growth(rows: list[dict], name: str) -> float | None:
    if name not in rows[0]["us"]:
        return None
    return rows[-1]["us"][name] / rows[0]["us"][name]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} CPUs (nproc), {model}"


SHAPE_TEXT = {
    "generic": "Generic rules (`TEMPLATES`): 4 words each drawn from the corpus's own words (frequency ranks "
               "200-20,000) and the gazetteer aliases, in 8 shapes (phrases, OR lists, NOT, wildcards, `\"a b\"~5`, "
               "`NEAR/8`, `title:`, `sentence:(...)` with entities).",
    "desk": "Rules shaped like an analysts' desk (`ANALYST_SHAPES`): each watches a word of its own that occurs in "
            "one or two articles of the corpus (a person, place, company or programme), judged with the cue lists "
            "and entities all rules share (`sentence:(\"name\" AND (@commitment OR pledg*) AND NOT (@hedge OR "
            "@appeal))`, `\"name\" AND (@weapon OR @materiel OR @arms) AND NOT (@sanction OR @combat)`, `title:`, "
            "`@state AND @money`, `@question`, proximity).",
    "desk-10": "The same desk shapes, but only 10% of the watched words occur in the corpus (the rest are names "
               "today's articles do not mention, as most of a real watch list on most days).",
    "pack": "The shipped rules as they are (`rules/`: `arms-pledge`, `arms-transfer-watch` and the keyword example "
            "`leopard-keywords-example`, with the cue lists, gazetteers, officials and dates they read), over the same "
            "corpus articles.",
    "pack-dev": "The shipped pack over the 160 pledge-dev White House texts (`tests/data/pledge-dev/dev.jsonl`: "
                "remarks, press briefings and statements, 12,600 characters on average, most of them hard-wrapped "
                "transcripts), the texts it is written for.",
}


def section(results: dict[str, list[dict]], articles: int, megabytes: float, against: str | None) -> str:
    lines = [
        "## Matching",
        "",
        f"Date: {dt.date.today().isoformat()}. Machine: {machine()}. Each side a single process on one core; load "
        f"average {os.getloadavg()[0]:.1f} at the end (other sessions' jobs shared the 2 cores throughout; CPU time "
        "is measured and the two sides are timed in alternation, so the ratios hold better than the absolute "
        "figures, which are several times slower than on an idle machine).",
        f"Command: `python -m bench.matching --against {against}`" if against else
        "Command: `python -m bench.matching`",
        "",
        f"Input: {articles} articles ({megabytes:.2f} MB of title + text) extracted from `../shared/corpus/pages` "
        "with trafilatura `bare_extraction`. Times are medians of 5 alternating runs (process CPU time) of "
        "`RuleSet.match` over all articles (normalisation, one automaton pass, the rule index, rule logic, evidence "
        "of the matches), after `gc.freeze()` of the loaded rules. "
        + (f"\"old\": `main` checked out at `{against}` run by this interpreter with that checkout first on its path, this same benchmark file running there "
           "as a worker on the same inputs; \"same matches\": the two sides' matches (rules, terms, entities, "
           "fields, snippets) are identical for every article." if against else ""),
        "",
    ]
    for shape, rows in results.items():
        if shape in PACKS:
            lines += [f"### {shape}", "", SHAPE_TEXT[shape], "",
                      "| rules | articles | load + compile s | old µs per article | new µs per article | new / old | "
                      "rules evaluated per article | matches | same matches | vs one regex per rule |",
                      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
                      *(_row_text(r) for r in rows), ""]
            continue
        old, new = growth(rows, "old"), growth(rows, "new")
        top, base = rows[-1]["rules"], rows[0]["rules"]
        verdict = "met" if new is not None and new <= 3 else "missed"
        lines += [
            f"### {shape}",
            "",
            SHAPE_TEXT[shape],
            "",
            "| rules | load + compile s | old µs per article | new µs per article | new / old | rules evaluated per "
            "article | matches | same matches | vs one regex per rule |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *(_row_text(r) for r in rows),
            "",
            f"Cost per article of {top:,} rules vs {base:,}: "
            + (f"old {old:.2f}x, " if old is not None else "") + f"new **{new:.2f}x** (target <= 3x: {verdict}).",
            "",
        ]
    if "generic" in results:
        lines += [
            "\"vs one regex per rule\": the same rules' positive terms as one compiled Python `re` per rule (IGNORECASE, "
            "word boundaries, hyphen/space variants) searched over a 20-article sample, extrapolated to all rules of "
            "the row, divided by our time on the same sample; the regexes do less work (no NOT, no scopes, no "
            "entities), so the ratio understates the difference.",
            "",
        ]
    return "\n".join(lines)


def write_section(text: str, path: Path = BENCHMARKS) -> None:
    """Replace only the '## Matching' section (up to the next '## '), keeping other sections as they are."""
    current = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"^## Matching\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--shapes", default=",".join(SHAPES + PACKS),
                        help=f"comma-separated, of {', '.join(SHAPES + PACKS)}")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", help="another checkout (e.g. of main) to time side by side, with this "
                        "interpreter and that checkout's monitor")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--phases", action="store_true",
                        help="print where the time goes (see Bench.phases) for each shape and size, write nothing")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    corpus_pages()  # unset or wrong: one line here, not a stopped worker
    if args.worker:
        return serve()
    articles = extracted_articles()  # extracted (and cached) once, before the workers read the cache
    megabytes = sum(len((a.title + "\n\n" + a.text).encode()) for a in articles) / 1e6
    workers = {"new": Worker()}
    if args.against:
        workers = {"old": Worker(Path(args.against).resolve()), **workers}
    if args.phases:
        return print_phases(workers, args.shapes.split(","), [int(s) for s in args.sizes.split(",")])
    print("| rules | load + compile s | old µs/article | new µs/article | new/old | evaluated/article | matches | same | "
          "vs regex |")
    try:
        results = {shape: run(workers, shape, tuple(int(s) for s in args.sizes.split(",")), args.runs)
                   for shape in args.shapes.split(",")}
    finally:
        for w in workers.values():
            w.close()
    from bench.common import save_result  # not at the top: the workers run this file as a script

    save_result("matching", {"args": vars(args), "results": results})
    if not args.no_write:
        write_section(section(results, len(articles), megabytes, args.against))
        print(f"wrote the Matching section of {BENCHMARKS}")


if __name__ == "__main__":
    main()
