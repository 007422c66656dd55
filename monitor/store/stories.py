"""Story clusters in Redis (scripts/assign_story.lua); every key lives under the `{stories}` hash tag.

Layout (the script's header has the byte formats; docs/decisions.md "Story index in hash buckets"): s:<id> one
string per story (shingle count, creation time, the MinHash values as 4-byte big-endian binary, then its copies as
source/url); the LSH band values -> the first story with that band, and the exact fingerprints -> story id, as
fields of hash buckets (bn:/fk:<period>:<level>:<shard>, each a small listpack hash instead of one key per value:
a key costs ~60-90 bytes of overhead, a listpack field ~17; a band's field is 5 bytes, see _band_width). A band
entry is live a retention after its story's creation, a fingerprint entry a retention after its write. Joining
refreshes a story's expiry; its band entries expire a retention after its first copy, so late copies of an old
story start a new one.

The band buckets before (bk:, whole band values as fields) and the layout before them (fp:<fp> and b:<band> strings,
story:<id> hash and story:<id>:members list) are still read, and a story stored in the latter is still joined in
it, until their keys expire; nothing writes them any more.

The MinHash, shingles and LSH bands are computed by monitor/dedup.py (StoryIndex); this stores and decides.
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.client import NEVER_DECODE

from .keys import Keys
from .scripts import register

MIN_PERIOD = 3600  # seconds; a bucket period is a quarter of the retention, at least this


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
        period = max(MIN_PERIOD, math.ceil(ttl / 4))
        result = await self._script(
            keys=[self.keys.story_fingerprint(fingerprint), *(self.keys.story_band(b) for b in bands)],
            args=[story_id, url, source, signature, size, repr(threshold), ttl, self.keys.story(),
                  "1" if fingerprint else "0", int(time.time()), repr(jaccard_floor), min_common,
                  self.keys.stories_prefix, period, _fingerprint_field(fingerprint), _band_width(bands),
                  *(_band_field(b) for b in bands)])
        outcome, assigned, first_url, similarity = (_text(v) for v in result)
        return Assigned(outcome, assigned, first_url, float(similarity))

    async def members(self, story_id: str) -> list[tuple[str, str]]:
        """(source, url) of every copy of the story, in arrival order; [] for an unknown or expired story."""
        record = await self.redis.execute_command("GET", self.keys.story_record(story_id), **{NEVER_DECODE: True})
        return await self.members_from(record, story_id)

    def queue_members(self, pipe: Any, story_id: str) -> int:
        """`members`' read of the story record queued on a pipeline (the caller's, to share its round trip); returns
        how many results it adds (the one to give `members_from`)."""
        pipe.execute_command("GET", self.keys.story_record(story_id), **{NEVER_DECODE: True})
        return 1

    async def members_from(self, record: bytes | None, story_id: str) -> list[tuple[str, str]]:
        """The members from the story record read (None when missing: then the layout before's list is read)."""
        if record is not None:
            return _record_members(record)
        raw = await self.redis.lrange(self.keys.story_members(story_id), 0, -1)  # the layout before
        return [tuple(json.loads(_text(item))) for item in raw]  # type: ignore[misc]


def _record_members(record: bytes) -> list[tuple[str, str]]:
    """The copies listed in a story record (s:<id>): after the header and the signature, source \x1f url \x1e."""
    _, _, sig_len = struct.unpack(">IIH", record[:10])
    body = record[10 + sig_len:].decode("utf-8")
    return [tuple(item.split("\x1f", 1)) for item in body.split("\x1e") if item]  # type: ignore[misc]


def _band_field(band: str) -> bytes:
    """A band value "<i>:<hex>" as the bucket field: the band number as one byte, then the hash values' bytes."""
    number, values = band.split(":", 1)
    head = int(number).to_bytes(1 if int(number) < 256 else 2, "big")  # one length per band count: no clash
    return head + bytes.fromhex(values)


def _band_width(bands: Sequence[str]) -> int:
    """Bytes of hash values in a band. A bucket keeps the band number and at most 4 of them (the script's header):
    the whole 8 would cost 3 bytes more in each of a story's ~48 bucket fields."""
    return len(bands[0].split(":", 1)[1]) // 2 if bands else 0


def _fingerprint_field(fingerprint: str) -> bytes:
    return bytes.fromhex(fingerprint) if fingerprint else b"-"


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
