"""The rule index (the hit keys a rule needs before it is evaluated) and the clauses rules share (evaluated once per
article) never change a match.

Over the pledge-dev texts and the corpus pages, `RuleSet.match` (index, shared clauses) must equal
`match_every_rule` (every rule evaluated, each by itself) for the shipped pack and for generated rule sets shaped like
analysts' rules and like the matching benchmark's.
"""

from __future__ import annotations

import collections
import json
import random
import re
from functools import lru_cache
from pathlib import Path

import lxml.html
import pytest

from monitor.models import Article
from monitor.rules import load_rules
from monitor.rules.evaluate import article_of, read_labelled

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
PAGES = ROOT / "tests" / "data" / "corpus" / "pages"

# An analysts' desk: a watched name of its own per rule, judged with the cue lists and entities all rules share.
DESK = (
    'sentence:("{r}" AND (@commitment OR pledg*) AND NOT (@hedge OR @appeal))',
    '"{r}" AND (@weapon OR @materiel OR @arms) AND NOT (@sanction OR @combat)',
    'title:"{r}" OR sentence:("{r}" AND @state AND @money)',
    '"{r}" AND sentence:(@state AND NOT @question)',
    '"{r} {w}"~6 AND NOT @nonmilitary',
    '({r} OR {w}*) AND paragraph:(@official AND @weapon)',
    '"{r}" NEAR/8 ({w} OR @state) AND NOT text:{w2}',
    # clauses many rules share, written alike: evaluated once per article and range by `match` (Context._scope),
    # by each rule itself in `match_every_rule`; nested (evidence windows at their depth) and under NOT
    'sentences2:(sentence:(@state AND NOT @question) AND "{r}")',
    '"{r}" AND NOT sentence:(@hedge AND @state) AND sentence:(@state AND NOT @question)',
)
# Common words in every shape the language has, so that indexes of AND, OR, NOT and scopes are all exercised.
GENERIC = (
    "({w} OR {w2}) AND {w3} AND NOT {w4}",
    '"{w} {w2}"~5',
    "title:{w} OR ({w2} AND @weapon)",
    "sentence:(({w} OR {w2}) AND (@weapon OR @materiel) AND NOT @hedge)",
    "sentences2:(@state AND {w}) OR near5:({w2} AND @money)",
    "{w}* AND NOT ({w2} OR {w3})",
    "(@state:Ukraine OR {w}) AND ({w2} OR {w3} OR @quantity)",
)


def corpus_articles() -> list[Article]:
    """The corpus pages' title and visible text (lxml: enough text for the index, and fast)."""
    out = []
    for page in sorted(PAGES.rglob("*.html")):
        tree = lxml.html.fromstring(page.read_bytes())
        for bad in tree.xpath("//script|//style"):
            bad.drop_tree()
        title = " ".join((tree.findtext(".//title") or "").split())
        text = re.sub(r"[ \t]*\n\s*\n\s*", "\n\n", tree.text_content()).strip()
        out.append(Article(url=page.name, title=title, text=text))
    return out


@lru_cache(maxsize=1)
def articles() -> tuple[Article, ...]:
    labelled = [article_of(r) for r in read_labelled(ROOT / "tests" / "data" / "pledge-dev" / "dev.jsonl")]
    return tuple(labelled + corpus_articles())


def generated(tmp_path: Path, shapes: tuple[str, ...], n: int, seed: int) -> Path:
    """n rules of the shapes, their words drawn from the texts: common words and words of one or two texts."""
    counts = collections.Counter(w for a in articles() for w in set(re.findall(r"[a-z]{5,}", a.text.lower())))
    common = [w for w, c in counts.most_common(400)[40:]]
    rare = sorted(w for w, c in counts.items() if c <= 2)
    rnd = random.Random(seed)
    lines = ["rules:"]
    for i in range(n):
        w, w2, w3, w4 = rnd.sample(common, 4)
        query = shapes[i % len(shapes)].format(r=rnd.choice(rare), w=w, w2=w2, w3=w3, w4=w4)
        lines.append(f"  - id: gen-{i}\n    query: {json.dumps(query)}")
    folder = tmp_path / "rules"
    (folder / "entities").mkdir(parents=True)
    for path in (RULES / "entities").iterdir():
        (folder / "entities" / path.name).write_bytes(path.read_bytes())
    (folder / "generated.yaml").write_text("\n".join(lines) + "\n")
    return folder


def assert_index_changes_nothing(ruleset) -> int:
    fired = 0
    for article in articles():
        found = ruleset.match(article)
        assert found == ruleset.match_every_rule(article), article.url
        fired += len(found)
    return fired


