"""The matcher: all rules' terms and entity aliases in one Aho-Corasick automaton, then each rule's logic on the hits.

Pure: an Article in, Matches out. Compiled once per rule set; the daemon swaps whole RuleSets on reload.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import ahocorasick_rs

from ..errors import PermanentError
from ..models import Article, Match
from . import document
from .document import BUILTIN_KINDS
from .entities import BLOCK_LANGUAGE, PATTERN_FINDERS, PATTERN_KINDS, Gazetteer
from .evidence import Explanation, build_match, hits_in_context, most_specific, why_not
from .normalise import Normalised, fold_text, normalise_phrase
from .query import And, EntityRef, Node, Not, Or, Proximity, Regex, Scope, Term
from .schema import FieldSpec

log = logging.getLogger(__name__)

MATCH_TIMEOUT = 2.0  # seconds one article may take for all rules (linear matching needs milliseconds)


class MatchTimeout(PermanentError):
    """Matching one article ran past its deadline."""

Hit = tuple[int, int]  # normalised [start, end)
EHit = tuple[int, int, str]  # normalised [start, end), canonical value


@dataclass(frozen=True)
class Example:
    text: str
    expect: bool  # True: the rule must fire
    label: str  # "match[3]" or the file path
    title: str = ""
    error: str = ""  # an example file that cannot be read: a failed example, not a rule that cannot load


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    node: Node
    query: str
    severity: str = "medium"
    channels: tuple[str, ...] = ()
    enabled: bool = True
    owner: str = ""
    description: str = ""
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    examples: tuple[Example, ...] = ()
    source: str = ""  # file:line of the rule


def article_text(article: Article) -> str:
    """What rules see: the title, a blank line, the text."""
    return f"{article.title}\n\n{article.text}" if article.title else article.text


class Scanner:
    """An Aho-Corasick automaton over some of the keys (ahocorasick_rs: the Rust crate's contiguous NFA, every
    overlapping occurrence in one call): where each key occurs, as the index of its occurrence's last character."""

    __slots__ = ("_automaton", "_ids")

    def __init__(self, keys: list[str], ids: list[int]) -> None:
        self._ids = ids
        standard = ahocorasick_rs.MatchKind.Standard  # every occurrence, overlapping ones too
        self._automaton = ahocorasick_rs.AhoCorasick(keys, matchkind=standard) if keys else None

    def __len__(self) -> int:
        return len(self._ids)

    def scan(self, text: str, ends: dict[int, list[int]]) -> None:
        """Appends to ends[key] where each occurrence of the key in `text` ends, in order."""
        if self._automaton is not None:
            ids = self._ids
            for p, _start, end in self._automaton.find_matches_as_indexes(text, overlapping=True):
                ends[ids[p]].append(end - 1)


