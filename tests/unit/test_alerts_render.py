"""Messages: marks, escaping, updates, digests, overrides from a templates_dir (pure)."""

from __future__ import annotations

import json

import pytest

from monitor.alerts.outbox import diff_facts, facts_of
from monitor.alerts.render import Renderer, render_record
from monitor.errors import PermanentError
from monitor.models import Alert, Article, Match


def alert(kind: str = "new", changes: dict | None = None, title: str = "Denmark <pledges> Leopard 2") -> Alert:
    match = Match(rule_id="arms", rule_title="Arms pledges", severity="high",
                  entities={"donor": ["Denmark"], "system": ["Leopard 2"]}, fields={"quantity": 14},
                  snippet="Denmark **pledged** 14 **Leopard 2** <tanks> & more.")
    article = Article(url="https://ex.org/a?x=1&y=2", title=title, published="2026-11-20T10:00:00+01:00",
                      source="Ex News")
    return Alert(id="a1", rule_id="arms", story_id="s1", article=article.to_dict(), match=match.to_dict(),
                 sources=(("Ex News", "https://ex.org/a"),), kind=kind, changes=changes or {})


def test_text_message_has_rule_severity_headline_facts_snippet_link_and_date():
    title, body = Renderer().render(alert(), fmt="text")
    assert title == "[HIGH] Arms pledges: Denmark <pledges> Leopard 2"
    for part in ("donor: Denmark", "system: Leopard 2", "quantity: 14", "*pledged*", "*Leopard 2*",
                 "https://ex.org/a?x=1&y=2", "2026-11-20 09:00 UTC", "Source: Ex News"):
        assert part in body, part


def test_html_message_escapes_article_text_and_marks_terms():
    _, body = Renderer().render(alert(), fmt="html")
    assert "Denmark &lt;pledges&gt; Leopard 2" in body
    assert "<b>pledged</b>" in body and "&lt;tanks&gt; &amp; more" in body
    assert 'href="https://ex.org/a?x=1&amp;y=2"' in body
    assert "<pledges>" not in body


def test_markdown_message_escapes_markup_in_headlines_but_keeps_marks():
    _, body = Renderer().render(alert(title="Tanks_for *all*"), fmt="markdown")
    assert r"Tanks\_for \*all\*" in body
    assert "**pledged**" in body and "**Leopard 2**" in body


def test_update_says_what_changed():
    title, body = Renderer().render(alert("update", {"quantity": [14, 20]}), fmt="text")
    assert title.startswith("[HIGH] Update: Arms pledges")
    assert "What changed:\n- quantity: 14 -> 20" in body


def test_sources_are_listed_when_several_copies_are_known():
    sources = [(f"Site {i}", f"https://s{i}.example/") for i in range(3)]
    _, body = Renderer().render(alert(), fmt="text", sources=sources)
    assert "Sources (3):" in body and "- Site 2: https://s2.example/" in body


def test_digest_lists_every_item():
    items = [(alert(title=f"Headline {i}"), []) for i in range(3)]
    digest = Alert(id="d1", rule_id="", story_id="", article={}, match={}, kind="digest")
    title, body = Renderer().render_digest(digest, items, fmt="html", channel="desk")
    assert title == "Digest: 3 alerts (desk)"
    assert all(f"Headline {i}" in body for i in range(3))


def test_templates_dir_overrides_a_builtin_template(tmp_path):
    (tmp_path / "alert.txt.j2").write_text("{{ rule_title }} | {{ headline }} | {{ mark(snippet) }}")
    _, body = Renderer(templates_dir=str(tmp_path)).render(alert(), fmt="text")
    assert body == "Arms pledges | Denmark <pledges> Leopard 2 | Denmark *pledged* 14 *Leopard 2* <tanks> & more."


def test_channel_template_names_a_file_of_its_own(tmp_path):
    (tmp_path / "sms.txt.j2").write_text("{{ severity }}: {{ headline[:20] }}")
    _, body = Renderer(templates_dir=str(tmp_path)).render(alert(), fmt="text", overrides={"alert": "sms.txt.j2"})
    assert body == "high: Denmark <pledges> Le"


@pytest.mark.parametrize("text,problem", [("{% if %}", "alert.txt.j2:1"), ("{{ 1 / 0 }}", "failed")])
def test_broken_template_is_a_permanent_error_naming_the_file(tmp_path, text, problem):
    (tmp_path / "alert.txt.j2").write_text(text)
    with pytest.raises(PermanentError) as info:
        Renderer(templates_dir=str(tmp_path)).render(alert(), fmt="text")
    assert problem in str(info.value)


def test_audit_record_is_the_whole_alert_with_evidence():
    record = json.loads(render_record(alert(), title="t", body="b", sources=[("A", "https://a/")]))
    assert record["match"]["snippet"].startswith("Denmark **pledged**")
    assert record["sources"] == [["A", "https://a/"]] and record["title"] == "t"


def test_fewer_facts_in_a_truncated_copy_are_no_change_but_new_ones_are():
    old = facts_of(Match(rule_id="r", entities={"donor": ["Denmark", "Netherlands"]}, fields={"quantity": 14}))
    truncated = facts_of(Match(rule_id="r", entities={"donor": ["Denmark"]}))
    assert diff_facts(old, truncated) == ({}, old)
    changes, merged = diff_facts(old, facts_of(Match(rule_id="r", entities={"donor": ["Norway"]},
                                                     fields={"quantity": 20})))
    assert changes == {"donor": [["Denmark", "Netherlands"], ["Norway"]],  # what is new, not the union
                       "quantity": [14, 20]}
    assert merged["quantity"] == 20 and merged["donor"] == ["Denmark", "Netherlands", "Norway"]
