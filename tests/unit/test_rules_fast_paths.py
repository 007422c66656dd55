"""The matcher's fast paths give what the plain forms they replace give: the segmenter's candidate regex and its
decisions taken inline, counts and sums found by RE2's search in a loop on UTF-8 bytes, sums in words searched around
their fixed parts, folding and the squeezing of spaces, speaker labels, officials found by bisection, kind groups
after the second automaton pass, most_specific (pledge-dev texts, seeds, slices, edge and random texts)."""

from __future__ import annotations

import collections
import json
import random
import re
import textwrap
from pathlib import Path

import re2

from monitor.rules import amounts, segment
from monitor.rules.evidence import most_specific

ROOT = Path(__file__).resolve().parents[2]
EDGES = [
    "a.\n\n\n b", "x ...  Y", "x!\u201d \u00a0Z", "\n\n", "\n \n\t\nq", "end.", "a\n", "….. \"' a",
    "U.S. officials. The", "Wait.… Next", "So…… Then", "Really?! Yes",
    "Zwölf Panzer, 14 Leopard-2 battle tanks, dozens of drones, 1 250 Haubitzen, fünf Systeme und zwölf Raketen",
    "a three-digit million euro sum", "A THREE-DİGIT MİLLION EURO SUM", "hundreds of millions of euros",
    "HUNDREDS OF BILLIONS OF DOLLARS", "eine dreistellige Millionenbetrag", "ſeven ſhells", "Ķyiv 12 танків",
]


def texts() -> list[str]:
    dev = ROOT / "tests" / "data" / "pledge-dev" / "dev.jsonl"
    out = [json.loads(line)["text"] for line in dev.read_text(encoding="utf-8").splitlines() if line.strip()]
    out += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "seeds").glob("*.txt"))]
    rnd = random.Random(5)
    out += [t[i : i + rnd.randrange(1, 600)] for t in list(out) for i in (rnd.randrange(len(t) or 1),)]
    return out + EDGES


def test_the_candidate_regex_finds_what_the_three_alternatives_find():
    plain = re.compile(r"\n[ \t\u00a0]*(?:\n[ \t\u00a0]*)+|\n|[.!?…]+[\"'”’»)\]*_]*[ \t\u00a0]+")
    for text in texts():
        assert [m.span() for m in segment._CANDIDATE.finditer(text)] == [m.span() for m in plain.finditer(text)], text


def plain_breaks(text, lo, hi, abbrev, width):
    """segment._breaks as it was: _line_break or _sentence_break called for every candidate."""
    n = len(text)
    for m in segment._CANDIDATE.finditer(text, lo, hi):
        end = m.end()
        if end >= n:
            return
        token = m.group()
        if token[0] == "\n":
            kind = "paragraph" if token.count("\n") > 1 else segment._line_break(text, m.start(), end, width)
        else:
            kind = "sentence" if segment._sentence_break(text, m.start(), end, abbrev) else None
        if kind is None:
            continue
        while end < n and text[end] in " \t\u00a0\n":
            end += 1
        if end >= n:
            return
        yield kind, end


def test_breaks_decided_without_the_call_are_those_the_decisions_give():
    """_breaks takes the commonest outcomes of _line_break and _sentence_break inline (a hard wrap before a small
    letter, a line break in unwrapped text, "!" or "?" before a capital): the same breaks as calling them for every
    candidate, in wrapped and unwrapped texts, whole and from any word on."""
    rnd = random.Random(9)
    pieces = ["a", "b", "Z", "É", "ß", "1", " ", "  ", "\t", "\u00a0", "\n", "\n\n", " \n", ".", "!", "?", "…", "\"",
              "“", "(", "*", "- ", "Q ", "MR. SMITH: ", "U.S.", "Mr.", "e.g.", "R.", "etc.", "z.B.", "word", "Word"]
    samples = texts() + ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(40))) for _ in range(4000)]
    samples += ["\n".join(textwrap.wrap(t, 72)) for t in texts()[:200]]  # hard-wrapped prose
    kinds = collections.Counter()
    for text in samples:
        for language in ("", "de"):
            abbrev = segment._abbreviations(language)
            for width in {None, segment.wrap_width(text), 60}:
                lo = segment._word_start(text, rnd.randrange(len(text) + 1))
                for start, stop in ((0, len(text)), (lo, len(text))):
                    fast = list(segment._breaks(text, start, stop, abbrev, width))
                    assert fast == list(plain_breaks(text, start, stop, abbrev, width)), (repr(text[:80]), width)
                    kinds.update(kind for kind, _at in fast)
    assert kinds["sentence"] > 10_000 and kinds["paragraph"] > 10_000