class Compiled:
    """The automaton and the index from hit keys to the rules they can make true."""

    def __init__(self, rules: tuple[Rule, ...], gazetteer: Gazetteer) -> None:
        self.rules = rules
        self.gazetteer = gazetteer
        self._alias_tables: dict[str, dict[str, str]] = {}
        self.term_ids: dict[tuple[str, bool], int] = {}
        self._kind_keys: dict[str, int] = {}  # entity kind -> its number (see kind_key)
        keys: dict[str, list[tuple]] = defaultdict(list)
        for rule in rules:
            for term in _terms(rule.node):
                tid = self.term_ids.setdefault((term.text, term.prefix), len(self.term_ids))
                if term.prefix:
                    keys[" " + term.text].append(("p", tid))
                else:
                    keys[" " + term.text + " "].append(("t", tid))
        self._add_entities(keys)
        # kinds a rule needs present (outside NOT) go into the automaton every article is scanned with; the rest
        # (cue lists used only in NOT, kinds the built-ins and fields read) into a second one, scanned only when a
        # rule that got that far asks for them: most articles make no rule a candidate and never pay for them
        self.primary_kinds = {k for r in rules for k in _positive_kinds(r.node)}
        self._build_automaton(keys)
        self.tids = {id(t): self.term_ids[(t.text, t.prefix)] for r in rules for t in _terms(r.node)}
        self.shared = _shared_scopes(rules)
        self.index: dict[int, list[int]] = defaultdict(list)
        self.always: list[int] = []
        self.requires: list[tuple | None] = []  # per rule: the hit keys it needs (see needs())
        # the same as a flat AND of clauses, each a set of hit keys one of which must be present (None: test the tree)
        self.clauses: list[tuple[frozenset, ...] | None] = []
        for i, rule in enumerate(rules):
            self.requires.append(self.needs(rule.node))
            self.clauses.append(_clauses(self.requires[-1]) if self.requires[-1] is not None else ())
            if not rule.enabled:
                continue
            trig = self.triggers(rule.node)
            if trig is None:
                self.always.append(i)
            for key in trig or ():
                self.index[key].append(i)
        self.index_keys = frozenset(self.index)  # the hit keys that trigger a rule (see candidates)

    def _build_automaton(self, keys: dict[str, list[tuple]]) -> None:
        """Per key, what a hit on it means (terms, entity values, hit keys), and for which languages it counts; the
        automata themselves are built per article language on first use (see automata)."""
        self.key_len: list[int] = []
        self.key_hitkeys: list[frozenset] = []
        self.tid_keys: dict[int, list[tuple[int, bool]]] = defaultdict(list)
        # per key: (kind, canonical, exact spelling or None, language or "", the split verb's tail or None)
        self.key_entities: list[tuple[tuple[str, str, str | None, str, str | None], ...]] = []
        self._keys: list[tuple[str, bool, frozenset[str]]] = []  # (key, primary, languages; "" = every language)
        for kidx, (key, payload) in enumerate(keys.items()):
            self.key_len.append(len(key))  # the automaton reports where a key ends; its length gives the start
            hitkeys = set()
            entities: list[tuple[str, str, str | None, str, str | None]] = []
            for item in dict.fromkeys(payload):
                if item[0] in ("t", "p"):
                    self.tid_keys[item[1]].append((kidx, item[0] == "p"))
                    hitkeys.add(item[1])
                else:
                    entities.append((item[1], item[2], item[3], item[4], item[5]))
                    hitkeys.add(self.kind_key(item[1]))
            self.key_entities.append(tuple(entities))
            self.key_hitkeys.append(frozenset(hitkeys))
            primary = any(item[0] in ("t", "p") or item[1] in self.primary_kinds for item in payload)
            languages = frozenset("" if e[0] in ("t", "p") else e[4] for e in payload)
            self._keys.append((key, primary, languages))
        self._automata: dict[str, tuple[Scanner, Scanner]] = {}
        self.automaton = self.automata("")[0]  # every language's keys: for counting and for unknown languages

    def automata(self, language: str) -> tuple[Scanner, Scanner]:
        """(primary, secondary) automata for articles in `language`: rule terms, language-neutral entries and that
        language's blocks (all blocks when the language is unknown). Smaller automata scan faster."""
        found = self._automata.get(language)
        if found is None:
            keys: tuple[list[str], list[str]] = ([], [])
            ids: tuple[list[int], list[int]] = ([], [])
            for kidx, (key, primary, languages) in enumerate(self._keys):
                if not language or "" in languages or language in languages:
                    keys[0 if primary else 1].append(key)
                    ids[0 if primary else 1].append(kidx)
            found = (Scanner(keys[0], ids[0]), Scanner(keys[1], ids[1]))
            self._automata[language] = found
        return found

    def _add_entities(self, keys: dict[str, list[tuple]]) -> None:
        for kind in self.gazetteer.kinds.values():
            for ent in kind.entities:
                exact = set(ent.exact_case)
                for alias in (*ent.aliases, *ent.exact_case):
                    suffix = alias.startswith("*")  # the end of a compound word: "*panzer" in "Kampfpanzer"
                    head, _, tail = alias.replace("…", "...").partition(" ... ")  # "sagte ... zu": a split verb
                    folded = normalise_phrase(head)
                    if not folded:
                        continue
                    tail = normalise_phrase(tail) or None
                    # neutral entries get an English plural; language blocks bring their own inflections
                    variants = [folded] if alias in exact or ent.language else [folded, folded + "s"]
                    for v in variants:
                        payload = ("e", kind.name, ent.canonical, alias if alias in exact else None, ent.language,
                                   tail)
                        keys[(v if suffix else " " + v) + " "].append(payload)

    def alias_table(self, kind: str) -> dict[str, str]:
        """Folded alias -> canonical value of one gazetteer kind (for looking up phrases outside the text scan)."""
        table = self._alias_tables.get(kind)
        if table is None:
            table = {}
            for ent in self.gazetteer.kinds[kind].entities if kind in self.gazetteer.kinds else ():
                for alias in (*ent.aliases, *ent.exact_case):
                    table.setdefault(normalise_phrase(alias), ent.canonical)
            self._alias_tables[kind] = table
        return table

    def tid(self, term: Term) -> int:
        return self.tids[id(term)]

    def kind_key(self, kind: str) -> int:
        """The hit key of an entity kind: a negative number (a term's hit key is its term id, from 0), so the index
        and the candidate check hash small ints, not tuples."""
        return -1 - self._kind_keys.setdefault(kind, len(self._kind_keys))

    def triggers(self, node: Node) -> frozenset | None:
        """Hit keys of which at least one must occur for `node` to be true; None if no such set exists.

        Of an AND's children the cheapest set is chosen: a literal term is rarer than "any state".
        """
        if isinstance(node, Term):
            return frozenset([self.tid(node)])
        if isinstance(node, EntityRef):
            return (None if node.kind in PATTERN_KINDS or node.kind in BUILTIN_KINDS
                    else frozenset([self.kind_key(node.kind)]))
        if isinstance(node, Proximity):
            return frozenset([self.tid(node.words[0])])
        if isinstance(node, Scope):
            return self.triggers(node.child)
        if isinstance(node, And):
            sets = [s for s in map(self.triggers, node.children) if s is not None]
            return min(sets, key=_cost) if sets else None
        if isinstance(node, Or):
            sets = [self.triggers(c) for c in node.children]
            return None if any(s is None for s in sets) else frozenset().union(*sets)
        return None  # Not, Regex

    def needs(self, node: Node) -> tuple | None:
        """What `node` needs among the article's hit keys, as a small AND/OR tree; None: nothing is known."""
        if isinstance(node, (Term, EntityRef)):
            trig = self.triggers(node)
            return ("set", trig) if trig is not None else None
        if isinstance(node, Proximity):
            return ("all", tuple(("set", frozenset([self.tid(w)])) for w in node.words))
        if isinstance(node, Scope):
            return self.needs(node.child)
        if isinstance(node, And):
            parts = tuple(n for n in map(self.needs, node.children) if n is not None)
            return ("all", parts) if parts else None
        if isinstance(node, Or):
            parts = tuple(map(self.needs, node.children))
            return None if any(p is None for p in parts) else ("any", parts)
        return None  # Not, Regex

    def candidates(self, hit_keys: set[int]) -> list[int]:
        """Rules whose needed hits are all present: the only ones worth evaluating."""
        found = set(self.always)
        index = self.index
        # only the hit keys that trigger a rule (an article hits many words that rules only need, not trigger on,
        # "w" of `"name w"~6`): a set intersection in C, not a lookup per hit key
        for key in hit_keys.intersection(self.index_keys):  # (two sets: C walks the smaller)
            found.update(index[key])
        needs, clauses = self.requires, self.clauses
        out = []
        for i in found:
            flat = clauses[i]
            if flat is None:
                if _satisfied(needs[i], hit_keys):  # type: ignore[arg-type]
                    out.append(i)
                continue
            for clause in flat:
                if clause.isdisjoint(hit_keys):
                    break
            else:
                out.append(i)
        out.sort()
        return out