def test_the_index_never_changes_a_match_of_the_shipped_pack(shipped_rules):
    assert assert_index_changes_nothing(shipped_rules) > 0


@pytest.mark.parametrize("shapes,seed", [(DESK, 1), (GENERIC, 2)], ids=["desk", "generic"])
def test_the_index_never_changes_a_match_of_generated_rules(tmp_path, shapes, seed):
    ruleset = load_rules(generated(tmp_path, shapes, 300, seed))
    assert assert_index_changes_nothing(ruleset) > 20  # the rules do fire: the comparison is not between nothings


def test_a_match_is_the_same_whichever_rules_ran_before_it_on_the_article(shipped_rules):
    """Each rule alone on a fresh context (`match_rule`, what `rules test` uses) gives what `match` gives with every
    rule on one shared context: entities (sums, quantities) must not depend on what an earlier rule computed."""
    ruleset = shipped_rules
    compared = 0
    for article in articles():
        together = ruleset.match(article)
        alone = [m for m in (ruleset.match_rule(rule, article) for rule in ruleset.rules if rule.enabled) if m]
        assert sorted(together, key=lambda m: m.rule_id) == sorted(alone, key=lambda m: m.rule_id), article.url
        compared += len(together)
    assert compared > 20  # the pack fires on enough of these texts for the comparison to mean something


@pytest.mark.parametrize("shapes,seed", [(DESK, 5), (GENERIC, 6)], ids=["desk", "generic"])
def test_a_generated_rules_match_is_the_same_alone_as_beside_the_others(tmp_path, shapes, seed):
    """The evidence memos of an article (a hit's text and entity, a window's entities and whether it says today,
    innermost windows, a snippet by window and hits, a position's sentence) are shared by every match on it: each
    rule alone on a fresh context must give the match it gives beside the others. (Generic seed 6: a quantity hit
    at the start of a sentence that opens with a quote, in eval:whdev-40526914a6, once got the sentence before it
    when no earlier rule had segmented the whole text.)"""
    ruleset = load_rules(generated(tmp_path, shapes, 300, seed))
    compared = 0
    for article in articles():
        together = ruleset.match(article)
        alone = [m for m in (ruleset.match_rule(rule, article) for rule in ruleset.rules if rule.enabled) if m]
        assert together == alone, article.url  # (both in rule order)
        compared += len(together)
    assert compared > 20


def test_a_hit_where_a_sentence_opens_with_punctuation_gets_its_sentence_whichever_rule_ran_first(tmp_path):
    """A money hit starts at "$", which folding squeezes with the line break before it into one space: the space
    where the segmented text starts the sentence. Alone, the rule's sentence was found locally (no rule had
    segmented the whole text), from that run's start, so it got the sentence before and none of its entities."""
    folder = generated(tmp_path, GENERIC, 0, 0)
    (folder / "generated.yaml").write_text(
        'rules:\n  - id: whole-text\n    query: "sentences2:(agenda AND drones)"\n'
        '  - id: money\n    query: "agenda AND @money"\n')
    ruleset = load_rules(folder)
    article = Article(url="t", title="", text="Here is the agenda:\n$5 million for drones and ammunition.\n\nThen.",
                      language="en")
    together = ruleset.match(article)
    alone = [ruleset.match_rule(rule, article) for rule in ruleset.rules]
    assert [m.rule_id for m in together] == ["whole-text", "money"]
    assert together == alone
    assert alone[1].entities["materiel"] == ["drones", "ammunition"]


@pytest.mark.parametrize("shapes,seed", [(DESK, 3), (GENERIC, 4)], ids=["desk", "generic"])
def test_a_terms_hits_are_those_of_its_keys_sorted(tmp_path, shapes, seed):
    """term_hits takes a term's one key's hits in the order the automaton gives them: the same list as every key's
    hits collected and sorted (the plain form)."""
    ruleset = load_rules(generated(tmp_path, shapes, 300, seed))
    compiled, seen = ruleset._compiled, 0
    for article in articles():
        ctx = ruleset.context(article)
        ctx.entity_hits("hedge")  # (the second pass too: a term's key may be in either automaton's article hits)
        norm = ctx.nz.norm
        for tid, keys in compiled.tid_keys.items():
            plain = sorted((end - compiled.key_len[kidx] + 2, norm.find(" ", end) if prefix else end)
                           for kidx, prefix in keys for end in ctx._ends.get(kidx, ()))
            assert ctx.term_hits(tid) == plain, (article.url, tid)
            seen += len(plain)
    assert seen > 1000
