"""The article archive in Redis: every extracted article kept for `archive.retention_days`, for `monitor rules replay`.

Articles are Brotli-compressed JSON stored as binary (read with redis-py's NEVER_DECODE, so clients that decode
responses read them too), one key per canonical URL, behind a 5-byte header (format byte, when it was put); the time
index is one list per hour of 14-byte items (URL hash, second in the hour) and a small ZSET of the hours. Entries
written before (zlib JSON, as binary or as base64 text) and the time index before (one ZSET, archive:by-time) are
still read until they expire. Brotli 5 over zlib 6 and zstd: 4-8% smaller on articles at a similar speed (its
built-in dictionary is part of the format, nothing to ship; BENCHMARKS.md, docs/decisions.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import MISSING, fields, replace
from typing import TYPE_CHECKING, Any

import brotli
from redis.client import NEVER_DECODE

from ..dedup import canonical_url, fingerprint, url_hash
from ..errors import PermanentError
from ..models import Article
from .keys import Keys

if TYPE_CHECKING:
    from ..settings import ArchiveSettings

log = logging.getLogger(__name__)


class CorruptArchiveEntry(PermanentError):
    """A stored entry does not decode to an Article (written by another version, or damaged)."""


ZLIB_HEADER = 0x78  # the first byte of every zlib stream (32 KB window); base64 text never starts with it ('e')
BROTLI_ENTRY = 0x01  # this version's entries: this byte, '>I' the second it was put, Brotli of the JSON
BROTLI_QUALITY = 5  # quality 5 to 9 give the same size on articles; 10 and 11 are 15-25% smaller, 25x slower
HOUR = 3600
_HEAD = struct.Struct(">BI")
_ITEM = struct.Struct(">12sH")  # an hour list's item: the URL hash (12 bytes), the second in the hour

_DEFAULTS = {f.name: f.default for f in fields(Article) if f.default is not MISSING}


def _content_fingerprint(article: Article) -> str:
    """The exact-content fingerprint the story index gives the article (StoryIndex.assign): of its text, or of its
    title when the text is blank; "" for neither."""
    content = article.text if article.text.strip() else article.title
    return fingerprint(content) if content.strip() else ""


def encode_article(article: Article, *, now: float = 0.0) -> bytes:
    """The entry: header (format, the second `now` it was put) and Brotli of the Article's JSON without the fields
    at their default, nor the fingerprint when it is the text's (32 hex digits that do not compress); decoding
    restores both."""
    data = {k: v for k, v in article.to_dict().items() if k not in _DEFAULTS or v != _DEFAULTS[k]}
    if article.fingerprint == _content_fingerprint(article):
        data.pop("fingerprint", None)
    else:  # another one (or none, "", for a text that has one): kept as it is
        data["fingerprint"] = article.fingerprint
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _HEAD.pack(BROTLI_ENTRY, int(now)) + brotli.compress(text, quality=BROTLI_QUALITY, lgwin=16,
                                                                 mode=brotli.MODE_TEXT)


def unpack_entry(blob: str | bytes, *, key: str = "") -> tuple[int | None, Article]:
    """(the second it was put, None for an entry of the version before; the article) of an entry as stored now,
    or before (zlib bytes, or base64 text of them)."""
    try:
        if isinstance(blob, bytes) and blob[:1] == bytes([BROTLI_ENTRY]) and len(blob) > _HEAD.size:
            _, put_at = _HEAD.unpack_from(blob)
            data = json.loads(brotli.decompress(blob[_HEAD.size:]))
            article = Article.from_dict(data)
            if "fingerprint" not in data:
                article = replace(article, fingerprint=_content_fingerprint(article))
            return put_at, article
        if isinstance(blob, bytes) and blob[:1] == bytes([ZLIB_HEADER]):
            return None, Article.from_json(zlib.decompress(blob))
        return None, Article.from_json(zlib.decompress(base64.b64decode(blob, validate=True)))
    except (binascii.Error, zlib.error, brotli.error, ValueError, TypeError) as exc:  # JSONDecodeError: ValueError
        raise CorruptArchiveEntry(f"archive entry {key or '?'} does not decode: {exc}") from exc


def decode_article(blob: str | bytes, *, key: str = "") -> Article:
    """An entry as stored now or by the versions before."""
    return unpack_entry(blob, key=key)[1]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _hour_items(hour: int, raw: list[bytes], since: int) -> list[tuple[int, str]]:
    """One hour list's (second put, url hash) at or after `since`, oldest first, each hash once (its last put)."""
    last: dict[str, tuple[int, int]] = {}
    for n, item in enumerate(raw):
        if len(item) != _ITEM.size:
            continue
        digest, offset = _ITEM.unpack(item)
        at = hour * HOUR + offset
        if at >= since:
            last[digest.hex()] = (at, n)
    return [(at, hashed) for hashed, (at, _) in sorted(last.items(), key=lambda kv: kv[1])]


