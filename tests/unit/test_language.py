"""Language detection looks at a short sample first and at the long one only when unsure: the languages it gives are
those of the long sample alone, on the labelled pledge-dev texts (where a short sample alone loses two)."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.language import (LANGUAGE_FIRST_SAMPLE, LANGUAGE_MIN_CONFIDENCE, LANGUAGE_SAMPLE, LANGUAGE_SURE,
                              _identifier, detect_language)

PLEDGE_DEV = Path(__file__).resolve().parents[1] / "data/pledge-dev/dev.jsonl"


def _texts() -> list[str]:
    records = [json.loads(line) for line in PLEDGE_DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [f"{r.get('title', '')}\n\n{r.get('text', '')}" for r in records]


def _long_sample_only(text: str) -> str:
    if sum(ch.isalpha() for ch in text[:400]) < 20:
        return ""
    lang, confidence = _identifier().classify(text[:LANGUAGE_SAMPLE])
    return lang if confidence >= LANGUAGE_MIN_CONFIDENCE else ""


def test_the_languages_are_those_of_the_long_sample():
    texts = _texts()
    assert len(texts) > 100
    assert [detect_language(t) for t in texts] == [_long_sample_only(t) for t in texts]


def test_an_unsure_short_sample_is_looked_at_again_at_length():
    unsure = [t for t in _texts() if len(t) > LANGUAGE_SAMPLE
              and _identifier().classify(t[:LANGUAGE_FIRST_SAMPLE])[1] < LANGUAGE_MIN_CONFIDENCE]
    assert unsure  # texts whose first 500 characters alone would get no language
    for text in unsure:
        assert detect_language(text) == "en"
    assert LANGUAGE_MIN_CONFIDENCE < LANGUAGE_SURE < 1
