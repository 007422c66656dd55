"""From a rule's hits to what an analyst reads: matched terms, entities, structured fields, a snippet, and why not.

Pure functions over a matcher Context; used by RuleSet.match and RuleSet.explain.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..models import Match
from .entities import PATTERN_KINDS
from .normalise import fold_char, normalise_phrase
from .query import And, EntityRef, Node, Not, Or, Proximity, Regex, Scope, Term, parse_query

SNIPPET_MAX = 420
MAX_TERMS = 25


@dataclass(frozen=True)
class Explanation:
    """One rule's verdict on one article and the reasons."""

    rule_id: str
    title: str
    fired: bool
    enabled: bool = True
    hits: tuple[tuple[str, str], ...] = ()  # (what the rule looked for, matched text in context)
    entities: dict[str, list[str]] = field(default_factory=dict)  # every reportable entity in the article
    failed: str | None = None  # the clause that failed, with the closest sentences for scoped clauses
    match: Match | None = None


def innermost(scopes: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """The deepest windows in which the rule's scoped clauses held: in `sentences3:(sentence:(...) AND ...)` the
    sentence, not the three around it."""
    if not scopes:
        return []
    deepest = max(d for _a, _b, d in scopes)
    return list(dict.fromkeys((a, b) for a, b, d in scopes if d == deepest))


def build_match(rule: Any, ctx: Any, evidence: list, scopes: list) -> Match | None:
    """The Match of a rule that fired (terms as written in the text, entities, fields, snippet); None when a field
    the rule requires has no value."""
    evidence = _outermost(evidence)
    memo = ctx.evidence_memo
    if scopes:
        key = ("innermost", *scopes)  # matches on an article often share their windows (a shared clause's)
        windows = memo.get(key)
        if windows is None:
            windows = memo[key] = innermost(scopes)  # (read, never changed, by what follows)
    else:
        windows = list(dict.fromkeys(map(_sentence_finder(ctx), [h[0] for h in evidence])))
    if len(windows) > 1:  # (one window needs no ranking, nor the article's dates)
        windows = _ranked(ctx, [h[0] for h in evidence], windows)  # (evidence is in order of start)
    fields = extract_fields(rule.fields, ctx, windows) if rule.fields else {}
    missing = [name for name, spec in rule.fields.items() if spec.required and fields.get(name) in (None, [])]
    if missing:
        ctx.missing_fields = missing  # for explain: the clauses held, but a required field found no value
        return None
    facts = memo.get("hits") or _hit_facts(ctx)
    terms, own = [], []
    for hit in evidence:
        known = facts.get(hit)
        if known is None:
            known = _learn(ctx, hit, facts)
        terms.append(known[0])
        if known[1] is not None:
            own.append(known[1])
    terms = list(dict.fromkeys(terms))
    entities = _entities(ctx, tuple(own), windows)
    return Match(
        rule_id=rule.id,
        rule_title=rule.title,
        severity=rule.severity,
        channels=rule.channels,
        terms=tuple(terms[:MAX_TERMS]),
        entities=entities,
        snippet=snippet(ctx, evidence, windows),
        fields=fields,
    )


def _start_longest(hit: tuple) -> tuple:
    return (hit[0], -hit[1])


def _outermost(evidence: list) -> list:
    """Distinct hits in order of start (the longer first, then by label and value), without those lying inside a
    longer hit ("tanks" inside "battle tanks"). Sorted without a key: unless two hits start alike but end apart (see
    _outermost_slow), that order is the same."""
    ordered = sorted(set(evidence))
    out: list = []
    prev = None
    for hit in ordered:
        if prev is not None and hit[0] == prev[0] and hit[1] != prev[1]:
            return _outermost_slow(ordered)
        prev = hit
        if out:
            last = out[-1]
            if last[0] <= hit[0] and hit[1] <= last[1] and (hit[0] != last[0] or hit[1] != last[1]):
                continue
        out.append(hit)
    return out


def _outermost_slow(ordered: list) -> list:
    """_outermost for hits of which two start alike: the longer first (a stable sort of the sorted hits)."""
    out: list = []
    for hit in sorted(ordered, key=_start_longest):
        if out and out[-1][0] <= hit[0] and hit[1] <= out[-1][1] and (hit[0], hit[1]) != (out[-1][0], out[-1][1]):
            continue
        out.append(hit)
    return out


def _sentence_finder(ctx: Any):
    """nz.sentence_at, remembered per position once the whole text is segmented (then it is a pure lookup; before,
    each call may find the sentence locally and counts towards the switch to segmenting, so it is left as it is)."""
    nz = ctx.nz
    if nz._sents is None:
        return nz.sentence_at
    memo = ctx.evidence_memo
    found = memo.get("sentence at")
    if found is None:
        found = memo["sentence at"] = {}

    def at(pos: int) -> tuple[int, int]:
        sentence = found.get(pos)
        if sentence is None:
            sentence = found[pos] = nz.sentence_at(pos)
        return sentence
    return at


def _hit_facts(ctx: Any) -> dict:
    """Per article, per hit: its text as written, and (kind, value) if it is a reportable entity's hit, else None:
    matches on an article share most of their hits."""
    found: dict = {}
    ctx.evidence_memo["hits"] = found
    return found


def _learn(ctx: Any, hit: tuple, facts: dict) -> tuple[str, tuple[str, str] | None]:
    s, e, label, canonical = hit
    reportable = canonical and label.startswith("@") and ctx.c.gazetteer.reportable(label[1:])
    known = facts[hit] = (" ".join(ctx.nz.span_text(s, e).split()), (label[1:], canonical) if reportable else None)
    return known


def _entities(ctx: Any, own: tuple, windows: list) -> dict[str, list[str]]:
    """The match's own entity hits (kind, value) and the reportable entities of its windows."""
    key = ("entities", own, *windows)  # matches on an article often share their entity hits and windows
    known = ctx.evidence_memo.get(key)
    if known is None:
        known = ctx.evidence_memo[key] = _entities_of(ctx, own, windows)
    return {k: list(v) for k, v in known.items()}


def _entities_of(ctx: Any, own: tuple, windows: list) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, canonical in own:
        out.setdefault(kind, []).append(canonical)
    if len(windows) == 1:
        for kind, values in _window_entities(ctx, windows[0]):
            out.setdefault(kind, []).extend(values)
    else:  # the windows' entities merged, kind by kind: matches on an article often share all their windows
        key = ("merged", *windows)
        ordered = ctx.evidence_memo.get(key)
        if ordered is None:
            merged: dict[str, list[str]] = {}
            for window in windows:
                for kind, values in _window_entities(ctx, window):
                    merged.setdefault(kind, []).extend(values)
            order = ctx.evidence_memo["kinds order"]
            ordered = ctx.evidence_memo[key] = [(kind, merged[kind]) for kind in sorted(merged, key=order.__getitem__)]
        for kind, values in ordered:
            out.setdefault(kind, []).extend(values)
    return {k: most_specific(v) for k, v in out.items() if v}


def _window_entities(ctx: Any, window: tuple[int, int]) -> list[tuple[str, list[str]]]:
    """The reportable entities inside one window, kind by kind, computed once per article and window: the matches
    on an article share their sentences."""
    memo = ctx.evidence_memo
    found = memo.get(("window", *window))
    if found is None:
        kinds = memo.get("kinds")
        if kinds is None:
            reportable = ctx.c.gazetteer.reportable
            every = ctx.all_entity_hits(patterns=False, only=reportable)  # gazetteer kinds, always sums, quantities:
            every.update({kind: ctx.entity_hits(kind) for kind in PATTERN_KINDS})  # the same for every rule, order
            kinds = memo["kinds"] = [(k, h) for k, h in every.items() if h and ctx.c.gazetteer.reportable(k)]
            memo["kinds order"] = {k: i for i, (k, _h) in enumerate(kinds)}
        a, b = window
        found = []
        for kind, hits in kinds:
            values = [v for _s, _e, v in hits_within(hits, a, b)]
            if values:
                found.append((kind, values))
        memo[("window", a, b)] = found
    return found


def most_specific(values: list[str]) -> list[str]:
    """Distinct values without those a more specific one extends: "Leopard" beside "Leopard 2"."""
    values = list(dict.fromkeys(values))
    if len(values) < 2:
        return values
    extended = {w[:i] for w in values for i, c in enumerate(w) if c == " "}  # every value's leading words
    return [v for v in values if v not in extended]


def _ranked(ctx: Any, starts: list[int], windows: list) -> list:
    """The windows best first: those that say "today" (today's news), then those holding the most evidence (`starts`,
    sorted); a stable sort. Whether a window says "today" is kept per article: matches share their windows."""
    memo = ctx.evidence_memo
    key = ("today", *windows)
    said = memo.get(key)
    if said is None:
        dates = ctx.entity_hits("date")
        said = memo[key] = [not any(v == "today" for _s, _e, v in hits_within(dates, a, b)) for a, b in windows]
    ranks = list(zip(said, [bisect_left(starts, a) - bisect_left(starts, b) for a, b in windows]))
    return [windows[i] for i in sorted(range(len(windows)), key=ranks.__getitem__)]


def hits_within(hits: list, a: int, b: int) -> list:
    """The hits (sorted by start) that lie inside [a, b); `(a,)` sorts before every hit that starts at a."""
    out = []
    for k in range(bisect_left(hits, (a,)), len(hits)):
        if hits[k][0] >= b:
            break
        if hits[k][1] <= b:
            out.append(hits[k])
    return out


def extract_fields(specs: dict, ctx: Any, windows: list) -> dict[str, Any]:
    """The fields of the first evidence window (windows come ranked, see _ranked) in which every required field has
    a value, all taken from that one window, so donor, recipient, systems and value describe one event; if no window
    fills them, the best window's (the rule then does not fire)."""
    first = None
    # then once more with the fallback looking across paragraphs (its value may differ, and so may those of the
    # fields that exclude it); only for specs with a fallback
    for wide in (False, True) if any(spec.fallback_any for spec in specs.values()) else (False,):
        for window in windows:
            fields = _window_fields(specs, ctx, window, wide)
            if all(fields[n] not in (None, []) for n, spec in specs.items() if spec.required):
                return fields
            first = first or fields
    return first if first is not None else _window_fields(specs, ctx, (0, 0))


def _window_fields(specs: dict, ctx: Any, window: tuple[int, int], wide: bool = False) -> dict[str, Any]:
    """Each field's values inside the window, or else in the `within` sentences after it, filtered by neighbouring
    words; a field with `fallback_any` left empty looks further (see _fallback)."""
    out: dict[str, Any] = {}
    ordered = sorted(specs.items(), key=lambda kv: bool(kv[1].exclude))  # fields others exclude go first
    for name, spec in ordered:
        taken = {v for other in spec.exclude for v in _as_list(out.get(other))}
        out[name] = _field(spec, ctx, [window], taken, filtered=True)
        if out[name] in (None, []) and spec.within:
            out[name] = _field(spec, ctx, _reach(ctx, [window], spec.within, spec.within_not), taken, filtered=True)
        if spec.fallback_any and out[name] in (None, []):
            out[name] = _fallback(spec, ctx, [window], taken, wide)
    return {name: out[name] for name in specs}


def _fallback(spec: Any, ctx: Any, best: list, taken: set, wide: bool = False) -> Any:
    """A value next to the given words in the window's paragraph (only the sentence before the window and the one
    after it: a long paragraph's later sentences are often background, "nach den USA der zweitgrößte Unterstützer")
    or in the title; else, in the window, a value that is not the subject (followed within four words by one of
    `subject_before`: "UK to send ...", or else the window's first: "Norwegen liefert der Ukraine ..."); else, of the
    values in the title and those sentences, the one the article names most often (what it is about). `wide`: only
    a value next to the given words in the sentences around the window, in other paragraphs too (see _around)."""
    if wide:
        return _field(spec, ctx, [_around(ctx, a, b, True) for a, b in best], taken, filtered=True)
    paragraphs = [_around(ctx, a, b) for a, b in best]
    title = [(0, ctx.title_end)]
    for reach in (paragraphs, title):
        found = _field(spec, ctx, reach, taken, filtered=True)
        if found not in (None, []):
            return found
    values = _field_values(spec.kinds(), spec, ctx, best, taken, False)
    subjects = _subjects(spec, ctx, best) if spec.subject_before else set()
    if any(v not in subjects for v in values):
        values = [v for v in values if v not in subjects]
    elif len(values) > 1:
        values = values[1:]
    if not values:
        near = _field_values(spec.kinds(), spec, ctx, title + paragraphs, taken, False)
        counts = {v: 0 for v in near}
        for kind in spec.kinds():
            for _s, _e, v in ctx.entity_hits(kind):
                if v in counts:
                    counts[v] += 1
        values = sorted(near, key=lambda v: -counts[v])
    if not values:
        return None if spec.single else []
    return values[0] if spec.single else values


def _around(ctx: Any, a: int, b: int, wide: bool = False) -> tuple[int, int]:
    """The window with the sentence before it and the one after it, in its paragraph (not further: a long
    paragraph's later sentences are often background, "nach den USA der zweitgrößte Unterstützer"); `wide`: in the
    paragraphs around too (news copy gives most sentences a paragraph of their own: "Germany has pledged a package
    ..." / "The announcement was made in Kyiv after talks with his Ukrainian counterpart")."""
    sents = ctx.nz.sentences()
    first, last = ctx.nz.sentence_index(a), ctx.nz.sentence_index(max(a, b - 1))
    lo, hi = sents[max(0, first - 1)][0], sents[min(len(sents) - 1, last + 1)][1]
    if wide:
        return lo, hi
    p, q = ctx.nz.paragraph_at(a)
    return max(p, lo), min(q, hi)


def _subjects(spec: Any, ctx: Any, windows: list) -> set[str]:
    """Values in the windows followed within four words by one of `subject_before` (phrases or "@kind")."""
    nz, out = ctx.nz, set()
    cues = _phrases(spec.subject_before)
    for a, b in windows:
        for kind in spec.kinds():
            for s, e, value in ctx.entity_hits(kind):
                if a <= s and e <= b:
                    w = nz.word_index(e)
                    reach = nz.word_span(w, w + 4)[1]
                    if any(_cue_within(ctx, cue, e, reach) for cue in cues):
                        out.add(value)
    return out


def _cue_within(ctx: Any, cue: str, start: int, stop: int) -> bool:
    """Does `cue` start between `start` and `stop`, with no clause punctuation in between ("Ukraine war: UK to")?"""
    if cue.startswith(" @"):
        at = next((s for s, _e, _v in ctx.entity_hits(cue.strip()[1:]) if start < s < stop), -1)
    else:
        at = ctx.nz.norm.find(cue, start)
        at = at + 1 if 0 <= at < stop else -1
    if at < 0:
        return False
    nz = ctx.nz
    between = nz.original[nz.to_orig(max(0, start - 1)) + 1 : nz.to_orig(at)]
    return not any(c in ",.;:!?()[]—–" for c in between)


def _field(spec: Any, ctx: Any, windows: list, taken: set, *, filtered: bool) -> Any:
    values = _field_values(spec.kinds(), spec, ctx, windows, taken, filtered)
    if not values and spec.fallback_kinds():
        values = _field_values(spec.fallback_kinds(), spec, ctx, windows, taken, filtered)
    return (values[0] if values else None) if spec.single else values


def _reach(ctx: Any, windows: list, within: int, skip: str | None = None) -> list:
    """The windows, each extended by the `within` sentences that follow it; with `skip` (a query: "@background"),
    those sentences are their own windows, after the window, and the ones where the query holds are left out."""
    if not within:
        return windows
    sents = ctx.nz.sentences()
    out = []
    for a, b in windows:
        after = ctx.nz.sentence_index(max(a, b - 1))
        last = min(len(sents) - 1, after + within)
        if not skip:
            out.append((a, max(b, sents[last][1])))
            continue
        node = _query(skip)
        out.append((a, b))
        out.extend((sa, sb) for sa, sb in sents[after + 1 : last + 1] if not ctx.ev(node, sa, sb, None))
    return out


@lru_cache(maxsize=256)
def _query(text: str) -> Node:
    """A field's query (`within_not`), parsed once; the loader has checked its kinds."""
    return parse_query(text, lambda _kind: True)


# An article between a cue word and the entity does not break "next to": "to the United States", "an die Ukraine",
# and the Italian and Portuguese "of the" ("l'invasione della Russia", "a invasão da Rússia").
ARTICLES = frozenset("the a an der die das den dem des ein eine einem einen le la les l de du un une het een det "
                     "den et en del della dello dell degli delle dei da do das dos".split())


def _field_values(kinds: list[str], spec: Any, ctx: Any, windows: list, taken: set, filtered: bool) -> list[str]:
    """Values of `kinds` in the windows, window by window (the best window first), filtered by neighbours."""
    before, after = (_phrases(spec.preceded_by), _phrases(spec.followed_by)) if filtered else ([], [])
    not_before, not_after = _phrases(spec.not_preceded_by), _phrases(spec.not_followed_by)
    values: list[str] = []
    pairs = filtered and ctx.language in spec.second_of_two
    weak = _phrases(spec.second_choice) if filtered else ()
    strong = _without(before, weak) if weak else before
    for a, b in windows:
        firsts, seconds = _pairs(ctx, kinds, a, b, before) if pairs else ((), ())
        later: list[str] = []  # values next to a second-choice phrase only
        for kind in kinds:
            for s, e, value in ctx.entity_hits(kind):
                if s < a or e > b or value in taken or s in firsts:
                    continue
                if _preceded(ctx, s, not_before) or _followed(ctx, e, not_after):
                    continue
                if (before or after) and s not in seconds and not (_preceded(ctx, s, strong)
                                                                   or _followed(ctx, e, after)):
                    if weak and _preceded(ctx, s, weak):
                        later.append(value)
                    continue
                values.append(value)
        values.extend(later)
    return most_specific(values)


def _pairs(ctx: Any, kinds: list[str], a: int, b: int, before: tuple[str, ...]) -> tuple[set[int], set[int]]:
    """Starts of values in [a, b) followed by another with no punctuation and at most an article or one of the
    `before` words between ("Deutschland der Ukraine", "Sverige Ukraina", "Nederland aan Oekraïne"; not "Nederland
    en België": "en" is also the Danish article), and starts of those others."""
    hits = sorted((s, e) for kind in kinds for s, e, _v in ctx.entity_hits(kind) if a <= s and e <= b)
    firsts, seconds = set(), set()
    nz = ctx.nz
    norm = nz.norm
    for (s1, e1), (s2, _e2) in zip(hits, hits[1:]):
        between = norm[e1 + 1 : s2 - 1] if s2 > e1 + 1 else ""
        if s2 <= e1 or " " in between or between in CONJUNCTIONS:
            continue
        if between and not (between in ARTICLES or f" {between} " in before):
            continue
        gap = nz.original[nz.to_orig(e1 - 1) + 1 : nz.to_orig(s2)]  # only spaces: not "Ukraine-Russland-Krieg"
        if gap.split() == between.split() and not gap[:1].isalnum():
            firsts.add(s1)
            seconds.add(s2)
    return firsts, seconds


# "and" in the languages that put the subject after the verb; "en" is Dutch "and" and the Danish article both
CONJUNCTIONS = frozenset("and und en og och i a и і та oraz".split())


def _clean_gap(ctx: Any, end: int) -> bool:
    """No punctuation in the original text at the word break at normalised `end` ("the Netherlands, media said")."""
    nz = ctx.nz
    a, b = nz.to_orig(max(0, end - 1)) + 1, nz.to_orig(min(len(nz.norm) - 1, end + 1))
    gap = nz.original[a:b]
    if gap.strip() == "." and nz.original[b : b + 1].islower():
        return True  # an abbreviation's dot: "U.S. officials"
    return not any(c in ",.;:!?()[]—–" for c in gap)


def _followed(ctx: Any, e: int, phrases: list[str]) -> bool:
    """Does one of `phrases` (or a hit of an "@kind" among them) start right after position `e`, or after a possessive
    "'s" there ("Russia's invasion")?"""
    norm = ctx.nz.norm
    if phrases and not _clean_gap(ctx, e):
        return False
    at = (e, e + 2) if norm.startswith(" s ", e) else (e,)  # where the phrase's leading space stands
    for p in phrases:
        if p.startswith(" @"):
            if any(s - 1 in at for s, _e, _v in ctx.entity_hits(p.strip()[1:])):
                return True
        elif any(_phrase_at(ctx, p, a) for a in at):
            return True
    return False


def _preceded(ctx: Any, s: int, phrases: list[str]) -> bool:
    """Does one of `phrases` (or a hit of an "@kind" among them) end right before position `s`, or before an
    article that does ("to the United States", "liefert der Ukraine")?"""
    if not phrases:
        return False
    norm = ctx.nz.norm
    if not _clean_gap(ctx, s - 1):
        return False
    starts = [s]
    cut = norm.rfind(" ", 0, s - 1)
    if norm[cut + 1 : s - 1] in ARTICLES:
        starts.append(cut + 1)
    for p in phrases:
        if p.startswith(" @"):
            ends = {e for _s, e, _v in ctx.entity_hits(p.strip()[1:])}
            if any(at - 1 in ends for at in starts):
                return True
        elif any(_phrase_at(ctx, p, at - len(p)) for at in starts):
            return True
    return False


def _phrase_at(ctx: Any, p: str, pos: int) -> bool:
    """Does phrase `p` (from _phrases: spaces around it) stand at normalised `pos`? A one-letter word kept as written
    (see _cue) must also be spelt so in the original text: "à", not "a"."""
    if len(p) == 3 and not p.isascii():
        return pos >= 0 and ctx.nz.norm.startswith(f" {fold_char(p[1])} ", pos) and \
            ctx.nz.span_text(pos + 1, pos + 2).lower() == p[1]
    return pos >= 0 and ctx.nz.norm.startswith(p, pos)


@lru_cache(maxsize=256)
def _without(phrases: tuple[str, ...], left_out: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p for p in phrases if p not in left_out)


def _phrases(phrases: list[str]) -> tuple[str, ...]:
    return _phrases_of(tuple(phrases))


@lru_cache(maxsize=1024)
def _phrases_of(phrases: tuple[str, ...]) -> tuple[str, ...]:
    """A field's neighbour phrases as matched, normalised once per list (a recipient's list holds ~90)."""
    return tuple(" " + (p.strip() if p.strip().startswith("@") else _cue(p)) + " " for p in phrases)


def _cue(phrase: str) -> str:
    """A neighbour phrase as matched: folded, except a one-letter word that its accent tells apart ("à", to, from
    "a", an article in Portuguese and Spanish or English "a"), kept as written and matched on the original text."""
    folded, word = normalise_phrase(phrase), phrase.strip().lower()
    return word if len(word) == 1 and folded != word and not word.isascii() else folded


def _as_list(value: Any) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def snippet(ctx: Any, evidence: list, windows: list) -> str:
    """The best window (windows come ranked: today's news, then the most evidence), matched text wrapped in **.
    Kept per article by window and the hits inside it: matches on an article share their sentences and most hits."""
    if not evidence or not windows:
        return ""
    best = windows[0]
    lo, hi = best
    key = ["snippet", best]  # the window and the hits inside it (evidence is in order of start)
    for k in range(bisect_left(evidence, (lo,)), len(evidence)):
        h = evidence[k]
        if h[0] >= hi:
            break
        if h[1] <= hi:
            key.append(h)
    memo = ctx.evidence_memo
    known = tuple(key)
    text = memo.get(known)
    if text is None:
        text = memo[known] = _snippet(ctx.nz, best, key[2:])
    return text


def _snippet(nz: Any, best: tuple[int, int], inside: list) -> str:
    a, b = nz.to_orig(best[0]), nz.to_orig(max(best[0], best[1] - 1)) + 1
    spans = sorted({_trim(nz.original, nz.to_orig(s), nz.to_orig(e - 1) + 1) for s, e, *_ in inside})
    parts, cursor = [], a
    for s, e in spans:
        if s < cursor:
            continue  # overlapping hits ("Leopard 2" inside "14 Leopard 2 tanks"): mark the first
        parts.append(nz.original[cursor:s])
        parts.append("**" + nz.original[s:e] + "**")
        cursor = e
    parts.append(nz.original[cursor:b])
    text = " ".join("".join(parts).split())  # str.split's whitespace is re's \s: as sub(r"\s+", " ") then strip
    return text if len(text) <= SNIPPET_MAX else text[: SNIPPET_MAX - 1].rstrip() + "…"


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    """A highlighted span without the spaces, brackets and quotes that folding merged into it ("($26 million")."""
    while a < b and (text[a].isspace() or text[a] in "([{\"'“‘«„"):
        a += 1
    while b > a and (text[b - 1].isspace() or text[b - 1] in ")]}\"'”’»,.;:"):
        b -= 1
    return a, b


# explanations ----------------------------------------------------------------------------------------------------
def why_not(ctx: Any, node: Node, lo: int, hi: int, depth: int = 0) -> str:
    """The first clause of `node` that is false in [lo, hi), said plainly."""
    if isinstance(node, And):
        for child in node.children:
            if not ctx.ev(child, lo, hi, None):
                return why_not(ctx, child, lo, hi, depth)
        return "all clauses hold"
    if isinstance(node, Not):
        found: list = []
        ctx.ev(node.child, lo, hi, found)
        shown = ", ".join(dict.fromkeys(repr(" ".join(ctx.nz.span_text(s, e).split())) for s, e, *_ in found[:5]))
        return f"excluded by NOT {node.child}: found {shown}"
    if isinstance(node, Scope) and node.kind in ("sentence", "near", "paragraph"):
        return _why_scope(ctx, node, lo, hi, depth)
    if isinstance(node, Scope):
        return f"in {node.kind}: " + why_not(ctx, node.child, *(_field_range(ctx, node, lo, hi)), depth)
    if isinstance(node, (Term, EntityRef, Regex, Proximity)):
        return f"{node} not found"
    return f"none of {node} found"


def _field_range(ctx: Any, node: Scope, lo: int, hi: int) -> tuple[int, int]:
    return (lo, min(hi, ctx.title_end)) if node.kind == "title" else (max(lo, ctx.title_end), hi)


def _why_scope(ctx: Any, node: Scope, lo: int, hi: int, depth: int) -> str:
    unit = {"sentence": "sentence", "paragraph": "paragraph"}.get(node.kind, f"window of {node.n} words")
    windows = ctx.windows(node, lo, hi)
    if not windows:
        return f"no {unit} has a starting hit for {node.child}"
    lines = [f"no {unit} satisfies {node.child}"]
    for a, b in windows[:4]:
        text = " ".join(ctx.nz.span_text(a, b).split())
        text = text if len(text) < 160 else text[:157] + "..."
        lines.append(f"  - \"{text}\"\n      {why_not(ctx, node.child, a, b, depth + 1)}")
    if len(windows) > 4:
        lines.append(f"  ... and {len(windows) - 4} more")
    return "\n".join(lines)


def hits_in_context(ctx: Any, node: Node) -> list[tuple[str, str]]:
    """Every positive term of `node` found anywhere in the article, with some context."""
    found: list = []
    _positive_hits(ctx, node, found)
    out, original, nz = [], ctx.nz.original, ctx.nz
    for s, e, label, _c in sorted(set(found))[:40]:
        a, b = nz.to_orig(s), nz.to_orig(e - 1) + 1
        left = re.sub(r"\s+", " ", original[max(0, a - 50) : a]).split(" ", 1)[-1]
        right = re.sub(r"\s+", " ", original[b : b + 50]).rsplit(" ", 1)[0]
        out.append((label, f"...{left}**{original[a:b]}**{right}..."))
    return out


def _positive_hits(ctx: Any, node: Node, out: list) -> None:
    if isinstance(node, (Term, EntityRef, Regex, Proximity)):
        ctx.ev(node, 0, len(ctx.nz.norm), out)
    elif isinstance(node, (And, Or)):
        for c in node.children:
            _positive_hits(ctx, c, out)
    elif isinstance(node, Scope):
        _positive_hits(ctx, node.child, out)
