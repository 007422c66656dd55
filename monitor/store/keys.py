"""Every Redis key name of monitor, in this one module.

Keys a Lua script or a transaction touches together share a `{tag}`, so they live in one Cluster slot: `{feeds}`
(the schedule), `{host:<host>}` (one host's politeness), `{stories}` (story clusters), `{alerts}` (alert state), and
`{<stream name>}` (a stream with its dead letters). The strings are the ones earlier versions wrote, so data already
in Redis stays readable; docs/operations.md lists them for operators.
"""

from __future__ import annotations

from dataclasses import dataclass

ALERTS_TAG = "{alerts}"  # every alert key shares one Cluster slot, so the small Lua scripts may touch several


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix (`redis.prefix`, default "monitor:")."""

    prefix: str = "monitor:"

    def __call__(self, *parts: str) -> str:
        """A key under the prefix. For the named keys below only: a new key gets a named method here."""
        return self.prefix + ":".join(parts)

    # --- scheduling (store/feeds.py): one due-time ZSET and one hash per feed, in one slot for the claim script --

    @property
    def due(self) -> str:
        return self("{feeds}", "due")

    def feed(self, feed_id: str) -> str:
        return self("{feeds}", "feed", feed_id)

    @property
    def feeds(self) -> str:
        return self("{feeds}", "all")

    @property
    def state_marker(self) -> str:
        """Set when the schedule is built; its absence while running means Redis lost its data (store/feeds.py)."""
        return self("{feeds}", "epoch")

    def seen_urls(self, shard: str) -> str:
        """One of the 256 hashes of seen URLs at level 0: `shard` is the first two hex digits of the URL's hash."""
        return self("seen", "url", shard)

    def seen_urls_at(self, level: int, shard: int) -> str:
        """A hash of seen URLs at `level` >= 1 (256 * 2**level of them): `shard` is the hash's first 8 + level bits."""
        return self("seen", "url", str(level), f"{shard:x}")

    @property
    def seen_levels(self) -> str:
        """HASH: n (seen URLs kept, about), and one field per level >= 1 that may hold some (store/feeds.py)."""
        return self("seen", "url", "levels")

    # --- per-host politeness (store/hosts.py): a host's request slots and its Retry-After hold share a slot -------

    def host_slots(self, host: str) -> str:
        return self("{host:" + host + "}", "slots")

    def host_hold(self, host: str) -> str:
        return self("{host:" + host + "}", "hold")

    # --- story clusters (store/stories.py), all in the {stories} slot --------------------------------------------

    def story_fingerprint(self, fingerprint: str) -> str:
        """Exact-content fingerprint -> story id ("-" for a text without one)."""
        return self("{stories}", "fp", fingerprint or "-")

    def story_band(self, band: str) -> str:
        """One LSH band's value -> the first story with it."""
        return self("{stories}", "b", band)

    def story(self, story_id: str = "") -> str:
        """A story's hash (signature, size, first URL); with no id, the prefix the assign script appends ids to."""
        return self("{stories}", "story", story_id)

    def story_members(self, story_id: str) -> str:
        """The story's copies: a list of JSON [source, url] (the layout before the story records; read only)."""
        return self.story(story_id) + ":members"

    @property
    def stories_prefix(self) -> str:
        """What the assign script prepends to the keys it builds: s:<id> story records, bn:/fk: hash buckets of
        band values and fingerprints (bk: the band buckets before), bm: their levels
        (store/scripts/assign_story.lua)."""
        return self("{stories}", "")

    def story_record(self, story_id: str) -> str:
        """A story: shingle count, binary signature and its copies in one string (store/stories.py)."""
        return self.stories_prefix + "s:" + story_id

    # --- archive (store/archive.py) -------------------------------------------------------------------------------

    def archived(self, url_hash: str) -> str:
        return self("archive", url_hash)

    @property
    def archive_index(self) -> str:
        """ZSET url hash -> when archived (the index before the hour lists; read until it expires)."""
        return self("archive", "by-time")

    def archive_hour(self, hour: int) -> str:
        """LIST of what was archived in one hour (unix time // 3600): 12-byte URL hash, '>H' second in the hour."""
        return self("archive", "t", str(hour))

    @property
    def archive_hours(self) -> str:
        """ZSET of the hours with a list (member and score: the hour)."""
        return self("archive", "hours")

    def matched(self, url_hash: str) -> str:
        """The rule ids that fired on an archived article when it arrived (store/matched.py, for replay)."""
        return self("matched", url_hash)

    # --- per-source article statistics (store/sources.py) ---------------------------------------------------------

    def source_articles(self, feed_id: str) -> str:
        return self("articles", feed_id)

    # --- operator-alert markers (store/ops.py) --------------------------------------------------------------------

    def ops_marker(self, kind: str, feed_id: str) -> str:
        """kind: "failing" (since when), "alerted" (the failing alert was sent), "articles" (pages failing)."""
        return self("ops", kind, feed_id)

    # --- streams (streams.py): a stream and its dead-letter stream share the `{name}` tag --------------------------

    def stream(self, name: str) -> str:
        """A stream and its dead-letter stream share the `{name}` tag: one slot, so one transaction moves a message."""
        return self("stream", "{" + name + "}")

    def stream_dead(self, name: str) -> str:
        return self.stream(name) + ":dead"

    def stream_errors(self, name: str) -> str:
        """Message id -> last error, seen by whichever consumer dead-letters it."""
        return self.stream(name) + ":errors"

    # --- alert state -----------------------------------------------------------------------------------------------

    @property
    def alerts(self) -> AlertKeys:
        return AlertKeys(self)


