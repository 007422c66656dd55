"""Sentence splitters side by side: monitor's segment.py against pysbd, on speed and on the pledge pack's dev-set figures.

Run: python -m bench.segmenters   (needs `pip install -e '.[bench]'`, which brings pysbd). Prints; writes nothing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from monitor.rules import load_rules, normalise
from monitor.rules.evaluate import evaluate, read_labelled
from monitor.rules.segment import Segments, segment

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "pledge-dev" / "dev.jsonl"
PYSBD_LANGUAGES = ("en", "de", "fr", "nl", "da", "pl", "ru")
_segmenters: dict[str, object] = {}


def with_pysbd(text: str, language: str = "") -> Segments:
    """Paragraphs at blank lines (pysbd knows no hard wraps or speaker labels), sentences by pysbd inside each."""
    import pysbd

    lang = language if language in PYSBD_LANGUAGES else "en"
    seg = _segmenters.setdefault(lang, pysbd.Segmenter(language=lang, clean=False, char_span=True))
    paragraphs, sentences = [], []
    for m in re.finditer(r"[^\n]+(?:\n(?!\s*\n)[^\n]*)*", text):
        if m.start():
            paragraphs.append(m.start())
            sentences.append(m.start())
        sentences.extend(m.start() + span.start for span in seg.segment(m.group()) if span.start)
    return Segments(tuple(paragraphs), tuple(sorted(set(sentences))))


def main() -> None:
    records = read_labelled(DEV)
    texts = [f"{r.title}\n\n{r.text}" for r in records]
    megabytes = sum(map(len, texts)) / 1e6
    for name, splitter in (("monitor segment.py", segment), ("pysbd", with_pysbd)):
        start = time.process_time()
        for text in texts:
            splitter(text, "en")
        cpu = time.process_time() - start
        normalise.segment = splitter  # what Normalised calls
        report = evaluate(load_rules(ROOT / "rules"), "arms-pledge", records)
        print(f"{name}: {cpu:.2f} s CPU for {megabytes:.2f} MB ({megabytes / cpu:.2f} MB/s); arms-pledge precision "
              f"{report.precision:.3f} recall {report.recall:.3f} (TP {report.tp}, FP {report.fp}, FN {report.fn})")
    normalise.segment = segment


if __name__ == "__main__":
    main()
