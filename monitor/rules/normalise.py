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
    """One character folded: lower case, accents removed; non-alphanumerics become a space."""
    if not ch.isalnum():
        return " "
    decomposed = unicodedata.normalize("NFKD", ch.casefold())
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    return folded if folded and all(c.isalnum() for c in folded) else " "


def normalise_phrase(phrase: str) -> str:
    """A phrase as the matcher sees it: folded words joined by single spaces, no padding."""
    return " ".join("".join(fold_char(c) for c in phrase).split())


class Normalised:
    """`norm` is ' ' + folded text + ' ' (so every word is surrounded by spaces); maps back to `original`."""

    __slots__ = ("original", "norm", "_cut_norm", "_cut_orig", "_cut_shift", "_full", "_words", "_sents")

    def __init__(self, original: str) -> None:
        self.original = original
        self._full: list[int] | None = None
        self._words: list[int] | None = None
        self._sents: list[tuple[int, int]] | None = None
        table = dict(_ASCII)
        one_to_one = True
        for ch in set(original):
            if ord(ch) >= 128:
                folded = fold_char(ch)
                table[ord(ch)] = folded
                one_to_one = one_to_one and len(folded) == 1
        if one_to_one:
            self._collapse(original.translate(table))
        else:
            self._slow(original, table)

    def _collapse(self, translated: str) -> None:
        """Same-length translation: squeeze space runs, remember where the shifts start (sparse map)."""
        parts: list[str] = [" "]
        cut_norm, cut_orig, cut_shift = [0], [0], [-1]  # norm index i <-> original index i - 1 before any cut
        shift, last = -1, 0
        for m in _SPACES.finditer(translated):
            parts.append(translated[last : m.start() + 1])
            last = m.end()
            shift += m.end() - m.start() - 1
            cut_orig.append(m.end())
            cut_norm.append(m.end() - shift)
            cut_shift.append(shift)
        parts.append(translated[last:])
        parts.append(" ")
        norm = "".join(parts)
        if norm.startswith("  "):  # text began with a break: drop the doubled pad
            norm = norm[1:]
            cut_norm = [0] + [n - 1 for n in cut_norm[1:]]
            cut_shift = [s + 1 for s in cut_shift]
        self.norm = norm.rstrip(" ") + " "
        self._cut_norm, self._cut_orig, self._cut_shift = cut_norm, cut_orig, cut_shift

    def _slow(self, original: str, table: dict[int, str]) -> None:
        """Some character folds to several (ß -> ss): keep a full position list."""
        chars: list[str] = [" "]
        full: list[int] = [0]
        for i, ch in enumerate(original):
            out = table.get(ord(ch), ch)
            for c in out:
                if c == " " and chars[-1] == " ":
                    continue
                chars.append(c)
                full.append(i)
        if chars[-1] != " ":
            chars.append(" ")
            full.append(len(original))
        self.norm = "".join(chars)
        self._full = full
        self._cut_norm = self._cut_orig = self._cut_shift = []

    def to_orig(self, pos: int) -> int:
        """Original index of the character at normalised position `pos`."""
        if self._full is not None:
            return self._full[min(pos, len(self._full) - 1)]
        k = bisect_right(self._cut_norm, pos) - 1
        return max(0, min(len(self.original), pos + self._cut_shift[k]))

    def to_norm(self, orig: int) -> int:
        """Normalised position of original index `orig` (the space of a squeezed run maps to its run)."""
        if self._full is not None:
            return max(0, bisect_right(self._full, orig) - 1)
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
        return self._sents

    def sentence_index(self, pos: int) -> int:
        sents = self.sentences()
        return max(0, bisect_right([s[0] for s in sents], pos) - 1)


_ABBREV = {
    "u.s", "u.k", "u.n", "e.u", "gen", "adm", "mr", "mrs", "ms", "dr", "sen", "rep", "lt", "col", "maj", "capt",
    "st", "no", "vs", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "e.g",
    "i.e", "gov", "sgt", "cpl", "pres", "prof", "inc", "corp", "ltd", "co", "jr", "sr", "approx", "etc",
}
_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])|\n+")
_LAST_WORD = re.compile(r"([\w.]+)[.!?]*[\"'”’)\]]*\s*$")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans [start, end) of `text`: breaks at . ! ? before a capital or digit, and at newlines."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        if m.group(0)[0] == ".":
            word = _LAST_WORD.search(text, max(start, m.start() - 12), m.end())
            token = word.group(1).lower().rstrip(".") if word else ""
            if token in _ABBREV or (len(token) == 1 and token.isalpha()):
                continue
        if text[start : m.start()].strip():
            spans.append((start, m.end()))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans
