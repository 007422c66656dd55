"""The shipped arms-pledge pack on the seeds, and the analyst tools (rules test / explain)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.models import Article
from monitor.rules.tools import render_explanation, run_rule_tests

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"


def seed(prefix: str) -> Article:
    (path,) = (ROOT / "seeds").glob(f"{prefix}_*.txt")
    return Article(url=path.as_uri(), text=path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pack(shipped_rules):
    return shipped_rules  # load_rules(RULES), compiled once per session (tests/conftest.py)


def test_seed_000_fires_the_pledge_rule_with_who_gives_what_to_whom(pack):
    matches = {m.rule_id: m for m in pack.match(seed("000"))}
    m = matches["arms-pledge"]
    assert m.severity == "high" and "analysts" in m.channels
    assert m.fields["recipient"] == "Ukraine"
    assert m.fields["donors"] == ["Denmark", "Netherlands"]
    assert m.fields["systems"] == ["Leopard 2"]
    assert m.fields["quantities"] == ["14 Leopard-2 battle tanks"]
    assert m.fields["value"] == "three-digit million euro sum"
    assert "**Leopard-2**" in m.snippet and "**Denmark**" in m.snippet
    assert "Leopard-2" in m.terms


def test_seed_004_does_not_fire_the_pledge_rule_but_the_watch_rule(pack):
    fired = {m.rule_id for m in pack.match(seed("004"))}
    assert "arms-pledge" not in fired
    assert "arms-transfer-watch" in fired


def test_pack_has_enough_examples_with_hard_negatives(pack):
    rule = next(r for r in pack.rules if r.id == "arms-pledge")
    assert sum(e.expect for e in rule.examples) >= 15
    assert sum(not e.expect for e in rule.examples) >= 15


def test_shipped_rules_pass_their_examples():
    ok, report = run_rule_tests(RULES)
    assert ok, report
    assert "0 failed" in report


def test_failing_example_gives_a_readable_diff(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - id: t\n    query: tank AND Ukraine\n    examples:\n"
        "      match: [A tank for Poland.]\n      no_match: [A tank for Ukraine.]\n"
    )
    ok, report = run_rule_tests(tmp_path)
    assert not ok
    assert "FAIL t: 0/2 examples" in report
    assert "expected MATCH, got no match" in report and "Ukraine not found" in report
    assert "expected NO MATCH, got a match" in report and "matched: tank, Ukraine" in report


def test_rule_test_on_a_broken_folder_lists_the_problems(tmp_path):
    (tmp_path / "r.yaml").write_text("rules:\n  - id: t\n    query: tank AND\n")
    ok, report = run_rule_tests(tmp_path)
    assert not ok and "r.yaml:3:" in report


def test_explanation_says_why_the_pledge_rule_did_not_fire_on_seed_004(pack):
    text = render_explanation(pack, seed("004"), color=False)
    assert "arms-pledge no match" in text
    assert "excluded by NOT" in text and "'probably'" in text
    assert "arms-transfer-watch FIRES" in text
    assert "\x1b[" not in text


def test_explanation_of_seed_000_shows_fields_and_colour_when_asked(pack):
    text = render_explanation(pack, seed("000"), color=True)
    assert "donors: Denmark, Netherlands" in text
    assert "\x1b[32mFIRES" in text


def test_a_state_quoted_as_source_is_not_a_donor(pack):
    text = "Iran has supplied Russia with hundreds of Shahed drones, U.S. officials said."
    (m,) = [m for m in pack.match(Article(url="u", text=text)) if m.rule_id == "arms-pledge"]
    assert m.fields["donors"] == ["Iran"] and m.fields["recipient"] == "Russia"
    assert m.fields["systems"] == ["Shahed"] and m.fields["quantities"] == ["hundreds of Shahed drones"]


def test_readme_explain_example_is_what_the_command_prints(pack):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("shows why it fires", 1)[1].split("```", 2)[1]
    shown = [line for line in block.strip("\n").splitlines() if line.strip() and line.strip() != "..."]
    path = ROOT / "seeds" / "000_1bb014922f46a2c7.txt"
    from monitor.config import Config
    from monitor.explain import load_article
    import asyncio

    article = asyncio.run(load_article(str(path), Config()))
    printed = render_explanation(pack, article, color=False).splitlines()
    import re

    version = re.compile(r"Rules version [0-9a-f]{12}")  # changes with every edit of a rule file
    printed = [version.sub("Rules version <v>", line) for line in printed]
    missing = [line for line in (version.sub("Rules version <v>", x) for x in shown) if line not in printed]
    assert not missing, "README's explain example differs from `monitor rules explain`:\n" + "\n".join(missing)


def test_a_total_so_far_after_the_pledge_is_not_its_value(pack):
    text = ("OSLO, March 14 (Reuters) - Norway will donate two NASAMS air defence systems to Ukraine, the defence "
            "ministry said on Thursday. \"Ukraine needs air defence more than ever,\" Defence Minister Bjorn Arild Gram "
            "said in a statement. Norway has so far given Ukraine military aid worth 20 billion crowns since Russia's "
            "invasion in February 2022.")
    (m,) = [m for m in pack.match(Article(url="u", text=text, language="en")) if m.rule_id == "arms-pledge"]
    assert m.fields["donors"] == ["Norway"] and m.fields["recipient"] == "Ukraine"
    assert m.fields["systems"] == ["NASAMS"] and m.fields["value"] is None, m.fields
