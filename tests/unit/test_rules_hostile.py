"""Matching cannot be made slow by the text: every query shape is linear in its hits, and an article has a deadline."""

from __future__ import annotations

import pytest

from monitor.errors import PermanentError
from monitor.models import Article
from monitor.rules import load_rules
from monitor.rules.matcher import MatchTimeout

QUERIES = {
    "slop": '"tanks ukraine"~5',
    "near": "tanks NEAR/5 ukraine",
    "sentence": "sentence:(tanks AND ukraine AND NOT russia)",
    "wildcard": "sentence:(tank* AND ukrain*)",
}


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rules")
    (folder / "r.yaml").write_text("rules:\n" + "".join(
        f"  - id: {rid}\n    query: '{q}'\n" for rid, q in QUERIES.items()), encoding="utf-8")
    return load_rules(folder)


def work(pack, n: int) -> int:
    """How many evaluation steps matching counts on an article of n "tanks" and then "ukraine"."""
    ctx = pack.context(Article(url="t:", text="tanks " * n + "ukraine"))
    for rule in pack.rules:
        pack._match_rule(rule, ctx)
    return ctx._ticks


def test_proximity_and_scopes_cost_grows_linearly_with_the_hits(pack):
    small, large = work(pack, 4000), work(pack, 16000)
    assert small > 0
    assert large <= 4.5 * small  # 4x the hits, about 4x the work (the old pairwise scan did 16x)


def test_every_query_shape_fires_on_the_hostile_article(pack):
    fired = {m.rule_id for m in pack.match(Article(url="t:", text="tanks " * 20000 + "ukraine"))}
    assert fired == set(QUERIES)


def test_an_article_that_runs_past_its_deadline_is_a_permanent_failure(pack):
    article = Article(url="t:", text="tanks. " * 40000 + "ukraine")
    with pytest.raises(MatchTimeout) as err:
        pack.match(article, timeout=1e-9)
    assert isinstance(err.value, PermanentError) and "deadline" in str(err.value)
