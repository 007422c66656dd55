"""Normalisation, offset map back to the original, sentence splitting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.rules.normalise import Normalised, normalise_phrase, split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Leopard-2", "leopard 2"),
        ("Leopard 2", "leopard 2"),
        ("LEOPARD – 2", "leopard 2"),
        ("Kyiv’s “deal”", "kyiv s deal"),
        ("Zürich Café", "zurich cafe"),
        ("STRASSE Straße", "strasse straße"),  # ß stays one letter: the offset map stays one-to-one
        ("155-mm", "155 mm"),
    ],
)
def test_phrase_folds_case_dashes_accents_and_quotes(text, expected):
    assert normalise_phrase(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Leopard-2  tanks, Kyiv’s “deal”.",
        "  -- Hello   World!! U.S. Gen. Milley said.",
        "Straße über Café — Ærø",
        "x",
        "",
    ],
)
def test_every_normalised_character_maps_back_to_its_original(text):
    nz = Normalised(text)
    assert nz.norm.startswith(" ") and nz.norm.endswith(" ")
    assert "  " not in nz.norm
    for i, ch in enumerate(nz.norm):
        if ch != " ":
            original = text[nz.to_orig(i)]
            assert normalise_phrase(original)[:1] == ch or ch in normalise_phrase(original)
            assert nz.to_norm(nz.to_orig(i)) == i
    for j in range(len(text)):  # positions inside a squeezed run of breaks map to its one space
        assert nz.norm[nz.to_norm(j)] == (" " if not text[j].isalnum() else normalise_phrase(text[j])[:1])


def test_span_text_returns_the_words_as_written():
    nz = Normalised("Ukraine would get 14 Leopard-2 tanks.")
    start = nz.norm.index("leopard 2")
    assert nz.span_text(start, start + len("leopard 2")) == "Leopard-2"


def test_sentences_do_not_break_after_abbreviations():
    text = "U.S. Army Gen. Mark Milley said it. He went home! \"Yes.\" Then 14 tanks.\nNew paragraph"
    sentences = [text[a:b].strip() for a, b in split_sentences(text)]
    assert sentences == [
        "U.S. Army Gen. Mark Milley said it.",
        "He went home!",
        "\"Yes.\"",
        "Then 14 tanks.",
        "New paragraph",
    ]


def test_every_position_belongs_to_one_sentence():
    nz = Normalised("First one. Second one? Third.")
    spans = nz.sentences()
    assert spans[0][0] == 0 and spans[-1][1] == len(nz.norm)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert nz.sentence_index(nz.norm.index("second")) == 1


def test_local_sentence_lookup_agrees_with_full_split():
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    for path in sorted((root / "seeds").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        full = Normalised(text)
        spans = full.sentences()
        for pos in range(1, len(full.norm) - 1, 7):
            if full.norm[pos] != " ":
                assert Normalised(text).sentence_at(pos) == spans[full.sentence_index(pos)], (path.name, pos)


def test_a_local_sentence_or_paragraph_lookup_at_a_squeezed_run_is_the_full_splits():
    """A sentence that opens with punctuation ("“", "$", a bullet's "- [") starts, in the segmented text, at the one
    space its run of breaks folds to. Found locally (the first few lookups), the sentence at that space was the one
    before (it was looked up from the run's start) and did not even hold the position; now every position, spaces
    too, gets the full split's sentence and paragraph, and each lookup's span holds its position."""
    root = Path(__file__).resolve().parents[2]
    dev = root / "tests" / "data" / "pledge-dev" / "dev.jsonl"
    texts = ["Here is the agenda:\n“Shipbuilding, drones.”\n\n- [Ammunition](https://x.com/1) too.",
             "Says:\n$5 million. “Quoted.” (Aside.) **Bold.**\n\n-   [Link](https://a.b/c):\n    “More.”"]
    records = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts += [r["text"] for r in records if r["id"] == "whdev-40526914a6"]
    squeezed = 0
    for text in texts:
        full = Normalised(text)
        spans = full.sentences()
        starts = [a for a, _b in spans]  # (a long text: the positions around each sentence start, not every one)
        near = range(len(full.norm)) if len(text) < 200 else sorted({p for a in starts for p in (a - 1, a, a + 1)})
        for pos in (p for p in near if 0 <= p < len(full.norm)):
            local = Normalised(text)
            sentence = local.sentence_at(pos)
            assert sentence == spans[full.sentence_index(pos)], (text[:40], pos)
            assert sentence[0] <= pos < sentence[1], (text[:40], pos)
            assert local.paragraph_at(pos) == full.paragraph_at(pos), (text[:40], pos)
            squeezed += full.norm[pos] == " " and pos in {a for a, _b in spans[1:]}
    assert squeezed > 5  # sentences that start at a squeezed run's space were looked up


def test_the_reach_of_words_from_a_space_is_what_the_word_index_gives():
    """word_reach (a walk over the next spaces, for split verbs' particles) against word_span over the word index,
    at every space of texts of one, a few and many words."""
    dev = Path(__file__).resolve().parents[2] / "tests" / "data" / "pledge-dev" / "dev.jsonl"
    texts = ["", "a", "a b", "Er sagte am Montag zu.", "one two three " * 30, "x  y\n\nz, w. " * 7]
    texts += [json.loads(line)["text"] for line in dev.read_text(encoding="utf-8").splitlines()[:20] if line.strip()]
    for text in texts:
        nz = Normalised(text)
        for pos in [i for i, c in enumerate(nz.norm) if c == " "]:
            for n in (0, 1, 15):
                w = nz.word_index(pos)
                assert nz.word_reach(pos, n) == nz.word_span(w, w + n)[1], (text, pos, n)
