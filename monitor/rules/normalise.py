"""Text normalisation for matching: case and accents folded, every non-alphanumeric run becomes one space.

Keeps a map from normalised positions back to the original text, and splits sentences and words lazily.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import lru_cache

# ASCII: letters lowered, digits kept, everything else (hyphens, quotes, dots, slashes) is a word break.
_ASCII = {i: (chr(i).lower() if chr(i).isalnum() else " ") for i in range(128)}
_SPACES = re.compile(r"  +")
_WORD_BREAKS = re.compile(r" ")


@lru_cache(maxsize=65536)
def fold_char(ch: str) -> str:
    """One character folded to exactly one: lower case, accents removed; non-alphanumerics become a space.

    Always one character, so the normalised text keeps a cheap offset map ("ß" stays "ß", "ﬁ" stays).
    """
    if not ch.isalnum():
        return " "
    stripped = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)).lower()
    if len(stripped) == 1 and stripped.isalnum():
        return stripped
    lowered = ch.lower()
    return lowered if len(lowered) == 1 else ch


def normalise_phrase(phrase: str) -> str:
    """A phrase as the matcher sees it: folded words joined by single spaces, no padding."""
    return " ".join("".join(fold_char(c) for c in phrase).split())


class Normalised:
    """`norm` is ' ' + folded text + ' ' (so every word is surrounded by spaces); maps back to `original`."""

    __slots__ = ("original", "norm", "_cut_norm", "_cut_orig", "_cut_shift", "_words", "_sents", "_starts")

    def __init__(self, original: str) -> None:
        self.original = original
        self._words: list[int] | None = None
        self._sents: list[tuple[int, int]] | None = None
        self._starts: list[int] = []
        table = dict(_ASCII)
        for ch in set(original):
            if ord(ch) >= 128:
                table[ord(ch)] = fold_char(ch)
        self._collapse(original.translate(table))

    def _collapse(self, translated: str) -> None:
        """Same-length translation: squeeze space runs, remember where the shifts start (sparse map)."""
        runs = [m.span() for m in _SPACES.finditer(translated)]
        norm = " " + _SPACES.sub(" ", translated).strip(" ") + " "
        lead = len(translated) - len(translated.lstrip(" "))  # leading break chars dropped by strip()
        # norm index n <-> original index n + shift; every squeezed run shifts what follows
        shift = -1 + lead
        cut_norm, cut_orig, cut_shift = [0], [0], [shift]
        for start, end in runs:
            if start == 0:
                continue  # the leading run is already in `lead`
            shift += end - start - 1
            cut_orig.append(end)
            cut_norm.append(end - shift)
            cut_shift.append(shift)
        self.norm = norm if norm != "  " else " "
        self._cut_norm, self._cut_orig, self._cut_shift = cut_norm, cut_orig, cut_shift

    def to_orig(self, pos: int) -> int:
        """Original index of the character at normalised position `pos`."""
        k = bisect_right(self._cut_norm, pos) - 1
        return max(0, min(len(self.original), pos + self._cut_shift[k]))

    def to_norm(self, orig: int) -> int:
        """Normalised position of original index `orig` (the space of a squeezed run maps to its run)."""
        k = bisect_right(self._cut_orig, orig) - 1
        return max(0, orig - self._cut_shift[k])

    def span_text(self, start: int, end: int) -> str:
        """Original text of normalised span [start, end)."""
        return self.original[self.to_orig(start) : self.to_orig(end - 1) + 1]

    # words -------------------------------------------------------------------------------------------------------
    def word_index(self, pos: int) -> int:
        """Index of the word that contains normalised position `pos` (0-based)."""
        if self._words is None:
            self._words = [m.start() for m in _WORD_BREAKS.finditer(self.norm)]
        return bisect_right(self._words, pos) - 1

    def word_span(self, first: int, last: int) -> tuple[int, int]:
        """Normalised span covering words first..last (clamped)."""
        self.word_index(0)
        words = self._words or [0]
        first = max(0, first)
        last = min(len(words) - 2, last)
        if last < first:
            return (0, 0)
        return (words[first], words[last + 1] + 1)

    # sentences ---------------------------------------------------------------------------------------------------
    def sentences(self) -> list[tuple[int, int]]:
        """Sentence spans in normalised positions [start, end), in order."""
        if self._sents is None:
            spans = split_sentences(self.original)
            self._sents = [(self.to_norm(a), self.to_norm(b - 1) + 1) for a, b in spans] or [(0, len(self.norm))]
            # widen so that every position belongs to exactly one sentence
            fixed: list[tuple[int, int]] = []
            for i, (a, _b) in enumerate(self._sents):
                nxt = self._sents[i + 1][0] if i + 1 < len(self._sents) else len(self.norm)
                fixed.append((0 if i == 0 else a, nxt))
            self._sents = fixed
            self._starts = [a for a, _b in fixed]
        return self._sents

    def sentence_index(self, pos: int) -> int:
        self.sentences()
        return max(0, bisect_right(self._starts, pos) - 1)


_ABBREV = {
    "u.s", "u.k", "u.n", "e.u", "gen", "adm", "mr", "mrs", "ms", "dr", "sen", "rep", "lt", "col", "maj", "capt",
    "st", "no", "vs", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "e.g",
    "i.e", "gov", "sgt", "cpl", "pres", "prof", "inc", "corp", "ltd", "co", "jr", "sr", "approx", "etc",
}
_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])|\n+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans [start, end) of `text`: breaks at . ! ? before a capital or digit, and at newlines."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        b = m.start()
        if text[b] == ".":
            before = text[max(start, b - 12) : b].rsplit(None, 1)
            token = before[-1].lower().strip("\"'“‘(") if before else ""
            if token in _ABBREV or (len(token) == 1 and token.isalpha()):
                continue
        if b > start and not text[start:b].isspace():
            spans.append((start, m.end()))
        start = m.end()
    if start < len(text) and not text[start:].isspace():
        spans.append((start, len(text)))
    return spans
