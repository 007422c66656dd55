"""Paragraphs and sentences of real text: hard wraps, bullets, headings, transcript speaker labels, datelines.

Pure and one pass of a regex: returns where paragraphs and sentences start, as offsets into the original text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# Words whose trailing dot does not end a sentence, per language ("" = every language). Lower case, no dot.
ABBREVIATIONS: dict[str, frozenset[str]] = {
    "": frozenset({
        "u.s", "u.k", "u.n", "e.u", "u.s.a", "a.m", "p.m", "e.g", "i.e", "etc", "vs", "no", "nos", "st", "dr", "mr",
        "mrs", "ms", "prof", "gen", "lt", "col", "maj", "capt", "adm", "sgt", "cpl", "gov", "sen", "rep", "pres",
        "inc", "corp", "ltd", "co", "jr", "sr", "approx", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
        "sept", "oct", "nov", "dec", "fig", "ca", "op", "min", "max", "dept", "est", "edt", "cet", "cest", "d.c",
    }),
    "de": frozenset({
        "z.b", "bzw", "nr", "abs", "usw", "mio", "mrd", "bspw", "ggf", "vgl", "sog", "inkl", "zzgl", "evtl", "u.a",
        "d.h", "o.ä", "s", "bzgl", "jh", "jhd", "str", "tel", "hr", "fr", "dt", "kfz", "mind", "ehem",
        "gegr", "geb", "verh", "insb", "i.d.r", "z.t", "u.u",
    }),
    "fr": frozenset({"m", "mm", "mme", "mlle", "p.ex", "cf", "env", "art", "av", "bd", "n°", "chap", "vol"}),
    "nl": frozenset({"dhr", "mevr", "bijv", "o.a", "m.b.t", "ca", "nr", "mln", "mld", "jl", "resp"}),
    "da": frozenset({"hr", "fru", "bl.a", "f.eks", "mio", "mia", "kr", "nr", "ca", "jf", "dvs", "osv"}),
    "pl": frozenset({"mln", "mld", "tys", "np", "tzw", "m.in", "ok", "godz", "gen", "płk", "ppłk", "dr", "prof",
                     "ul", "nr", "r", "wg"}),
    "ru": frozenset({"г", "гг", "т.е", "т.д", "т.п", "млн", "млрд", "тыс", "см", "им", "ул", "т", "руб", "долл"}),
    "uk": frozenset({"р", "рр", "т.д", "млн", "млрд", "тис", "грн", "дол", "див", "ім", "вул", "т"}),
    "es": frozenset({"sr", "sra", "srta", "dña", "ud", "uds", "núm", "pág", "p.ej", "aprox", "excmo", "avda",
                     "mill", "dcha", "izq"}),
    "it": frozenset({"sig", "sigg", "sig.ra", "dott", "dott.ssa", "ing", "avv", "ecc", "pag", "cfr", "tel", "mln",
                     "mld"}),
    "pt": frozenset({"sr", "sra", "srs", "dra", "eng", "p.ex", "pág", "nº", "av", "aprox"}),
}

# Candidate boundaries: a blank line, a single line break, or sentence-final punctuation and the space after it.
# (Written to open with one character class, so the regex engine skips to the next such character instead of trying
# every position: the same matches as r"\n[ \t\u00a0]*(?:\n[ \t\u00a0]*)+|\n|[.!?…]+[\"'”’»)\]*_]*[ \t\u00a0]+", at
# half the cost; tests/unit/test_rules_fast_paths.py compares the two.)
_CANDIDATE = re.compile(r"[\n.!?…](?:(?<=\n)[ \t\u00a0]*(?:\n[ \t\u00a0]*)+|(?<=\n)"
                        r"|(?<=[.!?…])[.!?…]*[\"'”’»)\]*_]*[ \t\u00a0]+)")
_OPENERS = "\"'“‘„«([*_\\"  # may stand before the first letter of a sentence
_DASHES = "-–—"  # a dash and a space may open one too: a quote in Polish, Russian or Italian ("... Leopard. - Polska")
# A line that starts a paragraph of its own: a bullet, a numbered item, a markdown heading, a speaker label.
_BLOCK_START = re.compile(
    r"[ \t]*(?:[-*•·▪–—][ \t]|\\?#{1,6}[ \t]|\(?\d{1,2}[.)][ \t]|\([a-z]\)[ \t]|>[ \t]?"
    r"|(?:Q|[A-Z][A-Z.'’ -]{1,40}[A-Z.]):[ \t\u00a0]|Q[ \t\u00a0]{1,4}[A-Z\"“—-])"
)
_TERMINAL = tuple(".!?:;…\"'”’»)]")
WRAP_MAX = 120  # texts whose block lines are all at most this long may be hard-wrapped
# How far around an offset sentence_span first looks for breaks (4x further each time it finds none): news
# sentences are 100-250 characters, and each character looked at costs (a lookup is one regex pass over the reach)
LOCAL_REACH = 200


@dataclass(frozen=True)
class Segments:
    """Original offsets where each paragraph and each sentence after the first starts (both sorted)."""

    paragraphs: tuple[int, ...]
    sentences: tuple[int, ...]


def segment(text: str, language: str = "", width: int | None | bool = False) -> Segments:
    """Paragraph and sentence starts of `text`. Every paragraph start is also a sentence start. `width` is
    wrap_width(text), measured here unless the caller has it."""
    paragraphs: list[int] = []
    sentences: list[int] = []
    if width is False:
        width = wrap_width(text)
    for kind, at in _breaks(text, 0, len(text), _abbreviations(language), width):
        if kind == "paragraph" and (not paragraphs or paragraphs[-1] != at):
            paragraphs.append(at)
        if not sentences or sentences[-1] != at:
            sentences.append(at)
    return Segments(tuple(paragraphs), tuple(sentences))


def sentence_span(text: str, offset: int, language: str = "", width: int | None = None,
                  kinds: tuple[str, ...] = ("sentence", "paragraph")) -> tuple[int, int]:
    """(start, end) of the sentence (or, with kinds=("paragraph",), the paragraph) holding `offset`, found from the
    breaks near it: the same as segment()'s, at a fraction of the cost when only a few are asked for. `width` is
    wrap_width(text)."""
    n, reach, abbrev = len(text), LOCAL_REACH, _abbreviations(language)
    while True:
        lo = _word_start(text, max(0, offset - reach))  # never inside a candidate break: the same breaks follow
        hi = min(n, offset + reach)
        start, end = 0 if lo == 0 else None, n if hi == n else None
        for kind, at in _breaks(text, lo, hi, abbrev, width):
            if kind not in kinds:
                continue
            if at <= offset:
                start = at
            elif end is None or at < end:
                end = at
                break
        if start is not None and end is not None:
            return start, end
        reach *= 4


def _word_start(text: str, lo: int) -> int:
    """The start of a word after a space at or before `lo` (0 if none): no candidate break (a run of line breaks, or
    final punctuation and the spaces after it) spans it, so breaks found from there are those of the whole text."""
    if lo <= 0:
        return 0
    k = text.rfind(" ", 0, lo + 1)
    while k >= 0 and not text[k + 1 : k + 2].isalnum():
        k = text.rfind(" ", 0, k)
    return k + 1 if k >= 0 else 0


@functools.lru_cache(maxsize=64)
def _abbreviations(language: str) -> frozenset[str]:
    return ABBREVIATIONS[""] | ABBREVIATIONS.get(language, frozenset())


def _breaks(text: str, lo: int, hi: int, abbrev: frozenset[str], width: int | None):
    """(kind, where the next sentence starts) of every break whose candidate starts in [lo, hi).

    The decisions are _line_break's and _sentence_break's; their commonest outcomes are taken here without the call
    (tests/unit/test_rules_fast_paths.py compares this with calling them for every candidate)."""
    n = len(text)
    for m in _CANDIDATE.finditer(text, lo, hi):
        at, end = m.span()
        if end >= n:
            return
        following = text[end]
        if text[at] == "\n":
            if end - at > 1 and text.count("\n", at, end) > 1:
                kind = "paragraph"
            elif following.islower() and at and text[at - 1] not in " \t\u00a0\n":
                continue  # the sentence goes on below (no block starts with a small letter)
            elif width is None and not following.islower():
                kind = "paragraph"  # unwrapped text: a line break ends a paragraph unless the sentence goes on below
            else:
                kind = _line_break(text, at, end, width)
                if kind is None:
                    continue
        elif following in _OPENERS or following in _DASHES:
            if not _sentence_break(text, at, end, abbrev):
                continue
            kind = "sentence"
        elif following.isdigit() or (following.isalpha() and not following.islower()):
            if text[at] == "." and not _dot_ends(text, at, abbrev):
                continue
            kind = "sentence"
        else:
            continue  # no capital or digit follows
        if following in " \t\u00a0\n":
            while end < n and text[end] in " \t\u00a0\n":
                end += 1
            if end >= n:
                return
        yield kind, end


def wrap_width(text: str) -> int | None:
    """The width a hard-wrapped text was wrapped at (its longest line inside a block), None if it is not wrapped.

    Wrapped: at least three lines run on into a next line, none longer than WRAP_MAX, half of them near the longest.
    """
    lengths = []
    lines = text.split("\n")
    for line, nxt in zip(lines, lines[1:]):
        line = line.rstrip(" \t\u00a0")
        if line and nxt.strip():
            lengths.append(len(line))
    if len(lengths) < 3 or max(lengths) > WRAP_MAX:
        return None
    width = max(lengths)
    return width if sum(n >= width - 25 for n in lengths) * 2 >= len(lengths) else None


def _line_break(text: str, at: int, nxt: int, width: int | None) -> str | None:
    """A single line break: a new paragraph (a block starts, or the line above ended), or a hard wrap (None)."""
    line_start = text.rfind("\n", 0, at) + 1
    line = text[line_start:at].rstrip(" \t\u00a0")
    if not line or _BLOCK_START.match(text, nxt):
        return "paragraph"
    following = text[nxt : nxt + 1]
    if following.islower():
        return None  # the sentence goes on below
    if line.endswith(_TERMINAL) and not _ends_with_abbreviation(line):
        return "paragraph"
    if width is not None:
        word = len(text[nxt : nxt + 40].split(None, 1)[0]) if text[nxt : nxt + 40].strip() else 0
        if len(line) + 1 + word > width - 2:
            return None  # the next word would not have fitted on this line: wrapped, not ended
    return "paragraph"  # a short line with no final punctuation: a heading, a dateline, a label


def _ends_with_abbreviation(line: str) -> bool:
    word = line.rsplit(None, 1)[-1].lower().strip("\"'“‘(").rstrip(".")
    return word in ABBREVIATIONS[""]


def _sentence_break(text: str, at: int, nxt: int, abbrev: frozenset[str]) -> bool:
    """Final punctuation ends a sentence when a capital or digit follows and the dot is not an abbreviation's."""
    i, n = nxt, min(len(text), nxt + 4)
    while i < n and text[i] in _OPENERS:
        i += 1
    if text[i : i + 1] in _DASHES and text[i + 1 : i + 2] == " ":
        i += 2
    first = text[i : i + 1]
    if not (first.isdigit() or (first.isalpha() and not first.islower())):
        return False
    return text[at] != "." or _dot_ends(text, at, abbrev)


def _dot_ends(text: str, at: int, abbrev: frozenset[str]) -> bool:
    """The dot at `at` (a capital or digit follows) ends a sentence: it is not an abbreviation's, an initial's or an
    acronym's."""
    before = text[max(0, at - 16) : at].rsplit(None, 1)
    token = before[-1].lower().lstrip(_OPENERS) if before else ""
    if token in abbrev:
        return False
    if len(token) == 1 and token.isalpha():
        return False  # an initial: "Joseph R. Biden"
    # dotted initials and acronyms ("U.S.", "e.g.") unless a new sentence plainly starts ("U.S. The ...")
    return not (len(token) > 1 and token[-2] == "." and token.replace(".", "").isalpha() and len(token) <= 6)
