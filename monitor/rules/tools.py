"""Cores of the analyst tools: `monitor rules test` (every rule's examples) and `monitor rules explain`.

They return text; the CLI prints it and chooses the exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import RuleError
from ..models import Article
from .evidence import Explanation
from .loader import load_rules
from .matcher import RuleSet

_COLORS = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2", "cyan": "36"}


def _paint(text: str, color: str, on: bool) -> str:
    return f"\x1b[{_COLORS[color]}m{text}\x1b[0m" if on else text


def run_rule_tests(path: str | Path, *, known_channels: Iterable[str] | None = None) -> tuple[bool, str]:
    """Run every rule's match / no_match examples. Returns (all passed, readable report).
    With `known_channels`, a rule naming any other channel is a load error, as in the daemon."""
    try:
        ruleset = load_rules(path, known_channels=known_channels)
    except RuleError as exc:
        return False, "rules do not load:\n" + "\n".join(f"  {p}" for p in exc.problems)
    lines: list[str] = []
    failures = total = 0
    for rule in ruleset.rules:
        if not rule.examples:
            lines.append(f"WARN {rule.id}: no examples")
            continue
        rule_fail = []
        for ex in rule.examples:
            total += 1
            if ex.error:
                failures += 1
                rule_fail.append(f"  ! {ex.error}")
                continue
            got = ruleset.match_rule(rule, example_article(ex))
            if (got is not None) != ex.expect:
                failures += 1
                rule_fail.append(_diff(ruleset, rule, ex, got))
        state = "FAIL" if rule_fail else "ok  "
        lines.append(f"{state} {rule.id}: {len(rule.examples) - len(rule_fail)}/{len(rule.examples)} examples "
                     f"({rule.source})")
        lines.extend(rule_fail)
    lines.append(f"{total - failures}/{total} examples passed, {failures} failed, {len(ruleset.rules)} rules")
    return failures == 0, "\n".join(lines)


def inflection_report(path: str | Path, *, language: str | None = None, kind: str | None = None,
                      unlike_only: bool = False) -> tuple[int, str]:
    """The forms each inflecting word of a rules folder's language blocks matches (from simplemma, see lemmas.py),
    by kind and block, for an analyst to check. A form that does not begin as the word does is shown apart: an
    irregular verb's ("senden": "sandte"), or a sign that simplemma took the word for another lemma (Portuguese
    "Irão", Iran, as a form of "ir", to go: "vai", "irá"); such an entry wants `literal: true`, `exact_case` or
    `except`. With `unlike_only`, only the words with such forms. Returns (how many words have them, the report)."""
    from .entities import inflecting_aliases, inflecting_words
    from .lemmas import inflections
    from .loader import load_gazetteer
    from .normalise import normalise_phrase

    gazetteer = load_gazetteer(path)
    forms = inflections({lang: words for lang, words in inflecting_words(gazetteer).items()
                         if language is None or lang == language})
    lines, flagged, seen = [], 0, set()
    for kind_name, ent, alias, word in inflecting_aliases(gazetteer):
        if (language and ent.language != language) or (kind and kind_name != kind) or \
                (kind_name, ent.language, word) in seen:
            continue
        seen.add((kind_name, ent.language, word))
        found = forms.get(ent.language, {}).get(word, ())
        start = normalise_phrase(word).split()[-1][:2]  # ("d'aide" is "d aide": its forms are "aide", "aides")
        unlike = [f for f in found if not f.split()[-1].startswith(start)]
        flagged += bool(unlike)
        if unlike_only and not unlike:
            continue
        like = [f for f in found if f not in unlike]
        line = f"{kind_name} {ent.language} {ent.canonical}: {word!r} -> {len(found)} forms: {', '.join(like)}"
        lines.append(line + (f"; UNLIKE THE WORD: {', '.join(unlike)}" if unlike else ""))
    lines.append(f"{len(seen)} words, {flagged} with forms unlike the word")
    return flagged, "\n".join(lines)


def example_article(ex) -> Article:
    """An example as the daemon would see it: its language detected, as extraction does."""
    from ..language import detect_language

    return Article(url="example:", title=ex.title, text=ex.text, language=detect_language(f"{ex.title}\n\n{ex.text}"))


def _diff(ruleset: RuleSet, rule, ex, got) -> str:
    text = " ".join(ex.text.split())
    text = text if len(text) <= 200 else text[:197] + "..."
    if ex.expect:
        ctx = ruleset.context(example_article(ex))
        from .evidence import why_not

        reason = why_not(ctx, rule.node, 0, len(ctx.nz.norm))
        return f"  - expected MATCH, got no match: {ex.label}\n      text: {text}\n      why: " + reason.replace(
            "\n", "\n      ")
    return (f"  + expected NO MATCH, got a match: {ex.label}\n      text: {text}\n"
            f"      matched: {', '.join(got.terms)}\n      snippet: {got.snippet}")


def render_explanation(ruleset: RuleSet, article: Article, *, color: bool) -> str:
    """Every rule's verdict on one article, for a terminal (ANSI colour when `color`)."""
    explanations = ruleset.explain(article)
    lines = [_paint(f"Article: {article.title or article.url}", "bold", color),
             f"Rules version {ruleset.version[:12]}, {len(ruleset.rules)} rules",
             "Language: " + (article.language or "unknown (every language's cues count)")
             + f"; speaker: {ruleset.document_speaker(article) or 'unknown'}"
             + f"; date: {article.published or 'unknown'}"]
    if explanations:
        ents = explanations[0].entities
        lines.append("Entities found: " + ("; ".join(f"{k}: {_show(v[:12])}" for k, v in ents.items()) or "none"))
    for ex in explanations:
        lines.append("")
        lines.extend(_render_one(ex, color))
    return "\n".join(lines)


def _render_one(ex: Explanation, color: bool) -> list[str]:
    if not ex.enabled:
        verdict = _paint("DISABLED", "dim", color) + (" (would fire)" if ex.match else "")
    else:
        verdict = _paint("FIRES", "green", color) if ex.fired else _paint("no match", "red", color)
    lines = [f"{_paint(ex.rule_id, 'bold', color)} {verdict}  {ex.title}"]
    if ex.match is not None:
        m = ex.match
        lines.append(f"  terms:    {', '.join(m.terms)}")
        lines.append("  entities: " + "; ".join(f"{k}: {_show(v)}" for k, v in m.entities.items()))
        if m.fields:
            lines.append("  fields:   " + "; ".join(f"{k}: {_show(v)}" for k, v in m.fields.items()))
        lines.append(f"  snippet:  {_highlight(m.snippet, color)}")
        return lines
    if ex.hits:
        lines.append("  found:")
        for label, context in ex.hits[:8]:
            lines.append(f"    {label:<14} {_highlight(context, color)}")
        if len(ex.hits) > 8:
            lines.append(f"    ... {len(ex.hits) - 8} more")
    else:
        lines.append("  found: none of the rule's terms")
    if ex.failed:
        lines.append("  failed: " + _paint(ex.failed.replace("\n", "\n  "), "yellow", color))
    return lines


def _show(value) -> str:
    if value is None or value == []:
        return "-"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _highlight(text: str, color: bool) -> str:
    if not color:
        return text
    parts = text.split("**")
    return "".join(_paint(p, "cyan", True) if i % 2 else p for i, p in enumerate(parts))
