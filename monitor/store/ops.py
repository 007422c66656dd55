"""Markers of the operator alerts about sources (a feed failing for long, a source's article pages failing).

Any instance may run the health checks; SET NX and DEL on one marker per feed and kind make exactly one of them send
each alert, and the one that deletes a marker is the one that says "recovered". Keys: ops:failing:<feed> (when the
current failure streak was first seen), ops:alerted:<feed> (the failing alert was sent), ops:articles:<feed> (the
articles-failing alert was sent). Every marker expires after OPS_MARKER_TTL, so feeds removed from the
configuration leave nothing behind for long.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .keys import Keys

OPS_MARKER_TTL = 90 * 86400


class OpsMarkers:
    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def clear_recovered(self, feed_ids: Sequence[str]) -> list[str]:
        """Drop the failing markers of feeds that poll fine again (one round trip); the ids whose failing alert had
        been sent: this caller (only one) announces their recovery."""
        if not feed_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for feed_id in feed_ids:
                pipe.delete(self.keys.ops_marker("alerted", feed_id))
                pipe.delete(self.keys.ops_marker("failing", feed_id))
            cleared = (await pipe.execute())[::2]
        return [feed_id for feed_id, was_alerted in zip(feed_ids, cleared) if was_alerted]

    async def failing_since(self, feed_id: str, now: float) -> float:
        """When this feed's failure streak was first seen (by any instance); `now` if this is the first look."""
        key = self.keys.ops_marker("failing", feed_id)
        await self.redis.set(key, repr(now), nx=True, ex=OPS_MARKER_TTL)
        return float(await self.redis.get(key) or now)

    async def claim_alert(self, feed_id: str, now: float) -> bool:
        """True for the one caller that is to send the feed's failing alert."""
        return bool(await self.redis.set(self.keys.ops_marker("alerted", feed_id), repr(now), nx=True,
                                         ex=OPS_MARKER_TTL))

    async def release_alert(self, feed_id: str) -> None:
        """The failing alert was not sent: the next check tries again."""
        await self.redis.delete(self.keys.ops_marker("alerted", feed_id))

    async def claim_articles(self, feed_id: str, now: float) -> bool:
        """True for the one caller that is to send the source's articles-failing alert."""
        return bool(await self.redis.set(self.keys.ops_marker("articles", feed_id), repr(now), nx=True,
                                         ex=OPS_MARKER_TTL))

    async def clear_articles(self, feed_id: str) -> bool:
        """The source's pages work again: True for the one caller whose delete found the marker (it announces it)."""
        return bool(await self.redis.delete(self.keys.ops_marker("articles", feed_id)))

    async def release_articles(self, feed_id: str) -> None:
        """The articles-failing alert was not sent: the next check tries again."""
        await self.redis.delete(self.keys.ops_marker("articles", feed_id))