MAX_CLAUSES = 64  # a rule whose needs spread into more clauses than this keeps its tree (see _clauses)


def _clauses(need: tuple) -> tuple[frozenset, ...] | None:
    """A needs tree as an AND of clauses (sets of hit keys, one of which must be present): ("any", ...) distributed
    over its children's clauses, absorbed clauses (supersets of another) dropped; None if it would grow too large."""
    op, arg = need
    if op == "set":
        return (arg,)
    parts = [_clauses(n) for n in arg]
    if any(p is None for p in parts):
        return None
    if op == "all":
        flat = [c for p in parts for c in p]  # type: ignore[union-attr]
    else:
        flat = [frozenset()]
        for p in parts:
            flat = [a | b for a in flat for b in p]  # type: ignore[union-attr]
            if len(flat) > MAX_CLAUSES:
                return None
        if not parts:
            return None
    flat = list(dict.fromkeys(flat))
    kept = [c for c in flat if not any(o < c for o in flat)]
    if len(kept) > MAX_CLAUSES:
        return None
    return tuple(sorted(kept, key=len))


def _satisfied(need: tuple, keys: set[int]) -> bool:
    op, arg = need
    if op == "set":
        return not arg.isdisjoint(keys)
    if op == "all":
        return all(_satisfied(n, keys) for n in arg)
    return any(_satisfied(n, keys) for n in arg)


def _cost(keys: frozenset) -> int:
    return sum(100 if k < 0 else 1 for k in keys)  # an entity kind (a negative key) is commoner than a term


def _shared_scopes(rules: tuple[Rule, ...]) -> dict[int, int]:
    """id() of each windowed scope clause (sentence:, paragraph:, nearN:) that two or more enabled rules share, written
    alike (`sentence:(@state AND NOT @question)`), -> one number per such clause: evaluated once per article and
    range (see Context._scope), not once per rule."""
    occurrences: dict[Node, list[Node]] = defaultdict(list)
    for rule in rules:
        if rule.enabled:
            for node in {id(n): n for n in _scopes(rule.node)}.values():
                occurrences[node].append(node)  # structural equality: the same clause in another rule
    shared: dict[int, int] = {}
    for number, nodes in enumerate(n for n in occurrences.values() if len(n) > 1):
        for node in nodes:
            shared[id(node)] = number
    return shared


def _scopes(node: Node):
    """The scope clauses in `node` (preorder, NOT included) that two rules may share."""
    for n in _walk(node):  # a regex is compared by its compiled object: never alike, so a scope holding one is not
        if isinstance(n, Scope) and n.kind not in ("title", "text") and not any(isinstance(r, Regex) for r in _walk(n)):
            yield n


def _walk(node: Node):
    yield node
    for child in (node.children if isinstance(node, (And, Or)) else (node.child,) if isinstance(node, (Not, Scope))
                  else node.words if isinstance(node, Proximity) else ()):
        yield from _walk(child)


def _positive_kinds(node: Node):
    """Gazetteer kinds that `node` needs present (entity references outside any NOT)."""
    if isinstance(node, EntityRef):
        if node.kind not in PATTERN_KINDS and node.kind not in BUILTIN_KINDS:
            yield node.kind
    elif isinstance(node, (And, Or)):
        for c in node.children:
            yield from _positive_kinds(c)
    elif isinstance(node, Scope):
        yield from _positive_kinds(node.child)


def _terms(node: Node):
    if isinstance(node, Term):
        yield node
    elif isinstance(node, Proximity):
        yield from node.words
    elif isinstance(node, (And, Or)):
        for c in node.children:
            yield from _terms(c)
    elif isinstance(node, (Not, Scope)):
        yield from _terms(node.child)


