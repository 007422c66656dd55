"""`monitor rules eval`: precision, recall, slots and misses on labelled JSON lines; the pledge pack's eval gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.errors import RuleError
from monitor.rules import load_rules
from monitor.rules.evaluate import evaluate, read_labelled, render, systems_agree

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "tests" / "data" / "pledge-dev" / "dev.jsonl"

# The pack's figures on the dev set (raise them when the pack improves; never lower them without saying why in
# the commit): measured with `monitor rules eval tests/data/pledge-dev/dev.jsonl --rule arms-pledge`.
GATE = {"tp": 25, "fp": 2, "slots": {"donors": 25, "recipient": 24, "systems": 24, "value": 21}}


MULTI = ROOT / "tests" / "data" / "pledge-multi" / "constructed.jsonl"
# The pack's figures on the constructed sentences in thirteen languages (a development set, not real articles; see
# its README): `monitor rules eval tests/data/pledge-multi/constructed.jsonl --rule arms-pledge`. The one false
# positive: "The European Union has promised to deliver one million shells" closing an article about an appeal.
MULTI_GATE = {"tp": 115, "fp": 1, "slots": {"donors": 115, "recipient": 115, "systems": 115, "value": 115}}


@pytest.fixture(scope="module")
def dev_report(shipped_rules):
    return evaluate(shipped_rules, "arms-pledge", read_labelled(DEV))


def test_eval_gate_the_pledge_pack_keeps_its_figures_on_the_dev_set(dev_report):
    r = dev_report
    assert (r.tp + r.fn, r.skipped) == (27, 2)  # the set itself: 27 pledges, 2 unsure
    assert r.tp >= GATE["tp"] and r.fp <= GATE["fp"], render(r)
    assert r.precision >= 0.90 and r.recall >= 0.85  # the targets
    slots = r.slot_accuracy()
    for slot, pinned in GATE["slots"].items():
        right, judged = slots[slot]
        assert right >= pinned, f"{slot}: {right}/{judged} right, pinned at {pinned}\n" + render(r)
        assert right / judged >= 0.80


def test_eval_gate_the_pledge_pack_keeps_its_figures_in_thirteen_languages(shipped_rules):
    records = read_labelled(MULTI)
    r = evaluate(shipped_rules, "arms-pledge", records)
    assert (r.tp + r.fn, r.skipped) == (115, 1) and len({x.language for x in records}) == 13
    assert r.tp >= MULTI_GATE["tp"] and r.fp <= MULTI_GATE["fp"], render(r)
    slots = r.slot_accuracy()
    for slot, pinned in MULTI_GATE["slots"].items():
        assert slots[slot][0] >= pinned, f"{slot}: {slots[slot]}, pinned at {pinned}\n" + render(r)


def test_every_language_block_at_once_keeps_the_dev_figures(shipped_rules, monkeypatch):
    # an article whose language is not known gets every block at once; the other languages' short words must not
    # judge English text then (Swedish "be", ask, made "that will be coming" an appeal)
    import dataclasses

    from monitor.rules import evaluate as evaluation

    known = evaluation.article_of
    monkeypatch.setattr(evaluation, "article_of", lambda record: dataclasses.replace(known(record), language=""))
    r = evaluate(shipped_rules, "arms-pledge", read_labelled(DEV))
    assert r.tp >= GATE["tp"] and r.fp <= GATE["fp"], render(r)
    slots = r.slot_accuracy()
    assert all(slots[slot][0] >= pinned for slot, pinned in GATE["slots"].items()), slots


def test_the_report_names_each_miss_with_the_sentence_that_decided_it(dev_report):
    text = render(dev_report)
    assert "precision 0.9" in text and "slots on true positives: donors" in text
    assert "false positives by reason:" in text and "missed (" in text
    fn = next(o for o in dev_report.outcomes if o.gold and not o.predicted)
    assert fn.decided_by and fn.record.id in text


def write(tmp_path: Path, *records: dict) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "r.yaml").write_text(
        "rules:\n  - id: tanks\n    query: 'sentence:(@state AND tanks)'\n"
        "    fields:\n      donors: {entity: state}\n", encoding="utf-8")
    (folder / "entities").mkdir()
    (folder / "entities" / "s.yaml").write_text("state:\n  entries: [Germany, Ukraine]\n", encoding="utf-8")
    return folder


def test_counts_and_slots_on_a_small_set(tmp_path):
    path = write(tmp_path,
                 {"id": "a", "title": "", "text": "Germany sends tanks.", "label": "pledge", "donors": ["Germany"]},
                 {"id": "b", "title": "", "text": "Ukraine wants tanks.", "label": "not", "reason": "appeal"},
                 {"id": "c", "title": "", "text": "Nothing here.", "label": "pledge", "donors": ["Germany"],
                  "evidence": "Nothing here."},
                 {"id": "d", "title": "Maybe", "text": "", "label": "unsure"})
    report = evaluate(load_rules(rules(tmp_path)), "tanks", read_labelled(path))
    assert (report.tp, report.fp, report.fn, report.skipped) == (1, 1, 1, 1)
    assert report.slot_accuracy()["donors"] == (1, 1)
    text = render(report)
    assert "FP [appeal] b" in text and "FN c" in text and '"Nothing here."' in text


def test_a_malformed_line_is_reported_with_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"label": "not", "text": "x"}\n{oops\n{"text": "no label"}\n', encoding="utf-8")
    with pytest.raises(RuleError) as err:
        read_labelled(path)
    assert f"{path}:2: not JSON" in str(err.value) and f"{path}:3: a record needs 'label'" in str(err.value)


def test_systems_agree_on_meaning_not_spelling():
    assert systems_agree(["Patriot"], ["Patriot missile battery"])
    assert systems_agree([], [])
    assert not systems_agree(["weapons"], ["howitzers"])
    assert not systems_agree([], ["HIMARS"])


def monitor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_cli_exits_1_below_the_minimums_and_prints_json_when_asked(tmp_path):
    ok = monitor("rules", "eval", str(DEV), "--rule", "arms-pledge", "--min-precision", "0.9", "--min-recall", "0.85")
    assert ok.returncode == 0, ok.stderr
    assert "precision" in ok.stdout and "recall" in ok.stdout
    low = monitor("rules", "eval", str(DEV), "--rule", "arms-pledge", "--min-precision", "0.999", "--json")
    assert low.returncode == 1 and "FAIL arms-pledge: precision" in low.stderr
    data = json.loads(low.stdout)
    assert data["rule"] == "arms-pledge" and data["tp"] >= GATE["tp"] and "donors" in data["slots"]
    unknown = monitor("rules", "eval", str(DEV), "--rule", "nope")
    assert unknown.returncode == 2 and "rule 'nope' is not in the rules" in unknown.stderr
    assert "Traceback" not in unknown.stderr