class ArticleArchive:
    """put/get by URL, `since` in arrival order, `prune` by age. Keys: archive:<url_hash>, archive:t:<hour> (the
    hour's list of puts), archive:hours (ZSET of the hours with a list); archive:by-time is the index before.

    Each key carries a TTL of `retention_days` (an hour's list: after its last put), so prune only trims the
    indexes: entries vanish by themselves. A put of a URL already archived replaces it and lists it again in the
    current hour; replay reads it there only (the entry's header says when it was last put).
    """

    def __init__(self, redis: Any, keys: Keys, *, settings: ArchiveSettings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.ttl = max(1, int(settings.retention_days * 86400))
        self.index_key = keys.archive_index  # the version before's index: read and pruned until it expires

    def _entry_key(self, hashed: str) -> str:
        return self.keys.archived(hashed)

    async def put(self, article: Article, *, now: float) -> None:
        """Store (or replace) the article under its canonical URL, at time `now` (unix seconds)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.queue_put(pipe, article, now=now)
            await pipe.execute()

    def queue_put(self, pipe: Any, article: Article, *, now: float) -> int:
        """`put`'s commands queued on a pipeline without MULTI (the caller's, to share its round trip); returns how
        many results they add to its answer."""
        url = canonical_url(article.url)
        if len(article.text) > self.settings.max_text_chars:
            log.info("archive: text of %s cut from %d to %d characters", url, len(article.text),
                     self.settings.max_text_chars)
            article = replace(article, text=article.text[:self.settings.max_text_chars])
        hashed = url_hash(url)
        hour, offset = divmod(int(now), HOUR)
        hour_key = self.keys.archive_hour(hour)
        # No MULTI: entry and indexes live in different Cluster slots. A crash in between leaves an entry that
        # replay does not list, which is harmless.
        pipe.set(self._entry_key(hashed), encode_article(article, now=now), ex=self.ttl)
        pipe.rpush(hour_key, _ITEM.pack(bytes.fromhex(hashed), offset))
        pipe.expire(hour_key, self.ttl)
        pipe.zadd(self.keys.archive_hours, {str(hour): hour})
        pipe.expire(self.keys.archive_hours, self.ttl)
        return 5

    async def get(self, url: str) -> Article | None:
        """The archived article for `url` (canonicalised), None when absent or expired."""
        key = self._entry_key(url_hash(canonical_url(url)))
        blob = await self.redis.execute_command("GET", key, **{NEVER_DECODE: True})
        return None if blob is None else decode_article(blob, key=key)

    async def since(self, since: float, *, batch: int = 200) -> AsyncIterator[Article]:
        """Articles put at or after `since` (unix seconds, to the second), oldest first. Expired or unreadable
        entries are skipped (the latter with a warning), so one bad entry does not stop a replay. Those listed in
        the index before come first (all older, but for instances of both versions running at once)."""
        async for article in self._since_before(since, batch=batch):
            yield article
        start = math.floor(since)
        for hour in [int(_text(h)) for h in await self.redis.zrangebyscore(self.keys.archive_hours, start // HOUR,
                                                                            "+inf")]:
            raw = await self.redis.execute_command("LRANGE", self.keys.archive_hour(hour), 0, -1,
                                                   **{NEVER_DECODE: True})
            items = _hour_items(hour, raw or [], start)
            for first in range(0, len(items), batch):
                async for article in self._read(items[first:first + batch], current=True):
                    yield article

    async def _read(self, items: list[tuple[Any, str]], *, current: bool) -> AsyncIterator[Article]:
        """The entries of `items` (when put, url hash): with `current`, those whose last put is that one (this
        version's entries); without, the entries of the version before (a newer put lists them anew)."""
        async with self.redis.pipeline(transaction=False) as pipe:  # not MGET: keys span Cluster slots
            for _, member in items:
                pipe.execute_command("GET", self._entry_key(member), **{NEVER_DECODE: True})
            blobs = await pipe.execute()
        for (at, member), blob in zip(items, blobs):
            if blob is None:
                continue
            try:
                put_at, article = unpack_entry(blob, key=self._entry_key(member))
            except CorruptArchiveEntry as exc:
                log.warning("archive: skipping %s", exc)
                continue
            if (put_at == at) if current else put_at is None:
                yield article

    async def _since_before(self, since: float, *, batch: int) -> AsyncIterator[Article]:
        """The index before (a ZSET url hash -> when), paged by score: robust to inserts and prunes meanwhile. Needed
        for one `archive.retention_days` after the upgrade (then the ZSET has expired); a later version may drop it."""
        low, seen_at_low = since, set()
        while True:
            rows = await self.redis.zrangebyscore(self.index_key, low, "+inf", start=0,
                                                  num=batch + len(seen_at_low), withscores=True)
            fresh = [(s, _text(m)) for m, s in rows if not (s == low and _text(m) in seen_at_low)]
            if not fresh:
                return
            fresh = fresh[:batch]
            async for article in self._read(fresh, current=False):
                yield article
            last = fresh[-1][0]
            seen_at_low = ({m for s, m in fresh if s == last} | (seen_at_low if last == low else set()))
            low = last

    async def prune(self, *, now: float) -> int:
        """Drop index entries older than the retention (an hour's list once all of it is); returns how many.
        Entry keys expire by their TTL."""
        cutoff = now - self.ttl
        removed = int(await self.redis.zremrangebyscore(self.index_key, "-inf", f"({cutoff}"))
        old = [int(_text(h)) for h in await self.redis.zrangebyscore(self.keys.archive_hours, "-inf",
                                                                      cutoff // HOUR - 1)]
        if old:
            async with self.redis.pipeline(transaction=False) as pipe:
                for hour in old:
                    pipe.llen(self.keys.archive_hour(hour))
                    pipe.delete(self.keys.archive_hour(hour))
                counts = await pipe.execute()
            removed += sum(int(c) for c in counts[::2])
            await self.redis.zrem(self.keys.archive_hours, *(str(h) for h in old))
        if removed:
            log.info("archive: pruned %d articles older than %g days", removed, self.settings.retention_days)
        return removed
