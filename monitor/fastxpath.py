"""trafilatura's XPath expressions, rewritten to select the same elements for less work.

trafilatura cleans and searches a page with ~45 compiled XPath expressions (trafilatura.xpaths and
trafilatura.settings.BASIC_CLEAN_XPATH); on the corpus pages they are ~40% of an extraction's time. Two rewrites
give the same elements in the same order for less of libxml2's and lxml's work:

- **A regular-expression test only where its attribute is there.** `re:test(@class, 'R')` is EXSLT, which lxml
  answers with a Python call for every element the predicate reaches, converting the attribute to a Python string
  first, even when the element has no such attribute (the test then searches ''). `(@class and re:test(@class, 'R'))`
  asks libxml2 first. Exact when R cannot match the empty string: then both are false without the attribute, and
  the same test with it. A pattern that matches '' is left as it is. `@id|@class` is guarded by `(@id or @class)`.
- **One walk per element name.** `.//*[self::div or self::p][P]` makes libxml2 evaluate the name test as a
  predicate on every element; `.//div[P] | .//p[P]` walks the tree once per name with the name tested in the step,
  which is cheaper for the two to seven names of trafilatura's expressions, and the union comes back in document
  order, without duplicates, as the original does. A path after the step (`//a[@href]`) runs from each element
  found, whichever walk found it. Only where the step's predicates hold no position (`[1]`, `position()`, `last()`:
  it counts among the siblings of all the names); each branch of a union on its own.

Rewritten expressions are compiled with `smart_strings=False`: lxml then hands the attribute values a regular
expression reads to Python as plain strings, not as strings that keep a reference to their element. Only
expressions that select elements are rewritten (no `@name` or `text()` step outside a predicate), so their results do
not change type.

`faster_xpaths()` swaps the rewritten expressions into trafilatura's modules for the length of a block (lists in
place, module attributes by name) and puts trafilatura's own back after it; monitor.extract runs bare_extraction
inside it. Tests: every swapped expression selects the same elements as trafilatura's own on every corpus page, and
the extraction's text and metadata are trafilatura's own (tests/unit/test_fastxpath.py, tests/unit/test_extract.py).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trafilatura
from lxml.etree import XPath

REGEXP_NS = "http://exslt.org/regular-expressions"
# re:test(@a, 'pattern') or re:test(@a|@b, 'pattern', 'flags'); XPath 1.0 string literals have no escapes.
RE_TEST = re.compile(r"re:test\(\s*(@[\w-]+(?:\s*\|\s*@[\w-]+)*)\s*,\s*'([^']*)'(?:\s*,\s*'([^']*)')?\s*\)")
ANY_OF_NAMES = re.compile(r"\s*(\.?//)\*\[\s*(self::[\w-]+(?:\s+or\s+self::[\w-]+)*)\s*\](.*)", re.S)
POSITIONAL = re.compile(r"\[\s*\d+\s*\]|\bposition\s*\(|\blast\s*\(")


def rewrite(path: str) -> str:
    """`path` rewritten as the module docstring says; `path` itself where neither rewrite applies. The branches of a
    union are rewritten one by one (a union of unions selects what the flat union does)."""
    guarded = _guard_regex_tests(path)
    branches = _union_branches(guarded)
    walks = [_one_walk_per_name(branch) for branch in branches]
    return guarded if walks == branches else " | ".join(walk.strip() for walk in walks)


def _union_branches(path: str) -> list[str]:
    """`path` cut at each `|` outside string literals, brackets and parentheses."""
    cuts = [i for i, char, brackets, parens in _scan(path) if char == "|" and brackets == parens == 0]
    return [path[start + 1:end] for start, end in zip([-1, *cuts], [*cuts, len(path)])]


def _scan(path: str) -> Iterator[tuple[int, str, int, int]]:
    """Each character of `path` outside string literals, with the depth of brackets and of parentheses it is at (a
    bracket or parenthesis at the depth of what it encloses)."""
    brackets, parens, quote = 0, 0, ""
    for i, char in enumerate(path):
        if quote:
            quote = "" if char == quote else quote
            continue
        if char in "'\"":
            quote = char
            continue
        brackets -= char == "]"
        parens -= char == ")"
        yield i, char, brackets, parens
        brackets += char == "["
        parens += char == "("


def _guard_regex_tests(path: str) -> str:
    def guarded(match: re.Match[str]) -> str:
        flags = match.group(3) or ""
        if set(flags) - {"i", "g"}:  # lxml knows these two; anything else is left to lxml to judge
            return match.group(0)
        try:
            if re.search(match.group(2), "", re.IGNORECASE if "i" in flags else 0) is not None:
                return match.group(0)  # matches '' : true without the attribute, so no guard
        except re.error:
            return match.group(0)
        attrs = [a.strip() for a in match.group(1).split("|")]
        present = attrs[0] if len(attrs) == 1 else "(" + " or ".join(attrs) + ")"
        return f"({present} and {match.group(0)})"

    return RE_TEST.sub(guarded, path)


def _one_walk_per_name(path: str) -> str:
    match = ANY_OF_NAMES.fullmatch(path)
    if match is None:
        return path
    start, names, rest = match.group(1), re.findall(r"self::([\w-]+)", match.group(2)), match.group(3).strip()
    end = _predicates_end(rest)
    # (a path after the predicates, "//a[@href]", is evaluated from each element found, so it does not matter which
    # walk found it)
    if end is None or POSITIONAL.search(rest[:end]) or (rest[end:] and not rest[end:].startswith("/")):
        return path
    return " | ".join(f"{start}{name}{rest}" for name in names)


def _predicates_end(text: str) -> int | None:
    """Where the bracketed groups `[...]` that follow each other from the start of `text` end (quotes respected);
    None if one is not closed."""
    after = 0  # the depth after the last character read
    for i, char, brackets, _parens in _scan(text):
        if brackets < 0:
            return None
        if brackets == 0 and char not in "[]":
            return i
        after = brackets + (char == "[")
    return len(text) if after == 0 else None


def _outside(path: str, *, predicates: bool) -> str:
    """The characters of `path` outside string literals, and, with `predicates`, outside brackets too."""
    return "".join(char for _i, char, brackets, _parens in _scan(path)
                   if not predicates or (brackets == 0 and char not in "[]"))


def faster(expression: XPath) -> XPath | None:
    """The rewritten twin of `expression`, or None where the rewrite changes nothing or does not apply: an expression
    that can return attributes or text (no attribute or text step outside predicates), or one with a namespace prefix
    other than trafilatura's `re` (bound to EXSLT's regular expressions in every expression that uses it)."""
    path = expression.path
    new = rewrite(path)
    steps = _outside(path, predicates=True)
    if new == path or "@" in steps or "text()" in steps or "attribute::" in steps:
        return None
    if set(re.findall(r"([A-Za-z][\w.-]*):(?!:)", _outside(path, predicates=False).replace("::", "  "))) - {"re"}:
        return None
    return XPath(new, namespaces={"re": REGEXP_NS}, smart_strings=False)


class _Swaps:
    """Where trafilatura keeps its XPath expressions and their rewritten twins: (holder, key, own, fast), holder a
    module (key an attribute name) or a list (key an index)."""

    def __init__(self) -> None:
        twins: dict[int, XPath | None] = {}
        self.places: list[tuple[Any, Any, XPath, XPath]] = []
        seen_lists: set[int] = set()
        for module in _trafilatura_modules():
            for name, value in list(vars(module).items()):
                if isinstance(value, XPath):
                    self._add(module, name, value, twins)
                elif isinstance(value, list) and id(value) not in seen_lists and value \
                        and all(isinstance(item, XPath) for item in value):
                    seen_lists.add(id(value))
                    for index, item in enumerate(value):
                        self._add(value, index, item, twins)

    def _add(self, holder: Any, key: Any, own: XPath, twins: dict[int, XPath | None]) -> None:
        if id(own) not in twins:
            twins[id(own)] = faster(own)
        fast = twins[id(own)]
        if fast is not None:
            self.places.append((holder, key, own, fast))

    def put(self, fast: bool) -> None:
        for holder, key, own, twin in self.places:
            value = twin if fast else own
            if isinstance(holder, list):
                holder[key] = value
            else:
                setattr(holder, key, value)


def _trafilatura_modules() -> list[Any]:
    """The trafilatura modules loaded by now (`import trafilatura` loads every one extraction uses; its command line
    and crawler are not imported for this)."""
    return [module for name, module in list(sys.modules.items()) if name.startswith("trafilatura.") and module]


_SWAPS: _Swaps | None = None


def swaps() -> _Swaps:
    global _SWAPS
    if _SWAPS is None:
        _SWAPS = _Swaps()
    return _SWAPS


@contextmanager
def faster_xpaths() -> Iterator[None]:
    """trafilatura evaluates the rewritten expressions for the length of the block, and its own after it. Not for
    threads extracting at once: one thread's exit would put trafilatura's own back under another, which gives the same
    result at the old cost."""
    places = swaps()
    places.put(True)
    try:
        yield
    finally:
        places.put(False)
