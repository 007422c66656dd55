"""Per source: what became of its entries' articles (page ok, feed text, page failed) and the last page error.

One Redis hash per source, shared by every instance; `monitor feeds`, /healthz, the per-source metric and the
operator alert read it. A source whose last `failing_after` page attempts all failed (and none succeeded since) has
articles failing: its entries are matched on feed text only, or dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .keys import Keys

LAST_ERROR_MAX = 2000  # the reason in full (URLs in it are already redacted by the fetcher)


@dataclass(frozen=True, slots=True)
class ArticleStats:
    """Counts since the source was first seen: articles from the page, from feed text, page failures."""

    feed_id: str
    ok: int = 0  # article text from the page
    feed_text: int = 0  # from the feed's content, summary or title (by choice or as fallback)
    failed: int = 0  # entries whose page could not be had (fetch or extraction failed for good)
    fail_streak: int = 0  # page failures since the last page that worked
    last_error: str = ""
    last_error_url: str = ""
    last_error_at: float | None = None

    def failing(self, after: int) -> bool:
        return after > 0 and self.fail_streak >= after

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "feed_text": self.feed_text, "failed": self.failed, "fail_streak": self.fail_streak,
                "last_error": self.last_error, "last_error_url": self.last_error_url,
                "last_error_at": self.last_error_at}


class SourceStats:
    """Takes a redis.asyncio client (decode_responses=True) and Keys."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    def _key(self, feed_id: str) -> str:
        return self.keys.source_articles(feed_id)

    async def page_ok(self, feed_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self._key(feed_id), "ok", 1)
            pipe.hset(self._key(feed_id), "fail_streak", 0)
            await pipe.execute()

    async def from_feed(self, feed_id: str) -> None:
        await self.redis.hincrby(self._key(feed_id), "feed_text", 1)

    async def page_error(self, feed_id: str, error: str, *, url: str, final: bool) -> int:
        """Remember the error; a final one (no more tries) counts as a failed page. Returns the failure streak."""
        key = self._key(feed_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"last_error": error[:LAST_ERROR_MAX], "last_error_url": url,
                                    "last_error_at": repr(time.time())})
            if final:
                pipe.hincrby(key, "failed", 1)
                pipe.hincrby(key, "fail_streak", 1)
            else:
                pipe.hget(key, "fail_streak")
            result = await pipe.execute()
        return int(result[-1] or 0)

    async def get(self, feed_id: str) -> ArticleStats:
        return (await self.many([feed_id]))[feed_id]

    async def many(self, feed_ids: Sequence[str]) -> dict[str, ArticleStats]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for feed_id in feed_ids:
                pipe.hgetall(self._key(feed_id))
            raw = await pipe.execute()
        return {feed_id: _stats(feed_id, data) for feed_id, data in zip(feed_ids, raw)}


def _stats(feed_id: str, data: dict[str, str]) -> ArticleStats:
    at = data.get("last_error_at")
    return ArticleStats(feed_id=feed_id, ok=int(data.get("ok") or 0), feed_text=int(data.get("feed_text") or 0),
                        failed=int(data.get("failed") or 0), fail_streak=int(data.get("fail_streak") or 0),
                        last_error=data.get("last_error", ""), last_error_url=data.get("last_error_url", ""),
                        last_error_at=float(at) if at else None)