# A recipient's preposition may follow a split verb's particle (Dutch, German, Danish): "stelt zes F-16's
# beschikbaar aan Oekraïne", "trekt 200 miljoen euro uit voor munitie"
EXTRAPOSED = tuple(f" {w} " for w in "aan voor naar an für til".split())


class Context:
    """One article's hits, shared by every rule evaluated on it, and the evaluation of rule trees on them."""

    def __init__(self, compiled: Compiled, article: Article) -> None:
        self.c = compiled
        self.language = BLOCK_LANGUAGE.get(article.language or "", article.language or "")
        self.published = article.published
        self.country = article.country
        self.nz = Normalised(article_text(article), self.language)
        self._title_len = len(article.title) if article.title else 0
        self._title_end: int | None = None
        self.memo: dict[str, Any] = {}  # document-level facts computed once (speaker, labels)
        self.missing_fields: list[str] = []  # required fields left empty by the last rule evaluated
        self.deadline: float | None = None  # time.monotonic() by which matching must be done (see tick)
        self._ticks = 0
        self.terms: dict[int, list[Hit]] = {}
        self.entities: dict[str, list[EHit]] = {}
        self.keys: set[int] = set()
        self._regex: dict[str, list[Hit]] = {}
        self.scopes: list[tuple[int, int, int]] = []  # (start, end, depth): windows in which a scoped clause held
        self._depth = 0  # how deep in scopes the evaluation is
        self._ends: dict[int, list[int]] = defaultdict(list)  # automaton key -> where its hits end
        self._by_kind: dict[str, list[tuple[int, str, str | None, str | None]]] | None = None
        self._secondary_done = False
        self._kinds_found: list[str] | None = None  # every gazetteer kind with hits (all_entity_hits)
        self._by_value: dict[tuple[str, str], list[EHit]] = {}  # @kind:value hits
        self._starts: dict[int | str, list[int]] = {}  # a term's (its id) or gazetteer kind's hits' starts, in order
        # shared scope clauses (Compiled.shared) already evaluated: (clause, lo, hi) -> (true, hits, scopes); None:
        # every rule evaluates its own (the reference path, match_every_rule)
        self.shared: dict[int, int] | None = compiled.shared
        self._scope_memo: dict[tuple[int, int, int], tuple[bool, tuple | None, tuple | None]] = {}
        self.evidence_memo: dict[Any, Any] = {}  # what the evidence of every match on the article shares (evidence.py)
        self._scan()

    @property
    def title_end(self) -> int:
        """Normalised position where the title ends (0 without a title); computed only if a rule asks."""
        if self._title_end is None:
            # the title's words come first in the normalised text: its length is where the title ends
            words = fold_text(self.nz.original[: self._title_len]).split()
            self._title_end = len(" ".join(words)) + 1 if words else 0
        return self._title_end

    def _scan(self) -> None:
        """The one pass: only the end positions per key are kept; hits are built when a rule asks."""
        automaton = self.c.automata(self.language)[0]
        if not len(automaton):
            return
        ends = self._ends
        automaton.scan(self.nz.norm, ends)
        hitkeys = self.c.key_hitkeys
        self.keys = set().union(*(hitkeys[k] for k in ends)) if ends else set()

    def _scan_secondary(self) -> None:
        """The second pass, for the kinds no rule needs present (cues used in NOT, built-ins' and fields' kinds)."""
        self._secondary_done = True
        secondary = self.c.automata(self.language)[1]
        if len(secondary):
            before = len(self._ends)
            secondary.scan(self.nz.norm, self._ends)
            if self._by_kind is not None:  # its keys come after the first pass's (each key is in one automaton)
                self._group_by_kind(islice(self._ends, before, None))

    def term_hits(self, tid: int) -> list[Hit]:
        hits = self.terms.get(tid)
        if hits is None:
            keys = self.c.tid_keys.get(tid, ())
            if len(keys) == 1:  # a term is one key: its hits come in order of their ends, so of their starts
                kidx, prefix = keys[0]
                back = self.c.key_len[kidx] - 2  # (the key's leading space)
                ends = self._ends.get(kidx, ())
                if prefix:
                    find = self.nz.norm.find
                    hits = self.terms[tid] = [(end - back, find(" ", end)) for end in ends]
                else:
                    hits = self.terms[tid] = [(end - back, end) for end in ends]
                return hits
            hits = []
            norm, key_len = self.nz.norm, self.c.key_len
            for kidx, prefix in keys:
                for end in self._ends.get(kidx, ()):
                    start = end - key_len[kidx] + 2  # skip the key's leading space
                    hits.append((start, norm.find(" ", end)) if prefix else (start, end))
            hits.sort()
            self.terms[tid] = hits
        return hits

    def entity_hits(self, kind: str) -> list[EHit]:
        hits = self.entities.get(kind)
        if hits is not None:
            return hits
        if kind in PATTERN_FINDERS:
            to_norm = self.nz.to_norm
            hits = [(to_norm(a), to_norm(b - 1) + 1, v) for a, b, v in PATTERN_FINDERS[kind](self.nz.original)]
            self.entities[kind] = hits
            return hits
        if kind in BUILTIN_KINDS:
            self.entities[kind] = []  # a built-in may ask for itself while resolving: it sees none
            self.entities[kind] = hits = document.find(self, kind)
            return hits
        if not self._secondary_done and kind not in self.c.primary_kinds:
            self._scan_secondary()
        hits = []
        key_len, norm = self.c.key_len, self.nz.norm
        for kidx, canonical, exact, tail in self._keys_by_kind().get(kind, ()):
            for end in self._ends[kidx]:
                start = end - key_len[kidx] + 2
                if norm[start - 1] != " ":  # a compound's end ("*panzer"): the hit is the whole word
                    start = norm.rfind(" ", 0, start) + 1
                if tail is not None and self._split_tail(end, tail) < 0:
                    continue  # the hit is the verb; its particle closes the clause further on
                if exact is None or self.nz.span_text(start, end) == exact:  # exact spelling: only if asked
                    hits.append((start, end, canonical))
        hits = sorted(set(hits))
        self.entities[kind] = hits
        return hits

    def _keys_by_kind(self) -> dict[str, list[tuple[int, str, str | None]]]:
        """The automaton keys hit in this article, grouped by entity kind (one pass over the hit keys); entries of
        another language's block are left out when the article's language is known."""
        if self._by_kind is None:
            self._by_kind = defaultdict(list)
            self._group_by_kind(self._ends)
        return self._by_kind

    def _group_by_kind(self, kidxs) -> None:
        by_kind, key_entities, language = self._by_kind, self.c.key_entities, self.language
        for kidx in kidxs:
            for kind, canonical, exact, lang, tail in key_entities[kidx]:
                if not lang or not language or lang == language:
                    by_kind[kind].append((kidx, canonical, exact, tail))  # type: ignore[index]

    def _split_tail(self, end: int, tail: str) -> int:
        """Where the particle of a split verb ends ("sagte ... zu": "zu" closing the clause within 25 words of
        "sagte"), or -1. German and Dutch put it last in the clause, before a comma or the full stop."""
        norm, original, nz = self.nz.norm, self.nz.original, self.nz
        limit = nz.word_reach(end, 25)  # (`end` is the key's closing space)
        at = norm.find(" " + tail + " ", end - 1, limit + 1)
        if at < 0:
            return -1  # most hits have no particle in reach: their sentence need not be found
        limit = min(nz.sentence_at(end)[1], limit)
        at = norm.find(" " + tail + " ", end - 1, limit + 1)
        while at >= 0:
            after = nz.to_orig(at + len(tail)) + 1
            rest = original[after : after + 3].lstrip(" \"'”’»)")
            if not rest or rest[0] in ",.;:!?\n" or norm.startswith(EXTRAPOSED, at + 1 + len(tail)):
                return at + 1 + len(tail)
            at = norm.find(" " + tail + " ", at + 1, limit + 1)
        return -1

    def lookup(self, kind: str, phrase: str) -> str | None:
        """The canonical value of the first alias of `kind` found in `phrase` (e.g. a speaker label), or None."""
        table = self.c.alias_table(kind)
        words = normalise_phrase(phrase).split()
        for i in range(len(words)):
            for j in range(min(len(words), i + 5), i, -1):
                value = table.get(" ".join(words[i:j]))
                if value is not None:
                    return value
        return None

    def all_entity_hits(self, *, patterns: bool = True, only=None) -> dict[str, list[EHit]]:
        """Every gazetteer kind found in the article, and the pattern and document kinds if `patterns`; of those,
        only the kinds `only(kind)` is true of, when given (a match's evidence lists reportable kinds: the cue lists'
        hits need not be found for it). Only what was asked for, never what another rule happened to compute first:
        a match's evidence must not depend on which rules ran before it on the same article."""
        if self._kinds_found is None:
            if not self._secondary_done:
                self._scan_secondary()
            self._kinds_found = sorted({k for kidx in self._ends for k, *_ in self.c.key_entities[kidx]})
        kinds = (*self._kinds_found, *((*PATTERN_KINDS, *BUILTIN_KINDS) if patterns else ()))
        found = {kind: self.entity_hits(kind) for kind in kinds if only is None or only(kind)}
        return {k: v for k, v in found.items() if v}

    def regex_hits(self, node: Regex) -> list[Hit]:
        if node.pattern not in self._regex:
            to_norm = self.nz.to_norm
            self._regex[node.pattern] = [
                (to_norm(m.start()), to_norm(max(m.start(), m.end() - 1)) + 1)
                for m in node.compiled.finditer(self.nz.original)  # type: ignore[attr-defined]
            ]
        return self._regex[node.pattern]

    # evaluation --------------------------------------------------------------------------------------------------
    def ev(self, node: Node, lo: int, hi: int, out: list | None) -> bool:
        """Is `node` true inside normalised [lo, hi)? Appends the positive hits that made it true to `out`."""
        return _DISPATCH[type(node)](self, node, lo, hi, out)

    def _ev_term(self, node: Term, lo: int, hi: int, out: list | None) -> bool:
        tid = self.c.tids[id(node)]
        hits = self.terms.get(tid)  # (term_hits' cache, read here: most terms are asked for many times per article)
        if hits is None:
            hits = self.term_hits(tid)
        return self._hits(hits, lo, hi, out, node.source or node.text)

    def _ev_entity(self, node: EntityRef, lo: int, hi: int, out: list | None) -> bool:
        hits = None if node.canonical else self.entities.get(node.kind)  # (entity_hits' cache, as for terms)
        if hits is None:
            hits = self.entity_ref_hits(node)
        return self._hits(hits, lo, hi, out, "@" + node.kind)

    def entity_ref_hits(self, node: EntityRef) -> list[EHit]:
        """Hits of @kind, or of @kind:value (filtered once per article, not per window)."""
        if not node.canonical:
            return self.entity_hits(node.kind)
        key = (node.kind, node.canonical.casefold())
        hits = self._by_value.get(key)
        if hits is None:
            hits = self._by_value[key] = [h for h in self.entity_hits(node.kind) if h[2].casefold() == key[1]]
        return hits

    def _ev_and(self, node: And, lo: int, hi: int, out: list | None) -> bool:
        if out is None:
            return all(_DISPATCH[type(c)](self, c, lo, hi, None) for c in node.children)
        tmp: list = []
        scopes = len(self.scopes)
        for child in node.children:
            if not _DISPATCH[type(child)](self, child, lo, hi, tmp):
                del self.scopes[scopes:]  # windows that held inside a failed AND are no evidence
                return False
        out.extend(tmp)
        return True

    def _ev_or(self, node: Or, lo: int, hi: int, out: list | None) -> bool:
        if out is None:
            return any(_DISPATCH[type(c)](self, c, lo, hi, None) for c in node.children)
        ok = False
        for child in node.children:
            ok = _DISPATCH[type(child)](self, child, lo, hi, out) or ok
        return ok

    def _ev_not(self, node: Not, lo: int, hi: int, out: list | None) -> bool:
        return not _DISPATCH[type(node.child)](self, node.child, lo, hi, None)

    def _ev_regex(self, node: Regex, lo: int, hi: int, out: list | None) -> bool:
        return self._hits(self.regex_hits(node), lo, hi, out, str(node))

    @staticmethod
    def _hits(hits, lo: int, hi: int, out: list | None, label: str) -> bool:
        """Hits inside [lo, hi): hits are sorted by start, so only those starting in the range are looked at (a hit
        is a tuple that starts with its start: `(lo,)` sorts before every hit starting at lo, compared in C)."""
        found = False
        for k in range(bisect_left(hits, (lo,)), len(hits)):
            h = hits[k]
            if h[0] >= hi:
                break
            if h[1] <= hi:
                if out is None:
                    return True
                found = True
                out.append((h[0], h[1], label, h[2] if len(h) > 2 else None))
        return found

    def _scope(self, node: Scope, lo: int, hi: int, out: list | None) -> bool:
        if node.kind == "title":
            return _DISPATCH[type(node.child)](self, node.child, lo, min(hi, self.title_end), out)
        if node.kind == "text":
            return _DISPATCH[type(node.child)](self, node.child, max(lo, self.title_end), hi, out)
        number = self.shared.get(id(node)) if self.shared is not None else None
        if number is None:
            return self._windows_scope(node, lo, hi, out)
        key = (number, lo, hi)
        known = self._scope_memo.get(key)
        if known is not None:
            ok, hits, scopes = known
            if out is None or not ok:
                return ok
            if hits is not None:  # the evidence and the windows it held in, at this evaluation's depth
                out.extend(hits)
                depth = self._depth
                if depth:
                    self.scopes.extend((a, b, depth + d) for a, b, d in scopes)  # type: ignore[union-attr]
                else:  # (most shared clauses sit at the top of their rule: no depth to add)
                    self.scopes.extend(scopes)  # type: ignore[arg-type]
                return True
        if out is None:
            ok = self._windows_scope(node, lo, hi, None)
            self._scope_memo.setdefault(key, (ok, None, None))
            return ok
        mark, found = len(self.scopes), []
        ok = self._windows_scope(node, lo, hi, found)
        self._scope_memo[key] = (ok, tuple(found), tuple((a, b, d - self._depth) for a, b, d in self.scopes[mark:]))
        out.extend(found)
        return ok

    def _windows_scope(self, node: Scope, lo: int, hi: int, out: list | None) -> bool:
        """sentence:, paragraph:, nearN: true in one of the windows around its anchors inside [lo, hi)."""
        if not self.possible(node.child, lo, hi):
            return False
        ok = False
        self._depth += 1
        try:
            child, ev = node.child, _DISPATCH[type(node.child)]
            for a, b in self.windows(node, lo, hi):
                self.tick()
                tmp: list | None = [] if out is not None else None
                if ev(self, child, a, b, tmp):
                    ok = True
                    if out is None:
                        return True
                    out.extend(tmp or ())
                    self.scopes.append((a, b, self._depth))
        finally:
            self._depth -= 1
        return ok

    def possible(self, node: Node, lo: int, hi: int) -> bool:
        """A cheap necessary condition: the positive parts of `node` occur somewhere in [lo, hi)."""
        return _POSSIBLE[type(node)](self, node, lo, hi)

    def _possible_and(self, node: And, lo: int, hi: int) -> bool:
        for c in node.children:
            if not _POSSIBLE[type(c)](self, c, lo, hi):
                return False
        return True

    def _possible_or(self, node: Or, lo: int, hi: int) -> bool:
        for c in node.children:
            if _POSSIBLE[type(c)](self, c, lo, hi):
                return True
        return False

    def _possible_scope(self, node: Scope, lo: int, hi: int) -> bool:
        return _POSSIBLE[type(node.child)](self, node.child, lo, hi)

    def _possible_leaf(self, node: Node, lo: int, hi: int) -> bool:
        return _DISPATCH[type(node)](self, node, lo, hi, None)

    def windows(self, node: Scope, lo: int, hi: int) -> list[Hit]:
        """The sentence windows or word windows in which to try a scoped clause, near its trigger hits."""
        anchors = self.anchor_positions(node.child, lo, hi)
        wins: dict[Hit, None] = {}
        if node.kind == "paragraph":
            spans = ([self.nz.paragraph_at(p) for p in sorted(anchors)] if anchors is not None
                     else [self.nz.paragraph_at(a) for a, _b in self.nz.sentences()])
            for a, b in spans:
                wins[(max(lo, a), min(hi, b))] = None
            return [w for w in wins if w[0] < w[1]]
        if node.kind == "sentence":
            if node.n == 1 and anchors is not None:  # the common case: only the sentences around the anchors
                for p in sorted(anchors):
                    a, b = self.nz.sentence_at(p)
                    wins[(max(lo, a), min(hi, b))] = None
                return [w for w in wins if w[0] < w[1]]
            sents = self.nz.sentences()
            idx = range(len(sents)) if anchors is None else sorted({self.nz.sentence_index(p) for p in anchors})
            for i in idx:
                for first in range(max(0, i - node.n + 1), i + 1):
                    last = min(len(sents) - 1, first + node.n - 1)
                    wins[(max(lo, sents[first][0]), min(hi, sents[last][1]))] = None
        else:
            for p in anchors if anchors is not None else []:
                w = self.nz.word_index(p)
                a, b = self.nz.word_span(w - node.n, w + node.n)
                wins[(max(lo, a), min(hi, b))] = None
        return [w for w in wins if w[0] < w[1]]

    def anchor_positions(self, node: Node, lo: int, hi: int) -> list[int] | None:
        """Positions of hits one of which any true instance of `node` must contain; None if unknown.

        Of an AND's children the one with the fewest hits in this article is used, so few windows are tried.
        """
        return _ANCHORS[type(node)](self, node, lo, hi)

    def _anchors_term(self, node: Term, lo: int, hi: int) -> list[int]:
        """A term's hits are sorted by start: the starts in [lo, hi) are a slice of the article's list of them."""
        tid = self.c.tids[id(node)]
        starts = self._starts.get(tid)
        if starts is None:
            starts = self._starts[tid] = [h[0] for h in self.term_hits(tid)]
        return starts[bisect_left(starts, lo) : bisect_left(starts, hi)]

    def _anchors_entity(self, node: EntityRef, lo: int, hi: int) -> list[int]:
        kind = node.kind
        if node.canonical or kind in PATTERN_FINDERS or kind in BUILTIN_KINDS:
            hits = self.entity_hits(kind)
            want = node.canonical.casefold() if node.canonical else None
            return [h[0] for h in hits if lo <= h[0] < hi and (want is None or h[2].casefold() == want)]
        starts = self._starts.get(kind)  # a gazetteer kind's hits are sorted (entity_hits): a slice, as for terms
        if starts is None:
            starts = self._starts[kind] = [h[0] for h in self.entity_hits(kind)]
        return starts[bisect_left(starts, lo) : bisect_left(starts, hi)]

    def _anchors_first_word(self, node: Proximity, lo: int, hi: int) -> list[int] | None:
        return self._anchors_term(node.words[0], lo, hi)

    def _anchors_scope(self, node: Scope, lo: int, hi: int) -> list[int] | None:
        return _ANCHORS[type(node.child)](self, node.child, lo, hi)

    def _anchors_and(self, node: And, lo: int, hi: int) -> list[int] | None:
        best: list[int] | None = None
        for child in node.children:
            found = _ANCHORS[type(child)](self, child, lo, hi)
            if found is not None and (best is None or len(found) < len(best)):
                best = found
                if not best:
                    break
        return best

    def _anchors_or(self, node: Or, lo: int, hi: int) -> list[int] | None:
        out: list[int] = []
        for child in node.children:
            found = _ANCHORS[type(child)](self, child, lo, hi)
            if found is None:
                return None
            out.extend(found)
        return out

    def _proximity(self, node: Proximity, lo: int, hi: int, out: list | None) -> bool:
        """All words within len(words) + slop words: one sliding window over the hits in word order (linear)."""
        positions: list[tuple[int, int, Hit]] = []
        for i, word in enumerate(node.words):
            hits = self.term_hits(self.c.tid(word))
            for k in range(bisect_left(hits, (lo,)), len(hits)):
                h = hits[k]
                if h[0] >= hi:
                    break
                if h[1] <= hi:
                    positions.append((self.nz.word_index(h[0]), i, h))
        positions.sort()
        need, width = len(node.words), len(node.words) - 1 + node.slop
        counts = [0] * need
        distinct, j, found = 0, 0, False
        for k, (w, _i, _h) in enumerate(positions):
            while j < len(positions) and positions[j][0] - w <= width:
                counts[positions[j][1]] += 1
                distinct += counts[positions[j][1]] == 1
                j += 1
            if distinct == need:
                found = True
                if out is None:
                    return True
                out.extend((h[0], h[1], str(node), None) for _w, _i2, h in positions[k:j])
            counts[positions[k][1]] -= 1
            distinct -= counts[positions[k][1]] == 0
            self.tick()
        return found

    def tick(self) -> None:
        """Called in the loops of evaluation: past the article's deadline, matching gives up (MatchTimeout)."""
        self._ticks += 1
        if self._ticks & 1023 == 0 and self.deadline is not None and time.monotonic() > self.deadline:
            raise MatchTimeout(f"matching took longer than its deadline ({len(self.nz.original)} characters)")


