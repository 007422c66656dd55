"""Messages from alerts: Jinja2 templates in three kinds (text, markdown, html) plus a JSON record for audit files.

Pure: an Alert (and its current sources) in, (title, body) out. Templates in `templates_dir` override the built-in
ones of the same file name; a channel may name its own template files per kind (title, alert, digest).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import jinja2
from markupsafe import Markup, escape

from ..errors import PermanentError
from ..models import Alert

FORMATS = ("text", "markdown", "html")
_EXT = {"text": "txt", "markdown": "md", "html": "html"}
_MARK = re.compile(r"\*\*(.+?)\*\*", re.S)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def _md(value: Any) -> str:
    """Escape text from an article so chat markdown does not mis-render it."""
    return _MD_SPECIAL.sub(r"\\\1", "" if value is None else str(value))


def _marked(snippet: Any, fmt: str) -> str:
    """The snippet with its **term** marks rendered for the format (escaping everything else)."""
    text = "" if snippet is None else str(snippet)
    parts = _MARK.split(text)  # even indexes: plain text, odd: marked terms
    if fmt == "html":
        return Markup("").join(Markup("<b>%s</b>") % p if i % 2 else escape(p) for i, p in enumerate(parts))
    if fmt == "markdown":
        return "".join(f"**{_md(p)}**" if i % 2 else _md(p) for i, p in enumerate(parts))
    return "".join(f"*{p}*" if i % 2 else p for i, p in enumerate(parts))


def _when(value: Any) -> str:
    """ISO date/time -> "2026-11-22 04:28 UTC" (dates stay dates; anything unparsable is shown as given)."""
    if not value:
        return ""
    text = str(value)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if len(text) <= 10:
        return dt.date().isoformat()
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v)}" for k, v in value.items())
    return "" if value is None else str(value)


show_value = _show  # a fact as people read it: "$40", "Denmark, Netherlands" (never a Python repr)


def describe_change(pair: Any) -> str:
    """One change of an update: "14 -> 20" for a value; "$75 billion (new; before: $68.7 billion)" for list items
    added to what the story already said (see outbox.diff_facts)."""
    before, after = (list(pair) + [None, None])[:2] if isinstance(pair, (list, tuple)) else (None, pair)
    if isinstance(after, list):
        return f"{_show(after)} (new" + (f"; before: {_show(before)})" if before not in (None, "", []) else ")")
    return f"{_show(before) or '(none)'} -> {_show(after) or '(none)'}"


def alert_context(alert: Alert, sources: Iterable[tuple[str, str]] | None = None, **extra: Any) -> dict[str, Any]:
    """What templates see for one alert. `sources` are the copies known now (may be more than at submit time)."""
    article, match = alert.article or {}, alert.match or {}
    srcs = [tuple(s) for s in (sources if sources is not None else alert.sources)]
    facts = [(k, v) for k, v in (match.get("entities") or {}).items() if v]
    facts += [(k, v) for k, v in (match.get("fields") or {}).items() if v not in (None, "", [], {})]
    return {
        "alert": alert,
        "id": alert.id,
        "kind": alert.kind,
        "rule_id": alert.rule_id,
        "rule_title": match.get("rule_title") or alert.rule_id,
        "severity": match.get("severity") or "info",
        "headline": article.get("title") or article.get("url") or "(no title)",
        "link": article.get("url", ""),
        "date": _when(article.get("published") or article.get("fetched_at")),
        "source": article.get("source") or article.get("site_name") or "",
        "text_from": article.get("text_from") or "page",  # page, feed content, feed summary or feed title
        "sources": [{"name": n or u, "url": u} for n, u in srcs],
        "facts": facts,
        "facts_text": "; ".join(f"{k}: {_show(v)}" for k, v in facts),
        "terms": list(match.get("terms") or []),
        "snippet": match.get("snippet") or "",
        "changes": {k: v for k, v in (alert.changes or {}).items() if k != "items"},
        "created_at": _when(alert.created_at),
        "suppressed": 0,
        **extra,
    }


class Renderer:
    """Loads templates once; renders alerts and digests for a format."""

    def __init__(self, *, templates_dir: str | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if templates_dir:
            loaders.append(jinja2.FileSystemLoader(str(Path(templates_dir))))
        loaders.append(jinja2.PackageLoader("monitor.alerts", "templates"))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=lambda name: bool(name) and ".html" in name,
            undefined=jinja2.ChainableUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters.update(md=_md, show=_show, when=_when, change=describe_change)

    def _template(self, kind: str, fmt: str, overrides: Mapping[str, str]) -> jinja2.Template:
        name = overrides.get(kind) or ("title.txt.j2" if kind == "title" else f"{kind}.{_EXT[fmt]}.j2")
        try:
            return self.env.get_template(name)
        except jinja2.TemplateNotFound:
            raise PermanentError(f"alert template {name!r} not found (templates_dir or built-in)") from None
        except jinja2.TemplateSyntaxError as exc:
            raise PermanentError(f"alert template {exc.filename or name}:{exc.lineno}: {exc.message}") from None

    def _render(self, kind: str, fmt: str, overrides: Mapping[str, str], ctx: dict[str, Any]) -> str:
        template = self._template(kind, fmt, overrides)
        try:
            return template.render(ctx, fmt=fmt, mark=lambda s: _marked(s, fmt)).strip()
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
            # a template from the configuration is input: its mistakes become a clear, permanent error
            raise PermanentError(f"alert template {template.name!r} failed: {type(exc).__name__}: {exc}") from None

    def render(self, alert: Alert, *, fmt: str, sources: Iterable[tuple[str, str]] | None = None,
               overrides: Mapping[str, str] | None = None, **extra: Any) -> tuple[str, str]:
        """(title, body) of one alert in `fmt` (text | markdown | html)."""
        if fmt not in FORMATS:
            raise PermanentError(f"unknown message format {fmt!r}; use one of {FORMATS}")
        ctx = alert_context(alert, sources, **extra)
        overrides = overrides or {}
        return self._render("title", "text", overrides, ctx), self._render("alert", fmt, overrides, ctx)

    def render_digest(self, digest: Alert, items: list[tuple[Alert, list[tuple[str, str]]]], *, fmt: str,
                      channel: str, overrides: Mapping[str, str] | None = None, **extra: Any) -> tuple[str, str]:
        """(title, body) of a digest listing `items` (each an alert with its sources)."""
        if fmt not in FORMATS:
            raise PermanentError(f"unknown message format {fmt!r}; use one of {FORMATS}")
        ctx = alert_context(digest, [], channel=channel, count=len(items),
                            items=[alert_context(a, s) for a, s in items], **extra)
        overrides = overrides or {}
        return self._render("title", "text", overrides, ctx), self._render("digest", fmt, overrides, ctx)


def alert_document(alert: Alert, *, title: str, sources: Iterable[tuple[str, str]],
                   items: list[Alert] | None = None, body: str | None = None) -> str:
    """The JSON body of a `format: json` webhook: what a machine needs to act on the alert, values as values.
    `body`: an operator alert's text (its "body" field)."""
    article, match = alert.article or {}, alert.match or {}
    doc: dict[str, Any] = {
        "id": alert.id, "kind": alert.kind, "rule": alert.rule_id, "rule_title": match.get("rule_title") or "",
        "severity": match.get("severity") or "info", "story": alert.story_id, "title": title,
        "headline": article.get("title") or "", "url": article.get("url") or "",
        "published": article.get("published") or None, "source": article.get("source") or "",
        "text_from": article.get("text_from") or "page", "fields": match.get("fields") or {}, "entities": match.get("entities") or {},
        "terms": list(match.get("terms") or []), "snippet": match.get("snippet") or "",
        "changes": {k: v for k, v in (alert.changes or {}).items() if k != "items"},
        "sources": [{"name": name or "", "url": url} for name, url in sources],
        "created_at": alert.created_at,
    }
    if items is not None:
        doc["items"] = [json.loads(alert_document(a, title="", sources=a.sources)) for a in items]
    if body is not None:
        doc["body"] = body
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)


def render_record(alert: Alert, *, title: str, body: str, sources: Iterable[tuple[str, str]],
                  items: list[Alert] | None = None) -> str:
    """The JSON line an audit (jsonl://) channel writes: the whole alert with its evidence and current sources."""
    record = alert.to_dict()
    record["sources"] = [list(s) for s in sources]
    record["title"] = title
    record["text"] = body
    if items is not None:
        record["items"] = [a.to_dict() for a in items]
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
