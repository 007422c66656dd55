"""The evidence's and the windows' fast paths give what the plain forms they replace give: hits sorted without a
key (`_outermost`), anchors as slices of an article's sorted starts."""

from __future__ import annotations

import random
from pathlib import Path

from monitor.rules.evaluate import article_of, read_labelled
from monitor.rules.evidence import _outermost, _outermost_slow
from monitor.rules.query import EntityRef, Term

ROOT = Path(__file__).resolve().parents[2]


def plain_outermost(evidence: list) -> list:
    """What build_match did before: the set sorted, then a stable sort by start and longest, then the filter."""
    out: list = []
    for hit in sorted(sorted(set(evidence)), key=lambda h: (h[0], -h[1])):
        if out and out[-1][0] <= hit[0] and hit[1] <= out[-1][1] and (hit[0], hit[1]) != (out[-1][0], out[-1][1]):
            continue
        out.append(hit)
    return out


def test_outermost_without_a_key_keeps_the_order_and_the_hits_of_the_plain_form(monkeypatch):
    import monitor.rules.evidence as evidence

    slow = []
    monkeypatch.setattr(evidence, "_outermost_slow", lambda ordered: slow.append(1) or _outermost_slow(ordered))
    rnd = random.Random(3)
    labels = [("@weapon", "Leopard 2"), ("@weapon", "Leopard"), ("@state", "Ukraine"), ("tanks", None),
              ("pledg*", None), ("@money", "EUR 5 million")]
    for _ in range(3000):
        hits = []
        for _ in range(rnd.randrange(0, 14)):
            s = rnd.randrange(0, 60)
            hits.append((s, s + rnd.randrange(1, 12), *rnd.choice(labels)))
        hits += rnd.sample(hits, min(len(hits), 2))  # repeated hits, as an OR's children give them
        assert _outermost(hits) == plain_outermost(hits), hits
    assert 0 < len(slow) < 3000  # both paths were taken


def test_anchors_as_slices_of_the_sorted_starts_are_the_hits_in_the_range(shipped_rules):
    """Every term of the shipped pack and every gazetteer kind, over random ranges of the pledge-dev texts."""
    ruleset = shipped_rules
    compiled = ruleset._compiled
    terms = {(t.text, t.prefix): t for rule in ruleset.rules for t in _terms(rule.node)}
    kinds = [k for k in ruleset.gazetteer.kinds]
    rnd = random.Random(4)
    checked = 0
    for record in read_labelled(ROOT / "tests" / "data" / "pledge-dev" / "dev.jsonl")[:60]:
        ctx = ruleset.context(article_of(record))
        n = len(ctx.nz.norm)
        for _ in range(8):
            lo = rnd.randrange(0, n)
            hi = rnd.randrange(lo, n + 1)
            for term in terms.values():
                plain = [h[0] for h in ctx.term_hits(compiled.tid(term)) if lo <= h[0] < hi]
                assert ctx.anchor_positions(term, lo, hi) == plain
                checked += bool(plain)
            for kind in kinds:
                plain = [h[0] for h in ctx.entity_hits(kind) if lo <= h[0] < hi]
                assert ctx.anchor_positions(EntityRef(kind=kind), lo, hi) == plain, kind
                checked += bool(plain)
    assert checked > 100  # the ranges held hits: the comparison is not between empty lists


def _terms(node):
    from monitor.rules.matcher import _terms as terms

    return [t for t in terms(node) if isinstance(t, Term)]