_DISPATCH = {
    Term: Context._ev_term,
    EntityRef: Context._ev_entity,
    And: Context._ev_and,
    Or: Context._ev_or,
    Not: Context._ev_not,
    Scope: Context._scope,
    Proximity: Context._proximity,
    Regex: Context._ev_regex,
}

_ANCHORS = {
    Term: Context._anchors_term,
    EntityRef: Context._anchors_entity,
    Proximity: Context._anchors_first_word,
    Scope: Context._anchors_scope,
    And: Context._anchors_and,
    Or: Context._anchors_or,
    Not: lambda _ctx, _node, _lo, _hi: None,
    Regex: lambda _ctx, _node, _lo, _hi: None,
}

_POSSIBLE = {
    Term: Context._possible_leaf,
    EntityRef: Context._possible_leaf,
    Proximity: Context._possible_leaf,
    And: Context._possible_and,
    Or: Context._possible_or,
    Scope: Context._possible_scope,
    Not: lambda _ctx, _node, _lo, _hi: True,
    Regex: lambda _ctx, _node, _lo, _hi: True,
}


class RuleSet:
    """A compiled, immutable set of rules. `match` is pure and safe to call from many tasks."""

    def __init__(self, rules: tuple[Rule, ...], gazetteer: Gazetteer, *, version: str = "",
                 source_files: tuple[str, ...] = ()) -> None:
        self.rules = rules
        self.version = version
        self.source_files = source_files
        self.gazetteer = gazetteer
        self._compiled = Compiled(rules, gazetteer)

    def __repr__(self) -> str:
        return f"<RuleSet {len(self.rules)} rules version={self.version[:12]}>"

    def context(self, article: Article) -> Context:
        return Context(self._compiled, article)

    def match(self, article: Article, *, timeout: float | None = MATCH_TIMEOUT) -> list[Match]:
        """Every enabled rule that fires on the article (title + text), with its evidence.

        Raises MatchTimeout (a PermanentError) when evaluation runs past `timeout` seconds: a hostile article never
        stalls the caller for longer."""
        ctx = self.context(article)
        ctx.deadline = time.monotonic() + timeout if timeout else None
        matches = []
        for i in self._compiled.candidates(ctx.keys):
            m = self._match_rule(self.rules[i], ctx)
            if m is not None:
                matches.append(m)
        return matches

    def match_every_rule(self, article: Article) -> list[Match]:
        """What `match` gives, found without the index: every enabled rule evaluated, in order, on one context.
        The reference the index is tested against; slower."""
        ctx = self.context(article)
        ctx.shared = None  # each rule's clauses evaluated by that rule, none shared
        found = (self._match_rule(rule, ctx) for rule in self.rules if rule.enabled)
        return [m for m in found if m is not None]

    def document_speaker(self, article: Article) -> str | None:
        """The state the article speaks for, as @speaker resolves first-person words that name no one."""
        return document.document_speaker(self.context(article))

    def match_rule(self, rule: Rule, article: Article) -> Match | None:
        """One rule alone (enabled or not): what `monitor rules test` uses for examples."""
        return self._match_rule(rule, self.context(article))

    def _match_rule(self, rule: Rule, ctx: Context) -> Match | None:
        ctx.scopes = []
        ctx.missing_fields = []
        evidence: list = []  # one pass that also collects the evidence: most candidates fail early anyway
        if not ctx.ev(rule.node, 0, len(ctx.nz.norm), evidence):
            return None
        match = build_match(rule, ctx, evidence, list(dict.fromkeys(ctx.scopes)))
        if match is not None:
            log.debug("rule %s fired", rule.id)
        return match

    def explain(self, article: Article) -> list[Explanation]:
        """Every rule's verdict on the article, with hits in context, entities and the clause that failed."""
        ctx = self.context(article)
        everything = all_entities(ctx)
        out = []
        for rule in self.rules:
            m = self._match_rule(rule, ctx)
            failed = None
            if m is None:
                failed = why_not(ctx, rule.node, 0, len(ctx.nz.norm))
                if ctx.missing_fields:
                    failed = f"the query holds, but required field(s) found no value: {', '.join(ctx.missing_fields)}"
            out.append(Explanation(rule_id=rule.id, title=rule.title, fired=m is not None and rule.enabled,
                                   enabled=rule.enabled, hits=tuple(hits_in_context(ctx, rule.node)),
                                   entities=everything, failed=failed, match=m))
        return out


def all_entities(ctx: Context) -> dict[str, list[str]]:
    return {
        kind: most_specific([v for _s, _e, v in hits])
        for kind, hits in sorted(ctx.all_entity_hits().items())
        if ctx.c.gazetteer.reportable(kind)
    }
