"""`monitor rules eval`: how good a rule is on texts labelled by hand (precision, recall, slots, the misses).

Reads labelled JSON lines (the format of tests/data/pledge-dev/dev.jsonl, documented in docs/rules.md) and is pure.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import RuleError
from ..models import Article, Match
from .evidence import why_not
from .amounts import amounts
from .matcher import Rule, RuleSet
from .normalise import normalise_phrase

SLOTS = ("donors", "recipient", "systems", "value")
POSITIVE = "pledge"


@dataclass(frozen=True)
class Labelled:
    """One text labelled by hand: `label` is the positive label, "not" (with a `reason`) or "unsure"."""

    id: str
    title: str
    text: str
    label: str
    reason: str = ""
    date: str | None = None
    language: str = ""
    donors: tuple[str, ...] = ()
    recipient: str = ""
    systems: tuple[str, ...] = ()
    value: str = ""
    evidence: str = ""
    where: str = ""  # file:line


@dataclass
class Outcome:
    record: Labelled
    gold: bool
    predicted: bool
    match: Match | None
    slots: dict[str, bool] = field(default_factory=dict)  # slot -> right (true positives only)
    decided_by: str = ""  # the sentence (and reason) that decided a miss


@dataclass
class Report:
    rule_id: str
    positive: str
    outcomes: list[Outcome]
    skipped: int  # unsure records

    def count(self, gold: bool, predicted: bool) -> int:
        return sum(o.gold == gold and o.predicted == predicted for o in self.outcomes)

    @property
    def tp(self) -> int:
        return self.count(True, True)

    @property
    def fp(self) -> int:
        return self.count(False, True)

    @property
    def fn(self) -> int:
        return self.count(True, False)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def slot_accuracy(self) -> dict[str, tuple[int, int]]:
        """slot -> (right, judged) over true positives."""
        out: dict[str, tuple[int, int]] = {}
        for slot in SLOTS:
            judged = [o.slots[slot] for o in self.outcomes if o.gold and o.predicted and slot in o.slots]
            out[slot] = (sum(judged), len(judged))
        return out


def read_labelled(path: str | Path, *, positive: str = POSITIVE) -> list[Labelled]:
    """Labelled records of a JSON-lines file; every malformed line is reported as file:line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read labelled data: {exc}") from None
    records, problems = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not JSON: {exc.msg} (column {exc.colno})")
            continue
        record = _record(data, where, problems)
        if record is not None:
            records.append(record)
    if problems:
        raise RuleError(f"{path}: {len(problems)} problem(s) in the labelled data", problems)
    if not records:
        raise RuleError(f"{path}: no labelled records")
    return records


def _record(data: Any, where: str, problems: list[str]) -> Labelled | None:
    if not isinstance(data, dict):
        problems.append(f"{where}: a record is a JSON object")
        return None
    missing = [k for k in ("label",) if not isinstance(data.get(k), str) or not data[k]]
    if missing or not (data.get("title") or data.get("text")):
        problems.append(f"{where}: a record needs 'label' and 'title' or 'text'")
        return None

    def strings(key: str) -> tuple[str, ...]:
        value = data.get(key) or []
        return tuple(str(v) for v in (value if isinstance(value, list) else [value]) if str(v).strip())

    return Labelled(
        id=str(data.get("id") or where), title=str(data.get("title") or ""), text=str(data.get("text") or ""),
        label=data["label"], reason=str(data.get("reason") or ""), date=data.get("date") or None,
        language=str(data.get("language") or ""), donors=strings("donors"),
        recipient=str(data.get("recipient") or ""), systems=strings("systems"), value=str(data.get("value") or ""),
        evidence=str(data.get("evidence") or ""), where=where,
    )


def article_of(record: Labelled) -> Article:
    """A labelled record as the daemon would hand it to the rules (language detected as extraction does)."""
    from ..language import detect_language

    language = record.language or detect_language(f"{record.title}\n\n{record.text}")
    return Article(url=f"eval:{record.id}", title=record.title, text=record.text, published=record.date,
                   language=language)


