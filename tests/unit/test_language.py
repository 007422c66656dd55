"""Language detection looks at a short sample first and at the long one only when unsure: the languages it gives are
those of the long sample alone, on the labelled pledge-dev texts (where a short sample alone loses two)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from monitor import language
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


def test_the_mapped_model_classifies_as_py3langids_own_loading_does(tmp_path):
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    tables = language._mapped_tables(Path(MODEL_DIR) / MODEL_FILE, tmp_path)
    assert tables is not None
    ptc, pc, classes, nextmove, row, output = tables
    assert isinstance(ptc, np.memmap) and isinstance(nextmove, memoryview)  # file pages, not a copy in the heap
    mapped = LanguageIdentifier(ptc, pc, classes, nextmove, output, norm_probs=True, tk_row=row)
    loaded = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    for text in _texts()[:60] + ["Dänemark und die Niederlande finanzieren 14 Leopard-2-Panzer für die Ukraine.",
                                 "Le Danemark finance des chars Leopard 2 pour l'Ukraine.", "Слава Україні"]:
        assert mapped.classify(text[:LANGUAGE_SAMPLE]) == loaded.classify(text[:LANGUAGE_SAMPLE])


def test_the_model_is_unpacked_once_then_mapped_and_a_damaged_copy_is_unpacked_again(tmp_path):
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    model = Path(MODEL_DIR) / MODEL_FILE
    assert language._mapped_tables(model, tmp_path) is not None
    [folder] = [p for p in tmp_path.iterdir() if p.name.startswith("langid-")]  # no temporary folder left behind
    table = folder / "nextmove.npy"
    written = table.stat().st_mtime_ns
    assert language._mapped_tables(model, tmp_path) is not None
    assert table.stat().st_mtime_ns == written  # mapped as it is: not unpacked at every start

    size = table.stat().st_size
    with table.open("r+b") as f:
        f.truncate(size // 2)  # a disk that filled up, a copy cut short
    ptc, pc, classes, nextmove, row, output = language._mapped_tables(model, tmp_path)
    assert table.stat().st_size == size and len(nextmove) * 4 + 128 == size
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_without_a_writable_cache_the_model_is_loaded_into_memory(tmp_path, caplog):
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    caplog.set_level("INFO", logger="monitor.language")
    assert language._mapped_tables(Path(MODEL_DIR) / MODEL_FILE, blocker / "cache") is None
    assert "loaded into memory" in caplog.text
    assert language._mapped_tables(Path(MODEL_DIR) / MODEL_FILE, None) is None
