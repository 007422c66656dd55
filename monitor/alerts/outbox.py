"""The outbox: one alert per (rule, story), later copies become sources or an update; written before any delivery.

`submit` is called by the pipeline for every Match once dedup has given the article its story id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from redis.exceptions import WatchError

from ..errors import TransientError
from ..models import Alert, Article, Match
from ..store import Keys
from ..streams import Stream
from .channels import AlertSettings, ChannelSettings
from .history import AlertHistory

log = logging.getLogger(__name__)

OUTBOX_STREAM = "alerts"  # the deliverer's input; "alerts:dead" holds what could not be delivered
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


class Outbox:
    """Idempotent alert creation: SET NX on (rule, story), facts compared for updates, then the outbox stream."""

    def __init__(self, redis: Any, keys: Keys, *, settings: AlertSettings,
                 channels: Mapping[str, ChannelSettings] | None = None, clock: Any = time.time) -> None:
        self.redis = redis
        self.settings = settings
        self.channels = dict(channels or {})
        self.history = AlertHistory(redis, keys, retention=settings.history_retention)
        self.ak = self.history.ak
        self.stream = Stream(redis, keys, OUTBOX_STREAM, consumer="outbox")
        self.clock = clock

    async def submit(self, match: Match, article: Article, *, story_id: str,
                     sources: list[tuple[str, str]]) -> Alert | None:
        """The new alert, an update (facts changed), or None (a copy with nothing new: only its source is kept)."""
        if not story_id:
            story_id = article.story_id or article.fingerprint or article.url
        base_id = alert_base_id(match.rule_id, story_id)
        now = self.clock()
        await self._add_sources(base_id, sources or [(article.source, article.url)], now)
        first = await self.redis.set(self.ak.once(base_id), f"{base_id}@{now:.3f}", nx=True,
                                     ex=int(self.settings.history_retention))
        if first:
            alert = await self._create(base_id, match, article, story_id, now)
        else:
            alert = await self._maybe_update(base_id, match, article, story_id, now)
        if alert is not None:
            await self._publish(alert)
        return alert

    async def _add_sources(self, base_id: str, sources: list[tuple[str, str]], now: float) -> None:
        ttl = int(self.settings.history_retention)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, url in sources:
                if url:
                    pipe.zadd(self.ak.sources(base_id), {url: now}, nx=True)
                    pipe.hsetnx(self.ak.source_names(base_id), url, name or "")
            pipe.expire(self.ak.sources(base_id), ttl)
            pipe.expire(self.ak.source_names(base_id), ttl)
            await pipe.execute()

    def _alert(self, alert_id: str, match: Match, article: Article, story_id: str, now: float, *,
               kind: str, sources: list[tuple[str, str]], changes: dict[str, Any] | None = None) -> Alert:
        art = {k: v for k, v in article.to_dict().items() if k not in _ARTICLE_DROP}
        art["story_id"] = story_id
        return Alert(id=alert_id, rule_id=match.rule_id, story_id=story_id, article=art, match=match.to_dict(),
                     sources=tuple(sources), kind=kind, changes=changes or {}, created_at=_now_iso(now))

    async def _create(self, base_id: str, match: Match, article: Article, story_id: str, now: float) -> Alert:
        sources = await self.history.sources(base_id)
        alert = self._alert(base_id, match, article, story_id, now, kind="new", sources=sources)
        async with self.redis.pipeline(transaction=True) as pipe:
            self._write_story(pipe, base_id, facts_of(match), updates=0, last=alert.id)
            self.history.write_alert(pipe, alert, base_id=base_id, now=now)
            await pipe.execute()
        log.info("alert %s: new for rule %s story %s (%s)", alert.id, match.rule_id, story_id, article.url)
        return alert

    def _write_story(self, pipe: Any, base_id: str, facts: dict[str, Any], *, updates: int, last: str) -> None:
        key = self.ak.story(base_id)
        pipe.hset(key, mapping={"facts": _dumps(facts), "updates": str(updates), "last": last})
        pipe.expire(key, int(self.settings.history_retention))

    async def _maybe_update(self, base_id: str, match: Match, article: Article, story_id: str,
                            now: float) -> Alert | None:
        key = self.ak.story(base_id)
        for _ in range(10):  # optimistic: another instance may be submitting a copy of the same story
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(key)
                    state = await pipe.hgetall(key)
                    if not state:
                        await pipe.unwatch()
                        if await self._claimed_recently(base_id, now):
                            # The first submit is still writing (or died a moment ago). Retry this copy later
                            # rather than drop it: its facts may be an update, and a dead first submit is then
                            # completed by the `_create` below instead of being lost.
                            raise TransientError(f"alert {base_id}: the first alert of this story is still being "
                                                 "written; this copy is retried")
                        # the first submit died between SET NX and writing: finish its work
                        return await self._create(base_id, match, article, story_id, now)
                    changes, merged = diff_facts(_loads(state.get("facts")), facts_of(match))
                    if not changes:
                        await pipe.unwatch()
                        return await self._unpublished(state.get("last") or base_id, now)
                    updates = int(state.get("updates") or 0) + 1
                    sources = await self.history.sources(base_id)
                    alert = self._alert(f"{base_id}-u{updates}", match, article, story_id, now, kind="update",
                                        sources=sources, changes=changes)
                    pipe.multi()
                    self._write_story(pipe, base_id, merged, updates=updates, last=alert.id)
                    self.history.write_alert(pipe, alert, base_id=base_id, now=now)
                    await pipe.execute()
                    log.info("alert %s: update for rule %s story %s: %s", alert.id, match.rule_id, story_id,
                             ", ".join(sorted(changes)))
                    return alert
            except WatchError:
                continue
        raise TransientError(f"alert {base_id}: story state kept changing under concurrent updates")

    async def _claimed_recently(self, base_id: str, now: float) -> bool:
        value = await self.redis.get(self.ak.once(base_id)) or ""
        try:
            return now - float(value.rpartition("@")[2]) < INFLIGHT_GRACE
        except ValueError:
            return False

    async def _unpublished(self, alert_id: str, now: float) -> Alert | None:
        """A copy with nothing new. If the story's last alert never reached the stream (crash), send it now."""
        since = await self.redis.zscore(self.ak.unpublished, alert_id)
        if since is None or now - since < INFLIGHT_GRACE:  # published, or another submit is publishing it
            return None
        alert = await self.history.alert(alert_id)
        if alert is not None:
            log.warning("alert %s: was stored but not published (earlier crash); publishing now", alert_id)
        return alert

    async def _publish(self, alert: Alert) -> None:
        await self.stream.publish(alert.to_dict())
        await self.history.mark_published(alert.id)

    async def republish_stale(self, older_than: float = 60.0) -> int:
        """Publish alerts stored but not published for `older_than` seconds (a submit that crashed midway).
        The deliverer's per-channel idempotency makes a second copy in the stream harmless."""
        ids = await self.redis.zrangebyscore(self.ak.unpublished, "-inf", self.clock() - older_than)
        count = 0
        for alert_id in ids:
            alert = await self.history.alert(alert_id)
            if alert is None:
                await self.redis.zrem(self.ak.unpublished, alert_id)
                continue
            await self._publish(alert)
            count += 1
        return count


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def _loads(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