def evaluate(ruleset: RuleSet, rule_id: str, records: Iterable[Labelled], *, positive: str = POSITIVE) -> Report:
    """Run one rule over labelled records; unsure records (neither positive nor "not") are skipped."""
    rule = _rule(ruleset, rule_id)
    outcomes, skipped = [], 0
    for record in records:
        if record.label not in (positive, "not"):
            skipped += 1
            continue
        article = article_of(record)
        match = ruleset.match_rule(rule, article)
        outcome = Outcome(record, record.label == positive, match is not None, match)
        if outcome.gold and outcome.predicted:
            outcome.slots = score_slots(ruleset, record, match)  # type: ignore[arg-type]
        if outcome.gold != outcome.predicted:
            outcome.decided_by = _decided_by(ruleset, rule, article, outcome)
        outcomes.append(outcome)
    return Report(rule_id, positive, outcomes, skipped)


def _rule(ruleset: RuleSet, rule_id: str) -> Rule:
    for rule in ruleset.rules:
        if rule.id == rule_id:
            return rule
    known = ", ".join(r.id for r in ruleset.rules)
    raise RuleError(f"rule {rule_id!r} is not in the rules (known: {known})")


# slots ----------------------------------------------------------------------------------------------------------
def score_slots(ruleset: RuleSet, record: Labelled, match: Match) -> dict[str, bool]:
    """Each slot right or wrong, comparing canonical states, amounts of money, and named systems."""
    fields = match.fields
    states = _state_names(ruleset)
    got_donors = {states(v) for v in _as_list(fields.get("donors"))}
    got_recipient = _as_list(fields.get("recipient"))
    return {
        "donors": got_donors == {states(v) for v in record.donors},
        "recipient": bool(got_recipient) and states(got_recipient[0]) == states(record.recipient),
        "systems": systems_agree(_as_list(fields.get("systems")), _system_names(ruleset, record.systems)),
        "value": amounts(" ".join(_as_list(fields.get("value")))) == amounts(record.value),
    }


def _system_names(ruleset: RuleSet, systems: tuple[str, ...]) -> list[str]:
    """The labelled systems as written, plus the canonical names the gazetteer gives them ("howitzers" is also
    "artillery"), so a rule that reports canonical names is compared on meaning."""
    out = list(systems)
    for phrase in systems:
        ctx = ruleset.context(Article(url="eval:", text=phrase))
        for kind in ("weapon", "materiel"):
            out.extend(v for _s, _e, v in ctx.entity_hits(kind))
    return list(dict.fromkeys(out))


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _state_names(ruleset: RuleSet):
    """A function from any name of a state (alias, adjective, capital) to its canonical name."""
    kind = ruleset.gazetteer.kinds.get("state")
    table: dict[str, str] = {}
    for ent in kind.entities if kind else ():
        for alias in (ent.canonical, *ent.aliases, *ent.exact_case):
            table.setdefault(normalise_phrase(alias), ent.canonical)
    return lambda name: table.get(normalise_phrase(name), normalise_phrase(name))


def systems_agree(got: list[str], gold: list[str]) -> bool:
    """Right when both are empty, or when every system found is one the label names and at least one is found.

    Names are compared on their words ("Patriot" agrees with "Patriot missile battery"; "HIMARS" with "munitions
    for HIMARS"), since labels quote the text's own phrases and the rule reports canonical names.
    """
    if not gold:
        return not got
    if not got:
        return False
    gold_words = [set(_words(g)) for g in gold]
    return all(any(set(_words(g)) & gw for gw in gold_words) for g in got)


_STOP = {"of", "and", "for", "the", "a", "an", "to", "in", "on", "with", "new", "more", "additional", "u", "s"}


def _words(text: str) -> list[str]:
    out = []
    for w in normalise_phrase(text).split():
        if w in _STOP:
            continue
        out.append(w[:-1] if len(w) > 3 and w.endswith("s") else w)  # systems ~ system
    return out


# misses -----------------------------------------------------------------------------------------------------------
def _decided_by(ruleset: RuleSet, rule: Rule, article: Article, outcome: Outcome) -> str:
    if outcome.match is not None:  # a false positive: the sentence that fired
        return outcome.match.snippet
    ctx = ruleset.context(article)
    window = _evidence_window(ctx, outcome.record.evidence)
    if window is None:
        return why_not(ctx, rule.node, 0, len(ctx.nz.norm)).splitlines()[0]
    a, b = window
    text = " ".join(ctx.nz.span_text(a, b).split())
    reason = why_not(ctx, rule.node, a, b)
    return f'"{_clip(text, 240)}"\n      ' + reason.replace("\n", "\n      ")


