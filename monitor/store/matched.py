"""The rule ids that fired on each archived article when it arrived, for `monitor rules replay` to compare with.

One key per article (matched:<url hash>), expiring with the archive; nothing is kept for an article no rule matched
(most of them): replay reads a missing record as "none".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..dedup import url_hash
from .keys import Keys


class MatchedRules:
    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    def key(self, url: str) -> str:
        return self.keys.matched(url_hash(url))

    async def record(self, url: str, rule_ids: Iterable[str], *, ttl: float) -> None:
        """The rules that fired on the article now; with none, an earlier record of the same URL is removed."""
        await self.queue_record(self.redis, url, rule_ids, ttl=ttl)

    def queue_record(self, target: Any, url: str, rule_ids: Iterable[str], *, ttl: float) -> Any:
        """`record`'s one command on `target`: a client (returns what to await) or a pipeline (queued there, to
        share its round trip; one result)."""
        ids = sorted(rule_ids)
        if not ids:
            return target.delete(self.key(url))
        return target.set(self.key(url), json.dumps(ids), ex=max(1, int(ttl)))

    async def get(self, url: str) -> set[str]:
        """The rules recorded for `url`; empty when none fired (or the record expired)."""
        raw = await self.redis.get(self.key(url))
        return set(json.loads(raw)) if raw else set()
