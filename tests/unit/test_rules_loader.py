"""Loading rule folders: safe YAML, duplicate and unknown keys, every problem at once with file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import RuleError
from monitor.models import Article
from monitor.rules import load_rules

GOOD = """\
rules:
  - id: tanks
    title: Tanks
    severity: high
    channels: [analysts]
    query: tank AND Ukraine
    examples:
      match: [A tank for Ukraine.]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems(folder: Path) -> list[str]:
    with pytest.raises(RuleError) as info:
        load_rules(folder)
    return info.value.problems


def test_good_folder_loads_with_metadata_and_version(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    rs = load_rules(tmp_path)
    (rule,) = rs.rules
    assert (rule.id, rule.severity, rule.channels, rule.enabled) == ("tanks", "high", ("analysts",), True)
    assert len(rs.version) == 64 and rs.source_files[0].endswith("a.yaml")
    assert rule.source.endswith("a.yaml:2:5")


def test_version_changes_with_any_file(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    before = load_rules(tmp_path).version
    write(tmp_path, "entities/e.yaml", "state:\n  entries: [Ukraine]\n")
    assert load_rules(tmp_path).version != before


def test_duplicate_key_is_an_error_with_its_line(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("    severity: high\n", "    severity: high\n    severity: low\n"))
    (p,) = problems(tmp_path)
    assert p.endswith("a.yaml:5:5: duplicate key 'severity'")


def test_unknown_key_is_an_error_with_its_line(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("    severity: high\n", "    severty: high\n"))
    (p,) = problems(tmp_path)
    assert p.endswith("a.yaml:4:5: rule tanks: severty: unknown key, did you mean severity?")


def test_bad_value_names_the_line_of_the_key(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("severity: high", "severity: urgent"))
    (p,) = problems(tmp_path)
    assert "a.yaml:4:5: rule tanks: severity:" in p and "'critical'" in p


def test_all_problems_of_all_files_are_reported_at_once(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("tank AND Ukraine", "tank AND"))
    write(tmp_path, "b.yaml", GOOD.replace("id: tanks", "id: other").replace("enabled", "x") + "  - {id: tanks2}\n")
    write(tmp_path, "c.yaml", "rules: [\n")
    found = problems(tmp_path)
    assert len(found) == 3
    assert any("a.yaml:6:" in p and "ends too early" in p for p in found)
    assert any("b.yaml:9:5" in p and "needs a 'query'" in p for p in found)
    assert any("c.yaml:2:1: YAML syntax error" in p for p in found)


def test_duplicate_rule_id_across_files(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    (p,) = problems(tmp_path)
    assert "b.yaml:2:5: duplicate rule id 'tanks'" in p and "a.yaml:2:5" in p


def test_query_and_keyword_form_together_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "    all: [tank]\n")
    (p,) = problems(tmp_path)
    assert "either 'query' or the keyword lists" in p


def test_keyword_form_matches_phrases_on_word_boundaries(tmp_path):
    write(tmp_path, "a.yaml", "rules:\n  - id: k\n    all: [Ukraine]\n    any: [Leopard-2, Abrams]\n"
                              "    none: [video game]\n")
    rs = load_rules(tmp_path)
    assert rs.match(Article(url="u", text="UKRAINE gets Leopard 2 tanks"))
    assert not rs.match(Article(url="u", text="Ukraine gets Leopard 2 tanks in a video game"))
    assert not rs.match(Article(url="u", text="Ukrainex gets Leopard 2 tanks"))
    assert not rs.match(Article(url="u", text="Ukraine gets Leopard tanks"))


def test_entity_file_problems_are_located(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "entities/e.yaml", "state:\n  entries:\n    - Ukraine\n    - 42\n  colour: red\nmoney:\n"
                                       "  entries: [x]\n")
    found = problems(tmp_path)
    assert any("e.yaml:4:7" in p and "an entry is" in p for p in found)
    assert any("e.yaml:5:3" in p and "unknown key 'colour'" in p for p in found)
    assert any("e.yaml:6:1" in p and "built-in" in p for p in found)


def test_unknown_channel_is_reported_when_channels_are_known(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path, known_channels=["audit"])
    assert "a.yaml:5:16" in info.value.problems[0] and "'analysts'" in info.value.problems[0]


def test_python_tags_are_refused_by_the_safe_loader(tmp_path):
    write(tmp_path, "a.yaml", "rules: !!python/object/apply:os.system ['true']\n")
    (p,) = problems(tmp_path)
    assert "a.yaml:1:8: unsupported YAML tag" in p


def test_python_tag_on_a_scalar_is_refused(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("title: Tanks", "title: !!python/name:os.system ''"))
    (p,) = problems(tmp_path)
    assert "a.yaml:3:12: YAML syntax error" in p


def test_empty_or_missing_folder_is_an_error(tmp_path):
    assert "no rule files" in problems(tmp_path)[0]
    with pytest.raises(RuleError, match="not found"):
        load_rules(tmp_path / "missing")


def test_non_utf8_file_is_reported_not_crashed(tmp_path):
    (tmp_path / "a.yaml").write_bytes(b"rules: \xff\xfe\n")
    (p,) = problems(tmp_path)
    assert "a.yaml:1:1: cannot read" in p


def test_alias_bomb_is_refused_not_expanded(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    write(tmp_path, "a.yaml", "\n".join(lines) + "\nrules: *a8\n")
    (p,) = problems(tmp_path)
    assert "a.yaml:1:1" in p and "expands to more than" in p


def test_deeply_nested_query_is_an_error_not_a_crash(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("tank AND Ukraine", "(" * 3000 + "tank" + ")" * 3000))
    (p,) = problems(tmp_path)
    assert "a.yaml:6:" in p


def test_a_single_rule_file_loads_with_its_folders_entities(tmp_path):
    write(tmp_path, "entities/e.yaml", "state:\n  entries: [Ukraine]\n")
    write(tmp_path, "a.yaml", GOOD.replace("tank AND Ukraine", "tank AND @state"))
    write(tmp_path, "b.yaml", "rules: [")  # broken, but not asked for
    rs = load_rules(tmp_path / "a.yaml")
    assert [r.id for r in rs.rules] == ["tanks"]


def test_a_missing_example_file_fails_the_rule_tests_but_not_the_load(tmp_path):
    from monitor.rules.tools import run_rule_tests

    write(tmp_path, "r.yaml", GOOD.replace("match: [A tank for Ukraine.]",
                                           "match: [{file: ../gone/article.txt}]"))
    ruleset = load_rules(tmp_path)  # a deployed rules folder without its example files still runs
    assert [r.id for r in ruleset.rules] == ["tanks"]
    ok, report = run_rule_tests(tmp_path)
    assert not ok
    assert "r.yaml:8:" in report and "cannot read example file '../gone/article.txt'" in report


def test_unknown_key_deeper_in_a_rule_names_the_rule_and_the_nearest_key(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "    fields:\n      donors: {entity: state, preceeded_by: [by]}\n")
    (p,) = problems(tmp_path)
    assert p.endswith("a.yaml:10:31: rule tanks: fields.donors.preceeded_by: unknown key, did you mean preceded_by?")


def test_unclosed_quote_is_reported_where_the_quote_opens_not_at_the_end_of_the_file(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("query: tank AND Ukraine", 'query: "tank AND Ukraine'))
    (p,) = problems(tmp_path)
    assert "a.yaml:6:12: YAML syntax error: the quoted text that starts here is never closed" in p


def test_key_without_colon_is_reported_at_its_own_line(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("    title: Tanks\n", "    title Tanks\n"))
    (p,) = problems(tmp_path)
    assert "a.yaml:3:5: YAML syntax error: expected 'key: value' on this line" in p


def test_re2_error_is_one_line_with_the_pattern_and_says_there_is_no_look_around(tmp_path, capfd):
    write(tmp_path, "a.yaml", GOOD.replace("query: tank AND Ukraine", "query: 'tank AND /(?<!no )pledge/'"))
    (p,) = problems(tmp_path)
    assert "\n" not in p and "b'" not in p
    assert "a.yaml:6:22: rule tanks: invalid regex for re2: invalid perl operator: (?<!" in p
    assert "no look-around" in p and "(at '/(?<!no )pledge/')" in p
    assert capfd.readouterr().err == ""  # no C++ log line from RE2 on standard error


def test_second_choice_must_be_one_of_the_preceded_by_phrases(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "    fields:\n      r: {entity: state, preceded_by: [to], second_choice: [from]}\n")
    (p,) = problems(tmp_path)
    assert "a.yaml:10:" in p and "rule tanks: fields.r" in p and "second_choice names 'from'" in p, p


def test_within_not_is_a_query_and_its_errors_name_the_line_and_column(tmp_path):
    line = '      v: {entity: money, within: 1, within_not: "@money OR @backgrund"}'
    write(tmp_path, "a.yaml", GOOD + "    fields:\n" + line + "\n")
    (p,) = problems(tmp_path)
    assert p.split("a.yaml:", 1)[1].split(":", 2)[:2] == ["10", str(line.index("@backgrund") + 1)], p
    assert "rule tanks: fields.v.within_not:" in p and "unknown entity kind" in p and "'@backgrund'" in p


def test_within_not_skips_the_following_sentences_that_look_back(tmp_path):
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[2] / "rules" / "entities", tmp_path / "entities")
    field = "{entity: money, single: true, within: 2%s}"
    write(tmp_path, "r.yaml", "rules:\n" + "".join(
        f"  - id: {rid}\n    query: sentence:(@state AND @materiel)\n    fields:\n      value: {field % extra}\n"
        for rid, extra in (("plain", ""), ("skipping", ', within_not: "@background"'))))
    text = ("Norway will donate two air defence systems to Ukraine. They arrive in May. Norway has so far given "
            "Ukraine aid worth 20 billion crowns. The next package is worth 5 billion crowns.")
    matches = {m.rule_id: m for m in load_rules(tmp_path).match(Article(url="t:", text=text, language="en"))}
    assert matches["plain"].fields["value"] == "20 billion crowns"  # the total of the third sentence
    assert matches["skipping"].fields["value"] is None  # the total is skipped, the fourth sentence out of reach