def test_counts_found_on_bytes_sit_where_the_str_interface_puts_them():
    on_str = re2.compile(amounts._COUNT.pattern.decode())
    for text in texts():
        assert amounts._spans(amounts._COUNT, text) == [m.span() for m in on_str.finditer(text)], text[:80]


def test_sums_found_by_the_search_loop_sit_where_the_wrappers_finditer_puts_them():
    for text in texts():
        assert amounts._spans(amounts._MONEY, text) == [m.span() for m in amounts._MONEY.finditer(text)], text[:80]
        data = text.encode()
        assert amounts._byte_spans(amounts._COUNT, data) == [m.span() for m in amounts._COUNT.finditer(data)]


def test_sums_in_words_searched_around_their_fixed_parts_are_those_a_search_of_the_whole_text_finds():
    rnd = random.Random(4)
    forms = ["a three-digit million euro sum", "Double digit BILLION dollars figure", "hundreds of millions of euros",
             "TENS OF BILLIONS OF POUNDS", "eine dreistellige Millionenbetrag", "fünfstelligen Milliardensumme",
             "ſeven-digit million euro sum", "digital", "of millions of", "stellig", "x", " ", ", ", "\n", "é", "K"]
    samples = texts() + ["".join(rnd.choice(forms) for _ in range(rnd.randrange(12))) for _ in range(3000)]
    found = odd = 0
    for text in samples:
        expect = [m.span() for m in amounts._MONEY_WORDS.finditer(text)]
        assert [m.span() for m in amounts._money_words(text)] == expect, text[:80]
        found += len(expect)
        odd += bool(expect) and any(c in text for c in amounts._ODD_CASE)
    assert found >= 1000 and odd >= 50


def test_folded_text_holds_no_whitespace_but_spaces():
    """Normalised squeezes the folded text's runs of spaces with a regex: the same as split and join only because
    folding leaves no other whitespace (line breaks, tabs, no-break and zero-width spaces all become spaces)."""
    from monitor.rules.normalise import Normalised, _without_urls, fold_text

    odd = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2007\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
    rnd = random.Random(2)
    samples = texts() + ["".join(rnd.choice("ab .:/" + odd) for _ in range(rnd.randrange(40))) for _ in range(3000)]
    for text in samples:
        folded = _without_urls(fold_text(text), text)
        assert not any(c.isspace() and c != " " for c in folded), repr(text[:80])
        squeezed = " ".join(folded.split())
        assert Normalised(text).norm == (" " + squeezed + " " if squeezed else " "), repr(text[:80])


def test_the_fold_table_stays_bounded_by_a_text_of_every_code_point():
    from monitor.rules import normalise

    text = "".join(chr(c) for c in range(0x400, 0x400 + 3 * normalise.FOLD_TABLE_MAX) if not 0xD800 <= c < 0xE000)
    assert normalise.fold_text(text) == "".join(map(normalise.fold_char, text))
    assert len(normalise._FOLD) <= normalise.FOLD_TABLE_MAX


def test_fold_char_is_idempotent_on_every_code_point():
    """fold_text replaces each distinct character by its fold in any order: a fold folded again must not change."""
    from monitor.rules.normalise import fold_char

    changed = [hex(c) for c in range(0x110000) if fold_char(fold_char(chr(c))) != fold_char(chr(c))]
    assert not changed


def test_folding_a_whole_text_gives_fold_char_of_each_character():
    """fold_text replaces each of a few distinct non-ASCII characters throughout and folds ASCII on the bytes, or
    translates a text of another script through a table: fold_char of every character either way."""
    from monitor.rules.normalise import MANY_LETTERS, fold_char, fold_text

    rnd = random.Random(6)
    alphabet = ("aZ9 .,-\n\t’“”—…éÉäÄßẞİıſKﬁ\u0301\u00a0\u200b\udcff" + "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВҐЇЄІ"
                + "αβγΣ中文한글ğş")
    prose = "The tanks, the guns and the drones were sent today. " * 3
    samples = texts() + ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(60))) for _ in range(3000)]
    samples += [prose + "".join(rnd.sample(alphabet, rnd.randrange(10, 60))) for _ in range(300)]  # many, in prose
    paths = collections.Counter()
    for text in samples:
        assert fold_text(text) == "".join(map(fold_char, text)), repr(text[:80])
        distinct = {c for c in text if ord(c) > 127}
        many = len(text.encode("utf-8", "surrogatepass")) - len(text) > len(text) / 4 or len(distinct) > MANY_LETTERS
        paths["ascii" if not distinct else "table" if many else "replace"] += 1
    assert min(paths.values()) >= 100, paths


