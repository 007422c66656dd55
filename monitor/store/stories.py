"""Story clusters in Redis (scripts/assign_story.lua); every key lives under the `{stories}` hash tag.

Keys (all expire after the retention): fp:<fingerprint> -> story id; b:<band>:<values> -> the first story with that
band (a bucket holds one story: plain strings cost a fraction of sets, and a clash only loses that band);
story:<id> hash (sig: the MinHash values as 4-byte big-endian binary, size, first_url); story:<id>:members list of
[source, url] (membership is read from it: stories are a few copies). Joining refreshes a story's expiry; its band
keys expire a retention after its first copy, so late copies of an old story start a new one.

The MinHash, shingles and LSH bands are computed by monitor/dedup.py (StoryIndex); this stores and decides.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .keys import Keys
from .scripts import register


@dataclass(frozen=True, slots=True)
class Assigned:
    """The script's answer: outcome exact | near | same_url | new, the story, its first URL, the best similarity."""

    outcome: str
    story_id: str
    first_url: str
    similarity: float


class StoryStore:
    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._script = register(redis, "assign_story")

    async def assign(self, *, story_id: str, url: str, source: str, fingerprint: str, bands: Sequence[str],
                     signature: bytes, size: int, threshold: float, ttl: int, jaccard_floor: float,
                     min_common: int) -> Assigned:
        """One atomic decision: the exact copy's story (by `fingerprint`, "" for none), else the most similar
        candidate's found through `bands` above `threshold`, else `story_id` (new, or the same URL seen before)."""
        result = await self._script(
            keys=[self.keys.story_fingerprint(fingerprint), *(self.keys.story_band(b) for b in bands)],
            args=[story_id, url, source, signature, size, repr(threshold), ttl, self.keys.story(),
                  "1" if fingerprint else "0", "", repr(jaccard_floor), min_common])
        outcome, assigned, first_url, similarity = (_text(v) for v in result)
        return Assigned(outcome, assigned, first_url, float(similarity))

    async def members(self, story_id: str) -> list[tuple[str, str]]:
        """(source, url) of every copy of the story, in arrival order; [] for an unknown or expired story."""
        raw = await self.redis.lrange(self.keys.story_members(story_id), 0, -1)
        return [tuple(json.loads(_text(item))) for item in raw]  # type: ignore[misc]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
