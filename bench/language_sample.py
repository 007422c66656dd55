"""`python -m bench.language_sample`: does a shorter sample change the language detected on the corpus texts, and
what does each sample length cost?

The texts: what monitor's extraction keeps of the corpus pages (trafilatura with monitor's options, at least 200
characters), and the labelled pledge-dev texts (title + text, as `monitor rules eval` detects them). The reference is
the language of the first 1,500 characters (monitor before issue 14). For each sample length, and for monitor's
detect_language (its first sample, then 1,500 characters when unsure): how many texts get another answer than the
reference (and which), and the CPU ms of one detection (median of `--repeat` passes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench.extraction import URL, page_bodies
from monitor.language import LANGUAGE_MIN_CONFIDENCE, _identifier, detect_language

PLEDGE_DEV = Path(__file__).resolve().parent.parent / "tests/data/pledge-dev/dev.jsonl"

SIZES = (5000, 3000, 1500, 1000, 600, 500, 300)


def corpus_texts(min_chars: int = 200) -> list[str]:
    import trafilatura

    texts = []
    for i, body in enumerate(page_bodies()):
        doc = trafilatura.bare_extraction(body, url=URL.format(n=i), with_metadata=True, include_comments=False,
                                          include_tables=True, deduplicate=False)
        if doc is not None and doc.text and len(doc.text.strip()) >= min_chars:
            texts.append(doc.text.strip())
    return texts


def pledge_texts() -> list[str]:
    records = [json.loads(line) for line in PLEDGE_DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [f"{r.get('title', '')}\n\n{r.get('text', '')}" for r in records]


def detect(text: str, size: int | None) -> str:
    """monitor.language.detect_language with the sample length as a parameter (None: the whole text)."""
    sample = text if size is None else text[:size]
    if sum(ch.isalpha() for ch in sample[:400]) < 20:
        return ""
    lang, confidence = _identifier().classify(sample)
    return lang if confidence >= LANGUAGE_MIN_CONFIDENCE else ""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="sample lengths in characters")
    p.add_argument("--repeat", type=int, default=3, help="timed passes per length")
    args = p.parse_args(argv)
    for name, texts in (("corpus", corpus_texts()), ("pledge-dev", pledge_texts())):
        report(name, texts, [int(n) for n in args.sizes.split(",")], args.repeat)


def report(name: str, texts: list[str], sizes: list[int], repeat: int) -> None:
    reference = [detect(t, 1500) for t in texts]
    lengths = sorted(map(len, texts))
    print(f"{name}: {len(texts)} texts, median {lengths[len(lengths) // 2]} characters, "
          f"{sum(n > 1500 for n in lengths)} longer than 1,500; languages {sorted(set(reference))}")
    runs = [(f"{size:5d} characters", lambda t, size=size: detect(t, size)) for size in sizes]
    runs.append(("monitor's detect_language", detect_language))
    for label, fn in runs:
        got = [fn(t) for t in texts]
        differ = [(r, g) for r, g in zip(reference, got) if r != g]
        times = []
        for _ in range(repeat):
            started = time.process_time()
            for t in texts:
                fn(t)
            times.append((time.process_time() - started) / len(texts) * 1000)
        print(f"  {label}: {len(differ)} of {len(texts)} differ from 1,500 characters {differ[:6]}; "
              f"{statistics.median(times):.2f} ms CPU per text", flush=True)

if __name__ == "__main__":
    main()