def test_most_specific_keeps_what_the_pairwise_comparison_keeps():
    def pairwise(values):
        values = list(dict.fromkeys(values))
        return [v for v in values if not any(w != v and w.startswith(v + " ") for w in values)]

    rnd = random.Random(1)
    words = ["Leopard", "Leopard 2", "Leopard 2 A6", "a", "a b", "b", "Patriot", " x", "x ", "x  y", "x", "", " "]
    for _ in range(5000):
        values = [rnd.choice(words) for _ in range(rnd.randrange(0, 8))]
        assert most_specific(values) == pairwise(values), values


def test_a_one_element_tuple_finds_the_first_hit_at_or_after_a_position():
    """The matcher looks hits up with bisect_left(hits, (lo,)) (tuples compared in C) where it called a key function
    per step: the same index for hits of two and of three elements, with starts repeated."""
    from bisect import bisect_left

    rnd = random.Random(9)
    for _ in range(2000):
        starts = sorted(rnd.randrange(40) for _ in range(rnd.randrange(12)))
        hits = sorted((s, s + rnd.randrange(1, 9), *(("v",) if rnd.random() < 0.5 else ())) for s in starts)
        for lo in range(-1, 42):
            assert bisect_left(hits, (lo,)) == bisect_left(hits, lo, key=lambda h: h[0]), (hits, lo)


def test_whitespace_squeezed_by_split_is_what_the_regex_squeezes():
    odd = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2007\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
    rnd = random.Random(3)
    samples = texts() + ["".join(rnd.choice("ab " + odd) for _ in range(rnd.randrange(30))) for _ in range(3000)]
    for text in samples:
        assert " ".join(text.split()) == re.sub(r"\s+", " ", text).strip(), repr(text)


def test_speaker_labels_found_from_line_breaks_are_those_finditer_finds():
    from monitor.rules import document

    rnd = random.Random(8)
    pieces = ["\n", "\r\n", "\n\n", " ", "\t", "\u00a0", "Q", "Q  Why", "THE PRESIDENT", "MR. SMITH", ":", ": ", "a",
              "W"]
    samples = texts() + ["Q  Why now?\nTHE PRESIDENT: Because.\n  MR. SMITH:\u00a0yes\nQ:\n\nQ\u00a0\u00a0\u00a0\u00a0\"No\"\nQ ",
                         "PM: a\nb MR. X: c\n\u00a0A.B.: d\nQ\n", "\nQ: first line empty", "\n\n  THE PRESIDENT: x"]
    samples += ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(30))) for _ in range(3000)]
    found = 0
    for text in samples:
        expect = [(m.span(1), m.group(1)) for m in document.LABEL_LINE.finditer(text)]
        assert [(m.span(1), m.group(1)) for m in document.label_lines(text)] == expect, text[:80]
        found += len(expect)
    assert found >= 3000


def test_officials_found_by_bisection_are_those_a_scan_of_every_official_finds(shipped_rules):
    """attributed and named_before look only at the officials from the sentence's or paragraph's start on; the scan
    over every official of the article they replace gives the same state for every first- and third-person word."""
    from monitor.models import Article
    from monitor.rules import document

    def scanned_attributed(ctx, pos):
        a, b = ctx.nz.sentence_at(pos)
        near = [(abs(s - pos), st) for s, e, st in ctx.entity_hits(document.OFFICIAL_KIND) if a <= s and e <= b]
        return min(near)[1] if near else None

    def scanned_named_before(ctx, pos):
        a, _b = ctx.nz.paragraph_at(pos)
        before = [(s, st) for s, e, st in ctx.entity_hits(document.OFFICIAL_KIND) if a <= s < pos]
        return min(before)[1] if before else None

    resolved = 0
    for text in texts():
        ctx = shipped_rules.context(Article(url="test:", text=text))
        for kind, fast, plain in ((document.SELF_KIND, document.attributed, scanned_attributed),
                                  (document.THIRD_KIND, document.named_before, scanned_named_before)):
            for s, _e, _v in ctx.entity_hits(kind):
                state = fast(ctx, s)
                assert state == plain(ctx, s), (text[:80], kind, s)
                resolved += state is not None
    assert resolved >= 500


def test_kinds_grouped_again_after_the_second_pass_are_those_a_fresh_grouping_gives(shipped_rules):
    """A context that grouped its hit keys by kind before the second automaton pass adds the second pass's keys to
    the groups; a context that groups only after both passes has the same groups, in the same order."""
    from monitor.models import Article

    c = shipped_rules._compiled
    compared = 0
    for text in texts():
        article = Article(url="test:", text=text, language="en")
        early = shipped_rules.context(article)
        early._keys_by_kind()  # grouped after the first pass
        early._scan_secondary()
        late = shipped_rules.context(article)
        late._scan_secondary()
        assert dict(early._keys_by_kind()) == dict(late._keys_by_kind()), text[:80]
        compared += any(k not in c.primary_kinds for k in late._keys_by_kind())
    assert compared >= 100  # texts where the second pass found keys of its own kinds
