"""The matcher: all rules' terms and entity aliases in one Aho-Corasick automaton, then each rule's logic on the hits.

Pure: an Article in, Matches out. Compiled once per rule set; the daemon swaps whole RuleSets on reload.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

from ..models import Article, Match
from .entities import PATTERN_FINDERS, PATTERN_KINDS, Gazetteer
from .evidence import Explanation, build_match, hits_in_context, why_not
from .normalise import Normalised, normalise_phrase
from .query import And, EntityRef, Node, Not, Or, Proximity, Regex, Scope, Term
from .schema import FieldSpec

log = logging.getLogger(__name__)

Hit = tuple[int, int]  # normalised [start, end)
EHit = tuple[int, int, str]  # normalised [start, end), canonical value
ALWAYS = ("*",)


@dataclass(frozen=True)
class Example:
    text: str
    expect: bool  # True: the rule must fire
    label: str  # "match[3]" or the file path
    title: str = ""


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


class Compiled:
    """The automaton and the index from hit keys to the rules they can make true."""

    def __init__(self, rules: tuple[Rule, ...], gazetteer: Gazetteer) -> None:
        self.rules = rules
        self.gazetteer = gazetteer
        self.term_ids: dict[tuple[str, bool], int] = {}
        self.exact: dict[int, str] = {}  # entity payload id -> required spelling
        keys: dict[str, list[tuple]] = defaultdict(list)
        for rule in rules:
            for term in _terms(rule.node):
                tid = self.term_ids.setdefault((term.text, term.prefix), len(self.term_ids))
                if term.prefix:
                    keys[" " + term.text].append(("p", tid))
                else:
                    keys[" " + term.text + " "].append(("t", tid))
        self._add_entities(keys)
        self.automaton = ahocorasick.Automaton()
        for key, payload in keys.items():
            # the automaton reports where a key ends; its length gives where the hit starts
            self.automaton.add_word(key, (len(key), tuple(dict.fromkeys(payload))))
        if keys:
            self.automaton.make_automaton()
        self.index: dict[tuple, list[int]] = defaultdict(list)
        self.always: list[int] = []
        for i, rule in enumerate(rules):
            if not rule.enabled:
                continue
            trig = self.triggers(rule.node)
            if trig is None:
                self.always.append(i)
            for key in trig or ():
                self.index[key].append(i)

    def _add_entities(self, keys: dict[str, list[tuple]]) -> None:
        for kind in self.gazetteer.kinds.values():
            for ent in kind.entities:
                exact = set(ent.exact_case)
                for alias in (*ent.aliases, *ent.exact_case):
                    folded = normalise_phrase(alias)
                    if not folded:
                        continue
                    variants = [folded] if alias in exact else [folded, folded + "s"]
                    for v in variants:
                        payload = ("e", kind.name, ent.canonical, alias if alias in exact else None)
                        keys[" " + v + " "].append(payload)

    def tid(self, term: Term) -> int:
        return self.term_ids[(term.text, term.prefix)]

    def triggers(self, node: Node) -> frozenset | None:
        """Hit keys of which at least one must occur for `node` to be true; None if no such set exists."""
        if isinstance(node, Term):
            return frozenset([("t", self.tid(node))])
        if isinstance(node, EntityRef):
            return None if node.kind in PATTERN_KINDS else frozenset([("k", node.kind)])
        if isinstance(node, Proximity):
            return frozenset([("t", self.tid(node.words[0]))])
        if isinstance(node, Scope):
            return self.triggers(node.child)
        if isinstance(node, And):
            sets = [s for s in map(self.triggers, node.children) if s is not None]
            return min(sets, key=len) if sets else None
        if isinstance(node, Or):
            sets = [self.triggers(c) for c in node.children]
            return None if any(s is None for s in sets) else frozenset().union(*sets)
        return None  # Not, Regex

    def candidates(self, hit_keys: set[tuple]) -> list[int]:
        found = set(self.always)
        for key in hit_keys:
            found.update(self.index.get(key, ()))
        return sorted(found)


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


class Context:
    """One article's hits, shared by every rule evaluated on it, and the evaluation of rule trees on them."""

    def __init__(self, compiled: Compiled, text: str, title_len: int) -> None:
        self.c = compiled
        self.nz = Normalised(text)
        self.title_end = self.nz.to_norm(title_len) if title_len else 0
        self.terms: dict[int, list[Hit]] = defaultdict(list)
        self.entities: dict[str, list[EHit]] = defaultdict(list)
        self.keys: set[tuple] = set()
        self._patterns_done: set[str] = set()
        self._regex: dict[str, list[Hit]] = {}
        self.scopes: list[Hit] = []  # windows (sentences, word windows) in which a scoped clause held
        self._scan()

    def _scan(self) -> None:
        norm = self.nz.norm
        if not len(self.c.automaton):
            return
        terms, entities, keys = self.terms, self.entities, self.keys
        for end, (klen, payload) in self.c.automaton.iter(norm):
            start = end - klen + 2  # skip the leading space of the key
            for item in payload:
                tag = item[0]
                if tag == "t":
                    terms[item[1]].append((start, end))
                    keys.add(item)
                elif tag == "p":
                    terms[item[1]].append((start, norm.find(" ", end)))
                    keys.add(("t", item[1]))
                elif item[3] is None or self.nz.span_text(start, end) == item[3]:
                    entities[item[1]].append((start, end, item[2]))
                    keys.add(("k", item[1]))

    def entity_hits(self, kind: str) -> list[EHit]:
        if kind in PATTERN_FINDERS and kind not in self._patterns_done:
            self._patterns_done.add(kind)
            to_norm = self.nz.to_norm
            self.entities[kind] = [(to_norm(a), to_norm(b - 1) + 1, v) for a, b, v in PATTERN_FINDERS[kind](
                self.nz.original)]
        return self.entities.get(kind, [])

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
        if isinstance(node, Term):
            return self._hits(self.terms.get(self.c.tid(node), ()), lo, hi, out, str(node))
        if isinstance(node, EntityRef):
            hits = self.entity_hits(node.kind)
            if node.canonical:
                want = node.canonical.casefold()
                hits = [h for h in hits if h[2].casefold() == want]
            return self._hits(hits, lo, hi, out, "@" + node.kind)
        if isinstance(node, And):
            tmp: list | None = [] if out is not None else None
            for child in node.children:
                if not self.ev(child, lo, hi, tmp):
                    return False
            if out is not None and tmp:
                out.extend(tmp)
            return True
        if isinstance(node, Or):
            ok = False
            for child in node.children:
                if self.ev(child, lo, hi, out):
                    ok = True
                    if out is None:
                        return True
            return ok
        if isinstance(node, Not):
            return not self.ev(node.child, lo, hi, None)
        if isinstance(node, Scope):
            return self._scope(node, lo, hi, out)
        if isinstance(node, Proximity):
            return self._proximity(node, lo, hi, out)
        if isinstance(node, Regex):
            return self._hits(self.regex_hits(node), lo, hi, out, str(node))
        raise TypeError(f"unknown node {node!r}")

    @staticmethod
    def _hits(hits, lo: int, hi: int, out: list | None, label: str) -> bool:
        found = False
        for h in hits:
            if h[0] >= lo and h[1] <= hi:
                if out is None:
                    return True
                found = True
                out.append((h[0], h[1], label, h[2] if len(h) > 2 else None))
        return found

    def _scope(self, node: Scope, lo: int, hi: int, out: list | None) -> bool:
        if node.kind == "title":
            return self.ev(node.child, lo, min(hi, self.title_end), out)
        if node.kind == "text":
            return self.ev(node.child, max(lo, self.title_end), hi, out)
        ok = False
        for a, b in self.windows(node, lo, hi):
            tmp: list | None = [] if out is not None else None
            if self.ev(node.child, a, b, tmp):
                ok = True
                if out is None:
                    return True
                out.extend(tmp or ())
                self.scopes.append((a, b))
        return ok

    def windows(self, node: Scope, lo: int, hi: int) -> list[Hit]:
        """The sentence windows or word windows in which to try a scoped clause, near its trigger hits."""
        anchors = self.anchor_positions(node.child, lo, hi)
        wins: dict[Hit, None] = {}
        if node.kind == "sentence":
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
        trig = self.c.triggers(node)
        if trig is None:
            return None
        out = []
        for key in trig:
            hits = self.terms.get(key[1], ()) if key[0] == "t" else self.entity_hits(key[1])
            out.extend(h[0] for h in hits if lo <= h[0] < hi)
        return out

    def _proximity(self, node: Proximity, lo: int, hi: int, out: list | None) -> bool:
        positions: list[tuple[int, int, Hit]] = []
        for i, word in enumerate(node.words):
            for h in self.terms.get(self.c.tid(word), ()):
                if h[0] >= lo and h[1] <= hi:
                    positions.append((self.nz.word_index(h[0]), i, h))
        positions.sort()
        need, width = len(node.words), len(node.words) - 1 + node.slop
        found = False
        for k, (w, _i, _h) in enumerate(positions):
            window = [p for p in positions[k:] if p[0] - w <= width]
            if len({p[1] for p in window}) == need:
                found = True
                if out is None:
                    return True
                out.extend((h[0], h[1], str(node), None) for _w, _i, h in window)
        return found


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
        return Context(self._compiled, article_text(article), len(article.title) if article.title else 0)

    def match(self, article: Article) -> list[Match]:
        """Every enabled rule that fires on the article (title + text), with its evidence."""
        ctx = self.context(article)
        matches = []
        for i in self._compiled.candidates(ctx.keys):
            m = self._match_rule(self.rules[i], ctx)
            if m is not None:
                matches.append(m)
        return matches

    def match_rule(self, rule: Rule, article: Article) -> Match | None:
        """One rule alone (enabled or not): what `monitor rules test` uses for examples."""
        return self._match_rule(rule, self.context(article))

    def _match_rule(self, rule: Rule, ctx: Context) -> Match | None:
        ctx.scopes = []
        if not ctx.ev(rule.node, 0, len(ctx.nz.norm), None):
            return None
        evidence: list = []
        ctx.ev(rule.node, 0, len(ctx.nz.norm), evidence)
        log.debug("rule %s fired", rule.id)
        return build_match(rule, ctx, evidence, list(dict.fromkeys(ctx.scopes)))

    def explain(self, article: Article) -> list[Explanation]:
        """Every rule's verdict on the article, with hits in context, entities and the clause that failed."""
        ctx = self.context(article)
        everything = all_entities(ctx)
        out = []
        for rule in self.rules:
            m = self._match_rule(rule, ctx)
            failed = None if m else why_not(ctx, rule.node, 0, len(ctx.nz.norm))
            out.append(Explanation(rule_id=rule.id, title=rule.title, fired=m is not None and rule.enabled,
                                   enabled=rule.enabled, hits=tuple(hits_in_context(ctx, rule.node)),
                                   entities=everything, failed=failed, match=m))
        return out


def all_entities(ctx: Context) -> dict[str, list[str]]:
    for kind in PATTERN_KINDS:
        ctx.entity_hits(kind)
    return {
        kind: list(dict.fromkeys(v for _s, _e, v in sorted(hits)))
        for kind, hits in sorted(ctx.entities.items())
        if hits and ctx.c.gazetteer.reportable(kind)
    }
