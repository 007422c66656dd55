"""The analysts' query language: Lucene/Elasticsearch query_string syntax parsed by luqum, plus scopes.

Turns a query (or the issue-2 keyword form all/any/none) into a small tree of nodes the matcher evaluates on hits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Union

import re2
from luqum import tree as lt
from luqum.exceptions import ParseError
from luqum.thread import parse as luqum_parse

from .normalise import normalise_phrase

_RE2_QUIET = re2.Options()
_RE2_QUIET.log_errors = False  # errors are reported once, in our message; RE2's C++ log would add a second, noisy one
MIN_PREFIX = 3  # shorter wildcard stems ("a*") would hit most words of every article
MAX_WINDOW = 1000


class QueryError(ValueError):
    """A query is wrong. `pos` is the offset of `token` in the query text (or -1 when unknown)."""

    def __init__(self, message: str, token: str = "", pos: int = -1) -> None:
        super().__init__(message)
        self.token, self.pos = token, pos


@dataclass(frozen=True)
class Term:
    """A folded word or phrase ("leopard 2"), or a word stem when `prefix` (pledg* -> "pledg")."""

    text: str
    prefix: bool = False
    source: str = ""  # as the analyst wrote it

    def __str__(self) -> str:
        return self.source or self.text


@dataclass(frozen=True)
class EntityRef:
    kind: str
    canonical: str | None = None  # @state:Ukraine -> only that state

    def __str__(self) -> str:
        return f"@{self.kind}" + (f':"{self.canonical}"' if self.canonical else "")


@dataclass(frozen=True)
class Regex:
    pattern: str
    compiled: object  # re2 pattern, matched against the original text

    def __str__(self) -> str:
        return f"/{self.pattern}/"


@dataclass(frozen=True)
class Proximity:
    """"w1 w2 ..."~slop: all words within len(words) + slop words of each other, any order."""

    words: tuple[Term, ...]
    slop: int

    def __str__(self) -> str:
        return '"' + " ".join(str(w) for w in self.words) + f'"~{self.slop}'


@dataclass(frozen=True)
class And:
    children: tuple["Node", ...]

    def __str__(self) -> str:
        return "(" + " AND ".join(map(str, self.children)) + ")"


@dataclass(frozen=True)
class Or:
    children: tuple["Node", ...]

    def __str__(self) -> str:
        return "(" + " OR ".join(map(str, self.children)) + ")"


@dataclass(frozen=True)
class Not:
    child: "Node"

    def __str__(self) -> str:
        return f"NOT {self.child}"


@dataclass(frozen=True)
class Scope:
    """Evaluate `child` inside one part of the article: title, text, a sentence, N sentences, N words."""

    kind: str  # "title" | "text" | "paragraph" | "sentence" | "near"
    n: int
    child: "Node"

    def __str__(self) -> str:
        label = {"title": "title", "text": "text", "paragraph": "paragraph", "near": f"near{self.n}"}.get(self.kind)
        if self.kind == "sentence":
            label = "sentence" if self.n == 1 else f"sentences{self.n}"
        return f"{label}:({self.child})"


Node = Union[Term, EntityRef, Regex, Proximity, And, Or, Not, Scope]

_SCOPE_FIELD = re.compile(r"^(title|text|paragraph|sentence|sentences(\d+)|near(\d+))$")
_OPERATOR = re.compile(r"^(NEAR|SENT)(?:/(\d+))?$")


def parse_query(text: str, known_kind: Callable[[str], bool]) -> Node:
    """Parse one query; raises QueryError with the offending token and its offset."""
    if not text or not text.strip():
        raise QueryError("the query is empty")
    try:
        tree = luqum_parse(text)
        return _Converter(text, known_kind).convert(tree)
    except ParseError as exc:
        raise _syntax_error(text, exc) from None
    except RecursionError:
        raise QueryError("the query is nested too deeply") from None


def keyword_query(all_: list[str], any_: list[str], none: list[str]) -> Node:
    """Issue-2 keyword rules: every phrase of `all`, one of `any`, none of `none` (case-insensitive, words)."""
    parts: list[Node] = [_phrase_term(p) for p in all_]
    if any_:
        parts.append(Or(tuple(_phrase_term(p) for p in any_)))
    if none:
        parts.append(Not(Or(tuple(_phrase_term(p) for p in none))))
    if not any(not isinstance(p, Not) for p in parts):
        raise QueryError("a keyword rule needs at least one phrase in 'all' or 'any'")
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _phrase_term(phrase: str) -> Term:
    folded = normalise_phrase(phrase)
    if not folded:
        raise QueryError(f"phrase {phrase!r} has no letters or digits", phrase)
    return Term(folded, source=phrase)


def _syntax_error(text: str, exc: ParseError) -> QueryError:
    msg = str(exc)
    m = re.search(r"position (\d+)", msg)
    pos = int(m.group(1)) if m else len(text)
    token_m = re.search(r"unexpected\s+'([^']*)'|Illegal character '(.)", msg)
    token = next((g for g in token_m.groups() if g), "") if token_m else ""
    if "end of expression" in msg:
        return QueryError("the query ends too early (an unclosed parenthesis or quote, or a dangling operator)",
                          text[-10:].strip(), len(text.rstrip()) - 1)
    return QueryError(f"syntax error: unexpected {token!r}", token, pos)


class _Converter:
    """luqum tree -> our nodes. Everything luqum accepts that we cannot honour is an error, never ignored."""

    def __init__(self, text: str, known_kind: Callable[[str], bool]) -> None:
        self.text, self.known_kind = text, known_kind

    def fail(self, item: lt.Item, message: str) -> QueryError:
        return QueryError(message, str(item).strip(), getattr(item, "pos", -1) or 0)

    def convert(self, item: lt.Item) -> Node:
        method = getattr(self, "_" + type(item).__name__, None)
        if method is None:
            raise self.fail(item, f"{type(item).__name__.lower()} queries are not supported: {str(item).strip()!r}")
        return method(item)

    def _Group(self, item: lt.Group) -> Node:
        return self.convert(item.children[0])

    _FieldGroup = _Group

    def _AndOperation(self, item: lt.AndOperation) -> Node:
        return And(tuple(self.convert(c) for c in item.children))

    def _OrOperation(self, item: lt.OrOperation) -> Node:
        return Or(tuple(self.convert(c) for c in item.children))

    def _Not(self, item: lt.Not) -> Node:
        return Not(self.convert(item.children[0]))

    _Prohibit = _Not

    def _Plus(self, item: lt.Plus) -> Node:
        return self.convert(item.children[0])

    def _UnknownOperation(self, item: lt.UnknownOperation) -> Node:
        """Implicit AND, plus the binary operators `a NEAR/5 b`, `a SENT b`, `a SENT/2 b`."""
        items = list(item.children)
        ops = [i for i, c in enumerate(items) if isinstance(c, lt.Word) and _OPERATOR.match(c.value)]
        if not ops:
            return And(tuple(self.convert(c) for c in items))
        nodes: list[Node] = []
        i = 0
        while i < len(items):
            if i in ops:
                raise self.fail(items[i], f"{items[i].value} needs a term on each side")
            if i + 1 in ops:
                if i + 2 >= len(items) or i + 2 in ops:
                    raise self.fail(items[i + 1], f"{items[i + 1].value} needs a term on each side")
                nodes.append(self._binary(items[i + 1], self.convert(items[i]), self.convert(items[i + 2])))
                i += 3
                while i < len(items) and i in ops:  # a NEAR/5 b NEAR/5 c chains onto the last right side
                    raise self.fail(items[i], "chain NEAR/SENT with parentheses: (a NEAR/5 b) NEAR/5 c")
                continue
            nodes.append(self.convert(items[i]))
            i += 1
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def _binary(self, op: lt.Word, left: Node, right: Node) -> Node:
        m = _OPERATOR.match(op.value)
        assert m is not None
        n = int(m.group(2) or 1)
        if not 1 <= n <= MAX_WINDOW:
            raise self.fail(op, f"window must be 1..{MAX_WINDOW}")
        return Scope("near" if m.group(1) == "NEAR" else "sentence", n, And((left, right)))

    def _Word(self, item: lt.Word) -> Node:
        value = item.value.replace("\\", "")
        if value.startswith("@"):
            return self._entity(item, value[1:], None)
        if _OPERATOR.match(value):
            raise self.fail(item, f"{value} needs a term on each side")
        if "?" in value or "*" in value[:-1]:
            raise self.fail(item, "only a trailing * wildcard is supported (pledg*)")
        if value.endswith("*"):
            stem = normalise_phrase(value[:-1])
            if " " in stem:
                raise self.fail(item, "a wildcard stem must be one word (use a phrase for the rest)")
            if len(stem) < MIN_PREFIX:
                raise self.fail(item, f"a wildcard stem needs at least {MIN_PREFIX} letters")
            return Term(stem, prefix=True, source=value)
        folded = normalise_phrase(value)
        if not folded:
            raise self.fail(item, f"{value!r} has no letters or digits")
        return Term(folded, source=value)

    def _Phrase(self, item: lt.Phrase) -> Node:
        raw = item.value[1:-1]
        folded = normalise_phrase(raw)
        if not folded:
            raise self.fail(item, "the phrase has no letters or digits")
        return Term(folded, source=item.value)

    def _Proximity(self, item: lt.Proximity) -> Node:
        phrase = item.children[0]
        words = normalise_phrase(phrase.value[1:-1]).split()
        slop = int(float(item.degree or 1))
        if len(words) < 2:
            raise self.fail(item, "proximity needs at least two words in the quotes")
        if slop > MAX_WINDOW:
            raise self.fail(item, f"proximity must be <= {MAX_WINDOW}")
        return Proximity(tuple(Term(w, source=w) for w in words), slop)

    def _Regex(self, item: lt.Regex) -> Node:
        pattern = item.value[1:-1]
        try:
            compiled = re2.compile(pattern, _RE2_QUIET)
        except re2.error as exc:  # one readable line: re2's message comes as bytes
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise QueryError(f"invalid regex for re2: {reason}; RE2 runs in linear time and has no look-around "
                             "(?= (?! (?<= (?<! and no backreferences", "/" + pattern + "/",
                             getattr(item, "pos", -1) or 0) from None
        return Regex(pattern, compiled)

    def _SearchField(self, item: lt.SearchField) -> Node:
        name, expr = item.name, item.expr
        if name.startswith("@"):
            if not isinstance(expr, (lt.Word, lt.Phrase)):
                raise self.fail(item, f"{name}: takes one value, e.g. {name}:Ukraine or {name}:\"United States\"")
            value = expr.value[1:-1] if isinstance(expr, lt.Phrase) else expr.value
            return self._entity(item, name[1:], value)
        if name == "entity":
            if not isinstance(expr, lt.Word):
                raise self.fail(item, "entity: takes a kind name, e.g. entity:weapon")
            return self._entity(item, expr.value, None)
        m = _SCOPE_FIELD.match(name)
        if not m:
            raise self.fail(item, f"unknown field {name!r} (fields: title, text, paragraph, sentence, sentencesN, nearN, "
                                  "entity, @kind)")
        child = self.convert(expr)
        if name in ("title", "text"):
            return Scope(name, 0, child)
        if name == "paragraph":
            return Scope("paragraph", 1, child)
        n = int(m.group(2) or m.group(3) or 1)
        if not 1 <= n <= MAX_WINDOW:
            raise self.fail(item, f"window must be 1..{MAX_WINDOW}")
        return Scope("near" if name.startswith("near") else "sentence", n, child)

    def _entity(self, item: lt.Item, kind: str, canonical: str | None) -> Node:
        if not self.known_kind(kind):
            raise self.fail(item, f"unknown entity kind {kind!r}")
        return EntityRef(kind, canonical)
