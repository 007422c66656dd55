"""Alert records in Redis: what fired, when, for which story and sources, and what each channel answered.

The outbox and the deliverer write here; `monitor alerts list|show` read. Only privacy-form URLs are ever stored.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..models import Alert
from ..store import Keys
from .render import describe_change, show_value

TAG = "{alerts}"  # every alert key shares one Cluster slot, so the small Lua scripts may touch several


class AlertKeys:
    """Key names of the alert state (all under the prefix, all in the {alerts} slot)."""

    def __init__(self, keys: Keys) -> None:
        self.k = keys

    def once(self, digest: str) -> str:  # (rule, story) -> first alert id
        return self.k(TAG, "once", digest)

    def story(self, base_id: str) -> str:  # facts, update counter, latest alert id
        return self.k(TAG, "story", base_id)

    def sources(self, base_id: str) -> str:  # ZSET url -> first seen (order)
        return self.k(TAG, "sources", base_id)

    def source_names(self, base_id: str) -> str:  # HASH url -> source name
        return self.k(TAG, "srcname", base_id)

    def alert(self, alert_id: str) -> str:  # HASH json, created, base, published
        return self.k(TAG, "alert", alert_id)

    def deliveries(self, alert_id: str) -> str:  # HASH channel -> JSON state
        return self.k(TAG, "deliv", alert_id)

    def inflight(self, alert_id: str, channel: str) -> str:  # HASH url index -> "sending" mark or answer, until
        return self.k(TAG, "sending", alert_id, channel)  # the delivery record holds the attempt's outcome

    @property
    def index(self) -> str:  # ZSET alert id -> created
        return self.k(TAG, "index")

    @property
    def unpublished(self) -> str:  # ZSET alert id -> created; written but not yet in the outbox stream
        return self.k(TAG, "unpublished")

    def due(self, channel: str) -> str:  # ZSET alert id -> when to send (first try and retries)
        return self.k(TAG, "due", channel)

    def throttle(self, channel: str, rule_id: str) -> str:  # HASH until, count
        return self.k(TAG, "throttle", channel, rule_id)

    def held(self, channel: str) -> str:  # LIST alert ids waiting for a digest
        return self.k(TAG, "held", channel)

    def held_due(self, channel: str) -> str:  # when the held list is sent
        return self.k(TAG, "held-due", channel)

    def digest_items(self, digest_id: str) -> str:  # LIST alert ids taken into one digest
        return self.k(TAG, "digest", digest_id)

    @property
    def digests_open(self) -> str:  # SET "channel\tdigest_id" taken from held but not yet queued
        return self.k(TAG, "digests-open")

    @property
    def digest_seq(self) -> str:
        return self.k(TAG, "digest-seq")


def _loads(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


class AlertHistory:
    """Reads and writes alert records; retention applies to every record it writes."""

    def __init__(self, redis: Any, keys: Keys, *, retention: float = 90 * 86400.0) -> None:
        self.redis = redis
        self.ak = AlertKeys(keys)
        self.retention = int(retention)

    # ---- writes (outbox, deliverer) ----

    def write_alert(self, pipe: Any, alert: Alert, *, base_id: str, now: float) -> None:
        """Queue the commands that store `alert` (not yet published) on a pipeline."""
        key = self.ak.alert(alert.id)
        pipe.hset(key, mapping={"json": alert.to_json(), "created": f"{now:.3f}", "base": base_id,
                                "published": "0"})
        pipe.expire(key, self.retention)
        pipe.zadd(self.ak.index, {alert.id: now})
        pipe.zremrangebyscore(self.ak.index, "-inf", now - self.retention)  # records older than this expired
        pipe.zadd(self.ak.unpublished, {alert.id: now})

    async def mark_published(self, alert_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.ak.alert(alert_id), "published", "1")
            pipe.zrem(self.ak.unpublished, alert_id)
            await pipe.execute()

    async def alert(self, alert_id: str) -> Alert | None:
        raw = await self.redis.hget(self.ak.alert(alert_id), "json")
        return Alert.from_json(raw) if raw else None

    async def base_of(self, alert_id: str) -> str:
        return await self.redis.hget(self.ak.alert(alert_id), "base") or alert_id

    async def sources(self, base_id: str) -> list[tuple[str, str]]:
        """Every copy of the story known now, first seen first."""
        urls = await self.redis.zrange(self.ak.sources(base_id), 0, -1)
        if not urls:
            return []
        names = await self.redis.hmget(self.ak.source_names(base_id), urls)
        return [(name or "", url) for name, url in zip(names, urls)]

    def queue_delivery(self, pipe: Any, alert_id: str, channel: str, state: dict[str, Any]) -> None:
        """Queue the write of one (alert, channel) delivery state on a pipeline / transaction."""
        key = self.ak.deliveries(alert_id)
        state = {**state, "updated_at": round(time.time(), 3)}
        pipe.hset(key, channel, json.dumps(state, ensure_ascii=False, separators=(",", ":")))
        pipe.expire(key, self.retention)

    async def set_delivery(self, alert_id: str, channel: str, state: dict[str, Any]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self.queue_delivery(pipe, alert_id, channel, state)
            await pipe.execute()

    async def delivery(self, alert_id: str, channel: str) -> dict[str, Any] | None:
        return _loads(await self.redis.hget(self.ak.deliveries(alert_id), channel), None)

    async def deliveries(self, alert_id: str) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(self.ak.deliveries(alert_id))
        return {channel: _loads(value, {}) for channel, value in sorted(raw.items())}

    # ---- reads (CLI) ----

    async def list(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest `limit` alerts: id, kind, rule, story, when, headline, and each channel's status."""
        ids = await self.redis.zrevrange(self.ak.index, 0, max(limit, 1) - 1)
        out = []
        for alert_id in ids:
            record = await self.show(alert_id, with_sources=False)
            if record is None:  # expired record: drop it from the index too
                await self.redis.zrem(self.ak.index, alert_id)
                continue
            record["channels"] = {c: d.get("status", "?") for c, d in record.pop("deliveries").items()}
            out.append(record)
        return out

    async def show(self, alert_id: str, *, with_sources: bool = True) -> dict[str, Any] | None:
        """Everything known about one alert, or None."""
        raw = await self.redis.hgetall(self.ak.alert(alert_id))
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
        from ..streams import Stream  # the dead-letter stream of the outbox; the CLI only reads it

        rows = [("WHEN", "ALERT", "CHANNEL", "ATTEMPTS", "ERROR")]
        stream = Stream(self.redis, self.ak.k, "alerts", consumer="cli")
        for m in await stream.dead(limit):
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
