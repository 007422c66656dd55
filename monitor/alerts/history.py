"""Alert records in Redis: what fired, when, for which story and sources, and what each channel answered.

The outbox and the deliverer write them through the store (state.AlertStore); `monitor alerts list|show` read them
here. Only privacy-form URLs are ever stored.
"""

from __future__ import annotations

import time
from typing import Any

from ..models import Alert
from ..store import Keys
from ..store.alerts import AlertStore
from .render import describe_change, show_value

class AlertHistory:
    """What fired and what each channel answered, as records (`monitor alerts list|show`, tests). Reads only:
    the outbox and the deliverer write through the store."""

    def __init__(self, redis: Any, keys: Keys, *, retention: float = 90 * 86400.0,
                 store: AlertStore | None = None) -> None:
        self.store = store or AlertStore(redis, keys, retention=retention, consumer="cli")
        self.ak = self.store.ak

    async def alert(self, alert_id: str) -> Alert | None:
        return await self.store.alert(alert_id)

    async def base_of(self, alert_id: str) -> str:
        return await self.store.base_of(alert_id)

    async def sources(self, base_id: str) -> list[tuple[str, str]]:
        """Every copy of the story known now, first seen first."""
        return await self.store.sources(base_id)

    async def delivery(self, alert_id: str, channel: str) -> dict[str, Any] | None:
        return await self.store.delivery(alert_id, channel)

    async def deliveries(self, alert_id: str) -> dict[str, dict[str, Any]]:
        return await self.store.deliveries(alert_id)

    async def list(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest `limit` alerts: id, kind, rule, story, when, headline, and each channel's status."""
        out = []
        for alert_id in await self.store.newest(limit):
            record = await self.show(alert_id, with_sources=False)
            if record is None:  # expired record: drop it from the index too
                await self.store.drop_from_index(alert_id)
                continue
            record["channels"] = {c: d.get("status", "?") for c, d in record.pop("deliveries").items()}
            out.append(record)
        return out

    async def show(self, alert_id: str, *, with_sources: bool = True) -> dict[str, Any] | None:
        """Everything known about one alert, or None."""
        raw = await self.store.alert_record(alert_id)
        if not raw.get("json"):
            return None
        alert = Alert.from_json(raw["json"])
        article, match = alert.article or {}, alert.match or {}
        record: dict[str, Any] = {
            "id": alert.id, "kind": alert.kind, "rule_id": alert.rule_id,
            "rule_title": match.get("rule_title", ""), "severity": match.get("severity", ""),
            "story_id": alert.story_id, "created_at": alert.created_at, "headline": article.get("title", ""),
            "url": article.get("url", ""), "published": raw.get("published") == "1",
            "text_from": article.get("text_from") or "page",
            "deliveries": await self.deliveries(alert_id),
        }
        if with_sources:
            record["sources"] = [list(s) for s in await self.sources(raw.get("base") or alert.id)]
            record["changes"] = alert.changes
            record["terms"] = match.get("terms", [])
            record["entities"] = match.get("entities", {})
            record["fields"] = match.get("fields", {})
            record["snippet"] = match.get("snippet", "")
        return record


class History(AlertHistory):
    """AlertHistory plus the plain-text views `monitor alerts list|show` print."""

    async def render_list(self, limit: int = 20) -> str:
        rows = [("ID", "KIND", "CREATED", "RULE", "CHANNELS", "HEADLINE")]
        for a in await self.list(limit):
            channels = ", ".join(f"{c}:{s}" for c, s in a["channels"].items()) or "-"
            rows.append((a["id"], a["kind"], a["created_at"][:16].replace("T", " "), a["rule_id"] or "-", channels,
                         _cut(a["headline"], 60)))
        return _table(rows) if len(rows) > 1 else "no alerts"

    async def render_show(self, alert_id: str) -> str | None:
        """The alert as text, or None when there is no such alert."""
        a = await self.show(alert_id)
        if a is None:
            return None
        lines = [f"{a['id']}  {a['kind']}  {a['created_at']}",
                 f"rule:     {a['rule_id']} ({a['rule_title']}, {a['severity']})",
                 f"story:    {a['story_id']}", f"headline: {a['headline']}", f"url:      {a['url']}",
                 f"text:     from the {a['text_from']}"]
        lines += [f"change:   {k}: {describe_change(v)}" for k, v in (a["changes"] or {}).items() if k != "items"]
        if a["changes"].get("items"):
            lines.append(f"items:    {', '.join(a['changes']['items'])}")
        lines += [f"facts:    {k}: {show_value(v)}" for k, v in {**a["entities"], **a["fields"]}.items()]
        lines += [f"terms:    {', '.join(a['terms'])}"] if a["terms"] else []
        lines += [f"snippet:  {a['snippet']}"] if a["snippet"] else []
        lines.append(f"sources ({len(a['sources'])}):")
        lines += [f"  {name or '-'}  {url}" for name, url in a["sources"]]
        lines.append("channels:")
        for channel, d in a["deliveries"].items():
            extra = f", next try {_ts(d['next_at'])}" if d.get("status") == "retrying" else ""
            lines.append(f"  {channel}: {d.get('status')} (attempts {d.get('attempts', 0)}{extra})"
                         + (f" error: {d['error']}" if d.get("error") else ""))
            for t in (d.get("targets") or {}).values():
                lines.append(f"    {t.get('url')}: {t.get('status')} {_ts(t.get('at'))} {t.get('answer', '')}")
        return "\n".join(lines)

    async def render_dead(self, limit: int = 20) -> str:
        rows = [("WHEN", "ALERT", "CHANNEL", "ATTEMPTS", "ERROR")]
        for m in await self.store.dead(limit):  # the dead-letter stream of the outbox; the CLI only reads it
            p = m.payload
            if "channel" in p:  # a channel that gave up
                rows.append((str(p.get("at", ""))[:19], p.get("alert_id", "?"), p["channel"],
                             str(p.get("attempts", "")), _cut(p.get("error", ""), 80)))
            else:  # an outbox message the deliverer could not read
                rows.append(("-", str(p.get("id", m.id)), "-", str(m.deliveries), _cut(p.get("_error", ""), 80)))
        return _table(rows) if len(rows) > 1 else "no dead-lettered alerts"


def _cut(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _ts(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(ts))) if ts else "-"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
