"""The outbox: one alert per (rule, story), later copies become sources or an update; written before any delivery.

`submit` is called by the pipeline for every Match once dedup has given the article its story id; `submit_operator`
by the daemon for what the operator must know (a feed failing). State and transactions: state.AlertStore.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from ..errors import TransientError
from ..models import Alert, Article, Match
from ..settings import AlertSettings, ChannelSettings
from ..store import Keys
from ..store.alerts import OUTBOX_STREAM, AlertStore

log = logging.getLogger(__name__)

__all__ = ["OUTBOX_STREAM", "Outbox", "alert_base_id", "diff_facts", "facts_of"]
_ARTICLE_DROP = ("text",)
# A submit in progress (on any instance) finishes within milliseconds; state older than this that is still
# incomplete was left by a crash, and the next copy of the story completes it.
INFLIGHT_GRACE = 30.0  # the evidence is the match (snippet, terms); full texts would bloat streams and history


def alert_base_id(rule_id: str, story_id: str) -> str:
    """Stable id of the first alert of a (rule, story); updates append -u1, -u2, ..."""
    return "a" + hashlib.blake2b(f"{rule_id}\0{story_id}".encode(), digest_size=8).hexdigest()


def facts_of(match: Match) -> dict[str, Any]:
    """The matched facts that make an update: entities (as sorted sets) and structured fields."""
    facts: dict[str, Any] = {}
    for kind, values in (match.entities or {}).items():
        if values:
            facts[kind] = sorted({str(v) for v in values})
    for name, value in (match.fields or {}).items():
        if value not in (None, "", [], {}):
            facts[name] = sorted({str(v) for v in value}) if isinstance(value, (list, tuple, set)) else value
    return facts


def diff_facts(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """(changes, merged). A copy that says less (truncated) is no change; new values or new list items are.

    A change is [before, after]: for a value the old and the new one; for a list what was known and only the items
    that are new (the story now has both), so an update says what changed, not everything known."""
    changes: dict[str, list[Any]] = {}
    merged = dict(old)
    for name, value in new.items():
        before = old.get(name)
        if isinstance(value, list):
            have = list(before) if isinstance(before, list) else ([] if before is None else [before])
            extra = [v for v in value if v not in have]
            if extra:
                merged[name] = sorted(set(have) | set(value), key=str)
                changes[name] = [before, sorted(extra, key=str)]
        elif before != value:
            merged[name] = value
            changes[name] = [before, value]
    return changes, merged


def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def operator_alert_id(key: str) -> str:
    """Stable id of the operator alert for `key` (every instance computes the same one)."""
    return "o" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


class Outbox:
    """Idempotent alert creation: SET NX on (rule, story), facts compared for updates, then the outbox stream.

    `store` is the process's one AlertStore (shared with the deliverer); without it the outbox makes its own."""

    def __init__(self, redis: Any, keys: Keys, *, settings: AlertSettings,
                 channels: Mapping[str, ChannelSettings] | None = None, clock: Any = time.time,
                 store: AlertStore | None = None) -> None:
        self.settings = settings
        self.channels = dict(channels or {})
        self.store = store or AlertStore(redis, keys, retention=settings.history_retention)
        self.ak = self.store.ak
        self.stream = self.store.stream
        self.clock = clock

    async def submit(self, match: Match, article: Article, *, story_id: str,
                     sources: list[tuple[str, str]]) -> Alert | None:
        """The new alert, an update (facts changed), or None (a copy with nothing new: only its source is kept)."""
        if not story_id:
            story_id = article.story_id or article.fingerprint or article.url
        base_id = alert_base_id(match.rule_id, story_id)
        now = self.clock()
        await self.store.add_sources(base_id, sources or [(article.source, article.url)], now)
        if await self.store.claim_first(base_id, now):
            alert = await self._create(base_id, match, article, story_id, now)
        else:
            alert = await self._maybe_update(base_id, match, article, story_id, now)
        if alert is not None:
            await self._publish(alert)
        return alert

    async def submit_operator(self, *, channel: str, title: str, body: str, key: str,
                              severity: str = "info") -> Alert | None:
        """Queue an operator alert (kind "operator": a feed failing, a source's pages failing, ...) for `channel`.

        Once per `key` across every instance sharing the Redis (name the episode in it, e.g.
        "feed-failing:<feed id>:<since>"): the first call stores and publishes it and returns it, later calls
        return None. The deliverer sends it like any alert (retries, history, send timeout, secrets masked), at once:
        a channel's throttle, digest and quiet hours do not apply to operator alerts."""
        now = self.clock()
        alert = Alert(id=operator_alert_id(key), rule_id="", story_id="", article={"title": title, "text": body},
                      match={"rule_title": title, "severity": severity, "channels": [channel]}, kind="operator",
                      created_at=_now_iso(now))
        if not await self.store.create_operator(alert, once=alert.id, now=now):
            return None
        log.info("alert %s: operator alert for channel %s: %s", alert.id, channel, title)
        await self._publish(alert)
        return alert

    def _alert(self, alert_id: str, match: Match, article: Article, story_id: str, now: float, *,
               kind: str, sources: list[tuple[str, str]], changes: dict[str, Any] | None = None) -> Alert:
        art = {k: v for k, v in article.to_dict().items() if k not in _ARTICLE_DROP}
        art["story_id"] = story_id
        return Alert(id=alert_id, rule_id=match.rule_id, story_id=story_id, article=art, match=match.to_dict(),
                     sources=tuple(sources), kind=kind, changes=changes or {}, created_at=_now_iso(now))

    async def _create(self, base_id: str, match: Match, article: Article, story_id: str, now: float) -> Alert:
        sources = await self.store.sources(base_id)
        alert = self._alert(base_id, match, article, story_id, now, kind="new", sources=sources)
        await self.store.create_story(alert, facts_of(match), base_id=base_id, now=now)
        log.info("alert %s: new for rule %s story %s (%s)", alert.id, match.rule_id, story_id, article.url)
        return alert

    async def _maybe_update(self, base_id: str, match: Match, article: Article, story_id: str,
                            now: float) -> Alert | None:
        async def decide(state: dict[str, str]) -> tuple[Any, Any]:
            if not state:
                return _NO_STORY, None
            changes, merged = diff_facts(_loads(state.get("facts")), facts_of(match))
            if not changes:
                return ("same", state.get("last") or base_id), None
            updates = int(state.get("updates") or 0) + 1
            sources = await self.store.sources(base_id)
            alert = self._alert(f"{base_id}-u{updates}", match, article, story_id, now, kind="update",
                                sources=sources, changes=changes)
            return alert, (alert, merged, updates)

        result = await self.store.update_story(base_id, decide, now=now)
        if result is _NO_STORY:
            claimed = await self.store.claimed_at(base_id)
            if claimed is not None and now - claimed < INFLIGHT_GRACE:
                # The first submit is still writing (or died a moment ago). Retry this copy later rather than drop
                # it: its facts may be an update, and a dead first submit is then completed by the `_create` below
                # instead of being lost.
                raise TransientError(f"alert {base_id}: the first alert of this story is still being written; "
                                     "this copy is retried")
            # the first submit died between SET NX and writing: finish its work
            return await self._create(base_id, match, article, story_id, now)
        if isinstance(result, tuple):
            return await self._unpublished(result[1], now)
        log.info("alert %s: update for rule %s story %s: %s", result.id, match.rule_id, story_id,
                 ", ".join(sorted(result.changes)))
        return result

    async def _unpublished(self, alert_id: str, now: float) -> Alert | None:
        """A copy with nothing new. If the story's last alert never reached the stream (crash), send it now."""
        since = await self.store.unpublished_since(alert_id)
        if since is None or now - since < INFLIGHT_GRACE:  # published, or another submit is publishing it
            return None
        alert = await self.store.alert(alert_id)
        if alert is not None:
            log.warning("alert %s: was stored but not published (earlier crash); publishing now", alert_id)
        return alert

    async def _publish(self, alert: Alert) -> None:
        await self.store.publish(alert)

    async def republish_stale(self, older_than: float = 60.0) -> int:
        """Publish alerts stored but not published for `older_than` seconds (a submit that crashed midway).
        The deliverer's per-channel idempotency makes a second copy in the stream harmless."""
        count = 0
        for alert_id in await self.store.unpublished_before(self.clock() - older_than):
            alert = await self.store.alert(alert_id)
            if alert is None:
                await self.store.forget_unpublished(alert_id)
                continue
            await self._publish(alert)
            count += 1
        return count


_NO_STORY = object()  # update_story found no story state: the first submit has not written it (yet)


def _loads(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