class AlertKeys:
    """Key names of the alert state (all under the prefix, all in the {alerts} slot)."""

    __slots__ = ("k",)

    def __init__(self, keys: Keys) -> None:
        self.k = keys

    def once(self, digest: str) -> str:  # (rule, story) -> first alert id
        return self.k(ALERTS_TAG, "once", digest)

    def story(self, base_id: str) -> str:  # facts, update counter, latest alert id
        return self.k(ALERTS_TAG, "story", base_id)

    def sources(self, base_id: str) -> str:  # ZSET url -> first seen (order)
        return self.k(ALERTS_TAG, "sources", base_id)

    def source_names(self, base_id: str) -> str:  # HASH url -> source name
        return self.k(ALERTS_TAG, "srcname", base_id)

    def alert(self, alert_id: str) -> str:  # HASH json, created, base, published
        return self.k(ALERTS_TAG, "alert", alert_id)

    def deliveries(self, alert_id: str) -> str:  # HASH channel -> JSON state
        return self.k(ALERTS_TAG, "deliv", alert_id)

    def inflight(self, alert_id: str, channel: str) -> str:  # HASH url index -> "sending" mark or answer, until
        return self.k(ALERTS_TAG, "sending", alert_id, channel)  # the delivery record holds the attempt's outcome

    @property
    def index(self) -> str:  # ZSET alert id -> created
        return self.k(ALERTS_TAG, "index")

    @property
    def unpublished(self) -> str:  # ZSET alert id -> created; written but not yet in the outbox stream
        return self.k(ALERTS_TAG, "unpublished")

    def due(self, channel: str) -> str:  # ZSET alert id -> when to send (first try and retries)
        return self.k(ALERTS_TAG, "due", channel)

    def throttle(self, channel: str, rule_id: str) -> str:  # HASH until, count
        return self.k(ALERTS_TAG, "throttle", channel, rule_id)

    def held(self, channel: str) -> str:  # LIST alert ids waiting for a digest
        return self.k(ALERTS_TAG, "held", channel)

    def held_due(self, channel: str) -> str:  # when the held list is sent
        return self.k(ALERTS_TAG, "held-due", channel)

    def digest_items(self, digest_id: str) -> str:  # LIST alert ids taken into one digest
        return self.k(ALERTS_TAG, "digest", digest_id)

    @property
    def digests_open(self) -> str:  # SET "channel\tdigest_id" taken from held but not yet queued
        return self.k(ALERTS_TAG, "digests-open")

    @property
    def digest_seq(self) -> str:
        return self.k(ALERTS_TAG, "digest-seq")