def _evidence_window(ctx: Any, evidence: str) -> tuple[int, int] | None:
    """The sentence(s) of the labelled evidence quote, in normalised positions."""
    quote = normalise_phrase(evidence)
    if not quote:
        return None
    at = ctx.nz.norm.find(" " + quote + " ")
    if at < 0:
        return None
    first, last = ctx.nz.sentence_at(at + 1), ctx.nz.sentence_at(at + len(quote))
    return first[0], last[1]


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# output -----------------------------------------------------------------------------------------------------------
def render(report: Report) -> str:
    """The report as an analyst reads it."""
    lines = [
        f"rule {report.rule_id}: {len(report.outcomes)} texts ({report.skipped} unsure skipped), "
        f"{report.tp + report.fn} {report.positive}",
        f"precision {report.precision:.3f}  recall {report.recall:.3f}  F1 {report.f1:.3f}   "
        f"(TP {report.tp}, FP {report.fp}, FN {report.fn}, TN {report.count(False, False)})",
    ]
    slots = report.slot_accuracy()
    lines.append("slots on true positives: " + ", ".join(
        f"{s} {r}/{n}" + (f" ({r / n:.2f})" if n else "") for s, (r, n) in slots.items()))
    fps = [o for o in report.outcomes if o.predicted and not o.gold]
    by_reason: dict[str, list[Outcome]] = defaultdict(list)
    for o in fps:
        by_reason[o.record.reason or "(no reason)"].append(o)
    if fps:
        lines.append("")
        lines.append("false positives by reason: " + ", ".join(f"{r} {len(v)}" for r, v in
                                                              sorted(by_reason.items(), key=lambda kv: -len(kv[1]))))
        for reason, items in sorted(by_reason.items()):
            for o in items:
                lines.append(f"  FP [{reason}] {o.record.id}  {_clip(o.record.title, 90)}")
                lines.append(f"      {_clip(o.decided_by, 400)}")
    fns = [o for o in report.outcomes if o.gold and not o.predicted]
    if fns:
        lines.append("")
        lines.append(f"missed ({len(fns)}):")
        for o in fns:
            lines.append(f"  FN {o.record.id}  {_clip(o.record.title, 90)}")
            lines.append(f"      {o.decided_by}")
    wrong = [o for o in report.outcomes if o.slots and not all(o.slots.values())]
    if wrong:
        lines.append("")
        lines.append("slots wrong on true positives:")
        for o in wrong:
            bad = [s for s, ok in o.slots.items() if not ok]
            got = {s: o.match.fields.get(s) for s in bad} if o.match else {}
            want = {s: getattr(o.record, s) for s in bad}
            lines.append(f"  {o.record.id}: " + "; ".join(f"{s}: got {_show(got[s])}, labelled {_show(want[s])}"
                                                          for s in bad))
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value in (None, "", [], ()):
        return "-"
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def as_json(report: Report) -> dict[str, Any]:
    slots = report.slot_accuracy()
    return {
        "rule": report.rule_id, "texts": len(report.outcomes), "unsure_skipped": report.skipped,
        "tp": report.tp, "fp": report.fp, "fn": report.fn, "tn": report.count(False, False),
        "precision": round(report.precision, 4), "recall": round(report.recall, 4), "f1": round(report.f1, 4),
        "slots": {s: {"right": r, "judged": n, "accuracy": round(r / n, 4) if n else None}
                  for s, (r, n) in slots.items()},
        "false_positives_by_reason": dict(Counter(o.record.reason or "" for o in report.outcomes
                                                  if o.predicted and not o.gold)),
        "misses": [
            {"id": o.record.id, "kind": "false positive" if o.predicted else "false negative",
             "reason": o.record.reason, "title": o.record.title, "decided_by": o.decided_by}
            for o in report.outcomes if o.gold != o.predicted
        ],
    }
