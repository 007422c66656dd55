"""The article archive in Redis: every extracted article kept for `archive.retention_days`, for `monitor rules replay`.

Articles are zlib-compressed JSON stored as binary (read with redis-py's NEVER_DECODE, so clients that decode
responses read them too), one key per canonical URL, plus one time-ordered ZSET of URL hashes. Entries written before
(the same zlib JSON as base64 text, a third longer) are still read until they expire. zlib level 6 over zstd: on the
corpus articles zstd 3 is 3% larger, zstd 19 2% smaller at a tenth of the speed (BENCHMARKS.md, docs/decisions.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import MISSING, fields, replace
from typing import TYPE_CHECKING, Any

from redis.client import NEVER_DECODE

from ..dedup import canonical_url, url_hash
from ..errors import PermanentError
from ..models import Article
from .keys import Keys

if TYPE_CHECKING:
    from ..settings import ArchiveSettings

log = logging.getLogger(__name__)


class CorruptArchiveEntry(PermanentError):
    """A stored entry does not decode to an Article (written by another version, or damaged)."""


ZLIB_HEADER = 0x78  # the first byte of every zlib stream (32 KB window); base64 text never starts with it ('e')


_DEFAULTS = {f.name: f.default for f in fields(Article) if f.default is not MISSING}


def encode_article(article: Article) -> bytes:
    """zlib of the Article's JSON without the fields at their default (decoding restores them)."""
    data = {k: v for k, v in article.to_dict().items() if k not in _DEFAULTS or v != _DEFAULTS[k]}
    return zlib.compress(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 6)


def decode_article(blob: str | bytes, *, key: str = "") -> Article:
    """An entry as stored now (zlib bytes) or before (base64 text of the same)."""
    try:
        if isinstance(blob, bytes) and blob[:1] == bytes([ZLIB_HEADER]):
            return Article.from_json(zlib.decompress(blob))
        return Article.from_json(zlib.decompress(base64.b64decode(blob, validate=True)))
    except (binascii.Error, zlib.error, ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise CorruptArchiveEntry(f"archive entry {key or '?'} does not decode: {exc}") from exc


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class ArticleArchive:
    """put/get by URL, `since` in arrival order, `prune` by age. Keys: archive:<url_hash>, archive:by-time.

    Each entry key carries a TTL of `retention_days`, so prune only trims the time index: entries vanish by
    themselves, and a concurrent put of the same URL (which moves its index entry forward) is never undone.
    """

    def __init__(self, redis: Any, keys: Keys, *, settings: ArchiveSettings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.ttl = max(1, int(settings.retention_days * 86400))
        self.index_key = keys.archive_index

    def _entry_key(self, hashed: str) -> str:
        return self.keys.archived(hashed)

    async def put(self, article: Article, *, now: float) -> None:
        """Store (or replace) the article under its canonical URL, at time `now` (unix seconds)."""
        url = canonical_url(article.url)
        if len(article.text) > self.settings.max_text_chars:
            log.info("archive: text of %s cut from %d to %d characters", url, len(article.text),
                     self.settings.max_text_chars)
            article = replace(article, text=article.text[:self.settings.max_text_chars])
        hashed = url_hash(url)
        # No MULTI: entry and index live in different Cluster slots. A crash in between leaves an entry that
        # replay does not list, which is harmless.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._entry_key(hashed), encode_article(article), ex=self.ttl)
            pipe.zadd(self.index_key, {hashed: now})
            pipe.expire(self.index_key, self.ttl)
            await pipe.execute()

    async def get(self, url: str) -> Article | None:
        """The archived article for `url` (canonicalised), None when absent or expired."""
        key = self._entry_key(url_hash(canonical_url(url)))
        blob = await self.redis.execute_command("GET", key, **{NEVER_DECODE: True})
        return None if blob is None else decode_article(blob, key=key)

    async def since(self, since: float, *, batch: int = 200) -> AsyncIterator[Article]:
        """Articles put at or after `since` (unix seconds), oldest first. Expired or unreadable entries are
        skipped (the latter with a warning), so one bad entry does not stop a replay."""
        low, seen_at_low = since, set()  # score cursor: robust to inserts and prunes while we page
        while True:
            rows = await self.redis.zrangebyscore(self.index_key, low, "+inf", start=0,
                                                  num=batch + len(seen_at_low), withscores=True)
            fresh = [(_text(m), s) for m, s in rows if not (s == low and _text(m) in seen_at_low)]
            if not fresh:
                return
            fresh = fresh[:batch]
            async with self.redis.pipeline(transaction=False) as pipe:  # not MGET: keys span Cluster slots
                for member, _ in fresh:
                    pipe.execute_command("GET", self._entry_key(member), **{NEVER_DECODE: True})
                blobs = await pipe.execute()
            for (member, _), blob in zip(fresh, blobs):
                if blob is None:
                    continue
                try:
                    yield decode_article(blob, key=self._entry_key(member))
                except CorruptArchiveEntry as exc:
                    log.warning("archive: skipping %s", exc)
            last = fresh[-1][1]
            seen_at_low = ({m for m, s in fresh if s == last} | (seen_at_low if last == low else set()))
            low = last

    async def prune(self, *, now: float) -> int:
        """Drop index entries older than the retention; returns how many. Entry keys expire by their TTL."""
        removed = await self.redis.zremrangebyscore(self.index_key, "-inf", f"({now - self.ttl}")
        if removed:
            log.info("archive: pruned %d articles older than %g days", removed, self.settings.retention_days)
        return int(removed)
