"""The matcher's per-article pieces, each alone: segmentation, folding, normalisation, sums, counts, speaker labels.

Run: python -m bench.rules_pieces [--against ../wt-base] [--rounds 3]   (prints a table; writes nothing)
Each side runs in its own process (this interpreter, the other checkout first on its path), rounds in alternation;
a figure is the median over the rounds of each piece's median CPU µs per text over 9 loops, on the corpus articles
(bench.matching's extraction, cached) and on the pledge-dev texts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "pledge-dev" / "dev.jsonl"


def pieces(corpus_json: str) -> dict:
    """In a worker: every piece timed over both sets of texts (the `monitor` first on the path is the one timed)."""
    from monitor.rules import amounts, document, segment
    from monitor.rules.evaluate import read_labelled
    from monitor.rules.normalise import Normalised, fold_text

    def with_sentences(text: str) -> None:
        nz = Normalised(text, "en")
        nz.sentences()  # (the offset map is built on the way)

    timed = {
        "`segment()`": lambda text: segment.segment(text, "en"),
        "`fold_text`": fold_text,
        "`Normalised()` (fold, URLs, squeeze)": lambda text: Normalised(text, "en"),
        "`find_money`": amounts.find_money,
        "`find_quantities`": amounts.find_quantities,
        "speaker labels (`label_lines`)": document.label_lines,
        "`Normalised` + offset map + `sentences()`": with_sentences,
    }
    corpus = [f"{a['title']}\n\n{a['text']}" if a["title"] else a["text"] for a in json.loads(Path(corpus_json).read_text())]
    dev = [f"{r.title}\n\n{r.text}" for r in read_labelled(DEV)]
    out = {}
    for name, texts in (("corpus", corpus), ("pledge-dev", dev)):
        for piece, fn in timed.items():
            loops = []
            for _ in range(9):
                t0 = time.process_time()
                for text in texts:
                    fn(text)
                loops.append(time.process_time() - t0)
            out[f"{name}|{piece}"] = statistics.median(loops) / len(texts) * 1e6
    return out


def side(checkout: Path | None, corpus_json: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(checkout) if checkout else str(ROOT),
                                                                         os.environ.get("PYTHONPATH", "")]))}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(corpus_json)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", help="another checkout (e.g. of main) timed in alternation with this one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(pieces(args.worker)))
        return
    from bench.matching import CACHE, extracted_articles

    extracted_articles()  # the corpus articles, extracted once and cached (needs $MONITOR_CORPUS the first time)
    corpus_json = CACHE / "articles.json"
    sides = {"new": None, **({"old": Path(args.against).resolve()} if args.against else {})}
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, checkout in sides.items():
            runs[name].append(side(checkout, corpus_json))
    keys = list(runs["new"][0])
    med = {name: {k: statistics.median(r[k] for r in rs) for k in keys} for name, rs in runs.items()}
    print("| texts | piece | " + ("old | " if args.against else "") + "new | " + ("new / old |" if args.against else ""))
    print("| --- | --- | " + ("---: | " * (3 if args.against else 1)))
    for key in keys:
        texts, piece = key.split("|")
        new = med["new"][key]
        if args.against:
            old = med["old"][key]
            print(f"| {texts} | {piece} | {old:,.0f} | {new:,.0f} | {new / old:.2f} |")
        else:
            print(f"| {texts} | {piece} | {new:,.0f} |")


if __name__ == "__main__":
    main()
