"""The query language on real rule files: Boolean logic, phrases, wildcards, proximity, scopes, entities, regex."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.errors import RuleError
from monitor.models import Article
from monitor.rules import load_rules

ENTITIES = """
state:
  entries:
    - Ukraine: [Kyiv, Kiev, Ukrainian]
    - United States: [Washington, American]
    - Germany: [Berlin, German]
weapon:
  entries:
    - Leopard 2: [Leopard 2A6, Leo 2]
    - name: Patriot
      exact_case: [Patriot]
hedge:
  report: false
  entries: [may, could, is considering]
"""


def ruleset(tmp_path: Path, query: str, **extra: str):
    folder = tmp_path / "rules"
    (folder / "entities").mkdir(parents=True, exist_ok=True)
    (folder / "entities" / "e.yaml").write_text(ENTITIES)
    body = f"rules:\n  - id: r\n    query: {query!r}\n" if "\n" not in query else (
        "rules:\n  - id: r\n    query: |\n" + textwrap.indent(query, "      ") + "\n")
    for key, value in extra.items():
        body += f"    {key}: {value}\n"
    (folder / "r.yaml").write_text(body)
    return load_rules(folder)


def fires(tmp_path: Path, query: str, text: str, title: str = "") -> bool:
    return bool(ruleset(tmp_path, query).match(Article(url="u", title=title, text=text)))


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("tank AND Ukraine", "A tank for Ukraine.", True),
        ("tank AND Ukraine", "A tank for Poland.", False),
        ("tank OR jet", "A jet.", True),
        ("tank NOT jet", "A tank and a jet.", False),
        ("tank AND NOT (jet OR plane)", "A tank and a plane.", False),
        ("tank Ukraine", "A tank for Ukraine.", True),  # implicit operator is AND
        ("tank Ukraine", "A tank.", False),
        ('"Leopard 2"', "Ukraine gets Leopard-2 tanks", True),
        ("Leopard-2", "Ukraine gets LEOPARD 2 tanks", True),
        ("tank", "The tankers left.", False),  # whole words only
        ("pledg*", "Berlin pledged tanks", True),
        ("pledg*", "A pledge.", True),
        ("pledg*", "Unpledged tanks", False),  # a prefix starts a word
        ('"tanks Ukraine"~4', "tanks were sent quickly to Ukraine", True),  # 4 words between
        ('"tanks Ukraine"~3', "tanks were sent quickly to Ukraine", False),
        ('"Ukraine tanks"~4', "tanks were sent quickly to Ukraine", True),  # any order
        ("tanks NEAR/2 Ukraine", "tanks for Ukraine", True),
        ("tanks NEAR/2 Ukraine", "tanks were sent quickly to Ukraine", False),
        ("tanks SENT Ukraine", "Tanks went. Ukraine waits.", False),
        ("tanks SENT/2 Ukraine", "Tanks went. Ukraine waits.", True),
        ("sentence:(tanks AND Ukraine)", "Tanks went to Ukraine. Rain.", True),
        ("sentences2:(tanks AND Ukraine)", "Tanks went. Rain. Ukraine waits.", False),
        ("sentence:(tanks AND NOT may)", "Tanks may go. Tanks went.", True),
        ("sentence:(tanks AND NOT may)", "Tanks may go. Planes went.", False),
        ("near3:(tanks AND Ukraine AND NOT may)", "tanks for Ukraine", True),
        ("title:Ukraine", "for Ukraine", False),
        ("title:tanks AND text:Ukraine", "for Ukraine", True),
        ("@state", "Talks in Kiev", True),
        ("@state:Ukraine", "Talks in Kiev", True),
        ("@state:Germany", "Talks in Kiev", False),
        ('@state:"United States"', "Talks in Washington", True),
        ("entity:weapon", "More Leo 2 tanks", True),
        ("@weapon", "Patriot missiles", True),
        ("@weapon", "patriotic patriot songs", False),  # exact-case alias
        ("@weapon", "Two Leopard 2s arrived", True),  # plural of an alias
        ("/[0-9]+ tanks/", "It sent 14 tanks", True),
        ("/[0-9]+ tanks/", "It sent some tanks", False),
        ("@money", "a package worth $13.1 billion", True),
        ("@money AND @quantity", "14 Leopard 2 battle tanks worth EUR 100m", True),
        ("@quantity", "the Leopard 2 tanks", False),
    ],
)
def test_query_semantics(tmp_path, query, text, expected):
    assert fires(tmp_path, query, text, title="Tanks news" if query.startswith("title:") else "") is expected


@pytest.mark.parametrize(
    ("query", "token", "message"),
    [
        ("tank AND AND Ukraine", "AND", "unexpected"),
        ("tank AND (Ukraine", "", "ends too early"),
        ("@nosuchkind", "@nosuchkind", "unknown entity kind"),
        ("colour:red", "colour:red", "unknown field"),
        ("a*", "a*", "at least 3"),
        ("ta?k", "ta?k", "trailing"),
        ("/(unclosed/", "/(unclosed/", "re2"),
        ("tank~2", "tank~2", "not supported"),
        ("tanks NEAR/5", "NEAR/5", "term on each side"),
    ],
)
def test_query_errors_name_file_line_column_and_token(tmp_path, query, token, message):
    with pytest.raises(RuleError) as info:
        ruleset(tmp_path, query)
    (problem,) = info.value.problems
    assert problem.startswith(str(tmp_path / "rules" / "r.yaml") + ":3:") or problem.startswith("rules")
    assert message in problem
    if token:
        assert repr(token) in problem


def test_query_error_column_points_at_the_token_in_a_block_query(tmp_path):
    with pytest.raises(RuleError) as info:
        ruleset(tmp_path, "tank\nAND Ukraine\nAND AND jet")
    (problem,) = info.value.problems
    path, line, col, _rest = problem.split(":", 3)
    assert (int(line), int(col)) == (6, 11)  # 3rd query line (file line 6), the second AND
    assert "'AND'" in problem


def test_match_carries_terms_snippet_and_entities(tmp_path):
    rs = ruleset(tmp_path, "sentence:(@state AND @weapon)")
    (m,) = rs.match(Article(url="u", title="News", text="Rain in Oslo. Kiev will get Leopard-2A6 tanks. Sun."))
    assert m.rule_id == "r"
    assert m.terms == ("Kiev", "Leopard-2A6")
    assert m.entities == {"state": ["Ukraine"], "weapon": ["Leopard 2"]}
    assert m.snippet == "**Kiev** will get **Leopard-2A6** tanks."


def test_disabled_rule_does_not_fire(tmp_path):
    rs = ruleset(tmp_path, "tank", enabled="false")
    assert rs.match(Article(url="u", text="A tank.")) == []
    assert rs.match_rule(rs.rules[0], Article(url="u", text="A tank.")) is not None


@pytest.mark.parametrize(
    "text",
    ["", "   ", "...!!!???", "消息 Ukraine 消息", "\x00\x01 tank \x1f", "a" * 100_000, "Ü" * 50 + " tank", "ß tank ß"],
)
def test_odd_text_never_crashes_the_matcher(tmp_path, text):
    rs = ruleset(tmp_path, "sentence:(tank AND NOT may) OR @money OR /x+/ OR \"tank Ukraine\"~3")
    matches = rs.match(Article(url="u", title=text[:10], text=text))
    assert all(m.rule_id == "r" for m in matches)
    assert len(rs.explain(Article(url="u", text=text))) == 1


def test_non_latin_and_accented_terms_match(tmp_path):
    assert fires(tmp_path, "Zürich AND 消息", "Talks in ZURICH. 消息 said.")


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("tank AND jet", "jet not found"),
        ("tank AND NOT @state", "excluded by NOT @state: found 'Kiev'"),
        ("sentence:(tank AND boat)", "no sentence satisfies"),
        ("near2:(tank AND Kiev)", "no window of 2 words satisfies"),
        ("title:tank", "in title: tank not found"),
        ('"tank Kiev"~1', "not found"),
        ("tank AND (jet OR plane)", "none of (jet OR plane) found"),
    ],
)
def test_explanation_names_the_failed_clause(tmp_path, query, says):
    rs = ruleset(tmp_path, query)
    (ex,) = rs.explain(Article(url="u", title="News", text="A tank. Later, far away from it, in Kiev a boat."))
    assert not ex.fired and ex.match is None
    assert says in ex.failed


def test_a_paragraph_scope_judges_one_paragraph(tmp_path):
    from monitor.models import Article
    from monitor.rules import load_rules

    (tmp_path / "r.yaml").write_text("rules:\n  - id: p\n    query: 'paragraph:(tanks AND Ukraine AND NOT maybe)'\n")
    pack = load_rules(tmp_path)
    fired = lambda text: bool(pack.match(Article(url="t:", text=text)))  # noqa: E731
    assert fired("Germany sends tanks. Ukraine is glad.\n\nOther news.")
    assert not fired("Germany sends tanks.\n\nUkraine is glad.")
    assert not fired("Germany sends tanks. Maybe Ukraine is glad.\n\nOther news.")
