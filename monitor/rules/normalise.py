"""Text normalisation for matching: case and accents folded, every non-alphanumeric run becomes one space.

Keeps a map from normalised positions back to the original text, and splits sentences and words lazily.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate

from .segment import segment, sentence_span, wrap_width

LOCAL_LOOKUPS = 12  # beyond this many sentence lookups, segmenting the whole text once is cheaper

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


_BYTES = bytes((ord(chr(i).lower()) if chr(i).isalnum() else 32) if i < 128 else i for i in range(256))
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
MANY_LETTERS = 24  # a text with more distinct non-ASCII characters than this is folded in one pass of a table


FOLD_TABLE_MAX = 65_536  # code points kept folded, as fold_char's cache: a text of every code point stays cheap


class _FoldTable(dict):
    """fold_char of each code point str.translate asks for, kept once folded (ASCII filled in); emptied back to
    ASCII when it holds FOLD_TABLE_MAX, so no text makes it grow without bound."""

    def __missing__(self, code: int) -> str:
        if len(self) >= FOLD_TABLE_MAX:
            self.clear()
            self.update(_ASCII)
        folded = self[code] = fold_char(chr(code))
        return folded


_FOLD = _FoldTable(_ASCII)


def fold_text(text: str) -> str:
    """Every character folded to exactly one (same length as `text`), breaks as spaces: fold_char of each.

    A text with a few distinct non-ASCII characters (curly quotes, dashes, accents) gets each replaced throughout
    (fold_char is idempotent, so the order does not matter), then its ASCII folded on the UTF-8 bytes, whose other
    bytes the table keeps; a text mostly in another script, or with many distinct letters, goes through the
    translate table, one pass."""
    if text.isascii():
        return text.encode("ascii").translate(_BYTES).decode("ascii")
    if (len(text.encode("utf-8", "surrogatepass")) - len(text)) * 4 > len(text):
        return text.translate(_FOLD)  # mostly another script: not worth listing its letters first
    distinct = set(_NON_ASCII.findall(text))
    if len(distinct) > MANY_LETTERS:
        return text.translate(_FOLD)
    for ch in distinct:
        text = text.replace(ch, fold_char(ch))
    return text.encode().translate(_BYTES).decode()


def _without_urls(folded: str, original: str) -> str:
    """Links are not words: a URL's characters become spaces (same length, so offsets still map). Found from each
    "://" outwards, which costs nothing for the many texts without one."""
    at = original.find("://")
    if at < 0:
        return folded
    parts, cursor = [], 0
    while at >= 0:
        start = at
        while start > 0 and (original[start - 1].isalnum() or original[start - 1] in "+.-"):
            start -= 1
        end = at + 3
        while end < len(original) and not original[end].isspace() and original[end] not in _URL_END:
            end += 1
        if start < at and start >= cursor:
            parts.append(folded[cursor:start])
            parts.append(" " * (end - start))
            cursor = end
        at = original.find("://", end)
    parts.append(folded[cursor:])
    return "".join(parts)


_URL_END = frozenset("<>\"'()[]")


class Normalised:
    """`norm` is ' ' + folded text + ' ' (so every word is surrounded by spaces); maps back to `original`."""

    __slots__ = ("original", "language", "norm", "_translated", "_cuts", "_words", "_sents", "_starts", "_paras",
                 "_local", "_width", "_found")

    def __init__(self, original: str, language: str = "") -> None:
        self.original = original
        self.language = language
        self._words: list[int] | None = None
        self._sents: list[tuple[int, int]] | None = None
        self._starts: list[int] = []
        self._paras: list[int] = []
        self._local = 0  # sentences found locally so far
        self._found: list[tuple[int, int, int, int]] = []  # sentences found locally: original and normalised spans
        self._width: int | None | bool = False  # the text's wrap width, once measured
        self._cuts: tuple[list[int], list[int], list[int]] | None = None
        self._translated = translated = _without_urls(fold_text(original), original)
        # (folded text holds no whitespace but spaces: squeezing their runs is what str.split and a join would do)
        squeezed = _SPACES.sub(" ", translated.strip(" "))
        self.norm = f" {squeezed} " if squeezed else " "

    @property
    def _map(self) -> tuple[list[int], list[int], list[int]]:
        """The sparse offset map, built on first use: where squeezed space runs shift positions."""
        if self._cuts is None:
            translated = self._translated
            lead = len(translated) - len(translated.lstrip(" "))  # leading break chars are dropped
            spans = [m.span() for m in _SPACES.finditer(translated, lead or 0)]
            # norm index n <-> original index n + shift; each squeezed run shifts what follows by its length - 1
            shifts = list(accumulate((e - s - 1 for s, e in spans), initial=lead - 1))
            cut_orig = [0, *(e for _s, e in spans)]
            cut_norm = [0, *(e - sh for (_s, e), sh in zip(spans, shifts[1:]))]
            self._cuts = (cut_norm, cut_orig, shifts)
        return self._cuts

    def to_orig(self, pos: int) -> int:
        """Original index of the character at normalised position `pos`."""
        cut_norm, _cut_orig, cut_shift = self._cuts or self._map  # (the map, without the property's call once built)
        k = bisect_right(cut_norm, pos) - 1
        return max(0, min(len(self.original), pos + cut_shift[k]))

    def to_norm(self, orig: int) -> int:
        """Normalised position of original index `orig` (the space of a squeezed run maps to its run)."""
        cut_norm, cut_orig, cut_shift = self._cuts or self._map
        k = bisect_right(cut_orig, orig) - 1
        n = orig - cut_shift[k]
        if k + 1 < len(cut_norm) and n >= cut_norm[k + 1]:
            n = cut_norm[k + 1] - 1  # inside a squeezed run: its one kept space
        return max(0, n)

    def last_orig(self, pos: int) -> int:
        """The last original index at normalised position `pos`: where a squeezed run of breaks maps to its one kept
        space, the run's end, not (as to_orig) its start. A sentence starting inside the run ("**](https://...")
        starts at that space in the segmented text (see _segments), so a local lookup asks from the run's end."""
        if pos + 1 >= len(self.norm):
            return max(0, len(self.original) - 1)
        return max(0, self.to_orig(pos + 1) - 1)

    def span_text(self, start: int, end: int) -> str:
        """Original text of normalised span [start, end)."""
        return self.original[self.to_orig(start) : self.to_orig(end - 1) + 1]

    # words -------------------------------------------------------------------------------------------------------
    def word_index(self, pos: int) -> int:
        """Index of the word that contains normalised position `pos` (0-based)."""
        if self._words is None:
            self._words = [m.start() for m in _WORD_BREAKS.finditer(self.norm)]
        return bisect_right(self._words, pos) - 1

    def word_reach(self, pos: int, n: int) -> int:
        """For `pos` holding a space: where the n-th word after that space ends, plus one (the end of the last word
        when fewer follow; 0 at the text's last space), as word_span(word_index(pos), word_index(pos) + n)[1] gives
        it, found by walking the next n + 1 spaces instead of indexing every word of the text."""
        find, at = self.norm.find, pos
        for _ in range(n + 1):
            nxt = find(" ", at + 1)
            if nxt < 0:
                break
            at = nxt
        return at + 1 if at != pos else 0

    def word_span(self, first: int, last: int) -> tuple[int, int]:
        """Normalised span covering words first..last (clamped)."""
        self.word_index(0)
        words = self._words or [0]
        first = max(0, first)
        last = min(len(words) - 2, last)
        if last < first:
            return (0, 0)
        return (words[first], words[last + 1] + 1)

    # paragraphs and sentences ------------------------------------------------------------------------------------
    def _segments(self) -> tuple[list[int], list[int]]:
        """Normalised starts of paragraphs and sentences (segment.py on the original text), computed once."""
        if self._sents is None:
            segs = segment(self.original, self.language, self._wrap())
            end = len(self.original)
            starts = [0]
            at = {}  # segment() makes every paragraph start a sentence start: each is converted once
            for b in segs.sentences:
                n = at[b] = self.to_norm(b) if b < end else len(self.norm)
                if n > starts[-1]:
                    starts.append(n)
            paras = [0, *(n for n in (at[b] for b in segs.paragraphs if b < end) if n > 0)]
            self._sents = list(zip(starts, [*starts[1:], len(self.norm)]))
            self._starts = starts
            self._paras = sorted(set(paras))
        return self._paras, self._starts

    def sentences(self) -> list[tuple[int, int]]:
        """Sentence spans in normalised positions [start, end), in order; every position is in exactly one."""
        self._segments()
        return self._sents  # type: ignore[return-value]

    def sentence_index(self, pos: int) -> int:
        self._segments()
        return max(0, bisect_right(self._starts, pos) - 1)

    def sentence_at(self, pos: int) -> tuple[int, int]:
        """The sentence around normalised position `pos`; found locally for the first few asks (most rules need the
        sentences around a handful of hits), then from one segmentation of the whole text."""
        if self._sents is not None:
            return self._sents[self.sentence_index(pos)]
        offset = self.last_orig(pos)  # (to_orig's run start may lie in the sentence before: not the one at `pos`)
        for start, end, a, b in self._found:  # many rules ask for the same few sentences: each is found once
            if start <= offset < end:
                return (a, b)
        if self._local >= LOCAL_LOOKUPS:
            return self.sentences()[self.sentence_index(pos)]
        self._local += 1
        start, end = sentence_span(self.original, offset, self.language, self._wrap())
        a = self.to_norm(start) if start > 0 else 0
        b = self.to_norm(end) if end < len(self.original) else len(self.norm)
        self._found.append((start, end, a, max(b, a + 1)))
        return (a, max(b, a + 1))

    def paragraph_at(self, pos: int) -> tuple[int, int]:
        """The paragraph around normalised position `pos` (a run of sentences; headings and bullets are their own);
        found locally for the first few asks, like sentence_at."""
        if self._sents is None and self._local < LOCAL_LOOKUPS:
            self._local += 1
            start, end = sentence_span(self.original, self.last_orig(pos), self.language, self._wrap(),
                                       kinds=("paragraph",))
            a = self.to_norm(start) if start > 0 else 0
            b = self.to_norm(end) if end < len(self.original) else len(self.norm)
            return (a, max(b, a + 1))
        paras, _ = self._segments()
        k = bisect_right(paras, pos) - 1
        return paras[max(0, k)], paras[k + 1] if k + 1 < len(paras) else len(self.norm)

    def _wrap(self) -> int | None:
        if self._width is False:
            self._width = wrap_width(self.original)
        return self._width  # type: ignore[return-value]

    def paragraph_index(self, pos: int) -> int:
        paras, _ = self._segments()
        return max(0, bisect_right(paras, pos) - 1)


def split_sentences(text: str, language: str = "") -> list[tuple[int, int]]:
    """Sentence spans [start, end) of `text` that hold text (see segment.py for where sentences end)."""
    bounds = [0, *segment(text, language).sentences, len(text)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a and not text[a:b].isspace()]
