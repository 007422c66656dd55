"""The stages wired together, one per stream, and what runs them once (`run --once`).

    poll a source  -> "entries"  -> fetch + extract -> "articles" -> story + match + submit -> "alerts" -> deliver

Each handler takes one message, publishes what it produced to the next stream, and is acknowledged only then; a
retry repeats only its own step (an outbox retry never fetches the page again). Any instance may take up what
another one started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import metrics
from .alerts.deliver import Deliverer
from .alerts.outbox import Outbox
from .archive import ArticleArchive
from .config import Config
from .dedup import StoryIndex
from .errors import MonitorError, PermanentError, RetryAfter, TransientError
from .extract import extract_article
from .feedstate import FeedStore
from .feedtext import feed_article, has_full_text
from .models import ARTICLES, ENTRIES, TEXT_FROM_PAGE, Article, Entry, Feed, Match
from .hosts import LEASE_MARGIN, SharedHosts
from .language import load_model as load_language_model
from .net import Fetcher
from .poller import Poller
from .redact import redact_url
from .rules import RuleWatcher
from .sources.directory import read_local
from .sources.feed import poll_feed
from .sourcestats import SourceStats
from .store import Keys
from .store.articles import MatchedArticles
from .store.matched import MatchedRules
from .streams import Message, Stream
from .workers import WorkerCrashed, WorkerOutOfMemory, WorkerPool, WorkerTimeout

log = logging.getLogger(__name__)


def build_pipeline(config: Config, redis: Any, rules: RuleWatcher) -> Pipeline:
    """The pipeline of one instance: its fetcher (per-host limits and Retry-After holds shared with every instance
    on this Redis), its extraction workers (forked after the language model is loaded, so they share it)."""
    keys = Keys(config.redis.prefix)
    fetcher = Fetcher(config.fetch, shared=SharedHosts(redis, keys, per_host=config.fetch.per_host,
                                                       lease=config.fetch.timeout + LEASE_MARGIN))
    load_language_model()
    pool = WorkerPool(processes=config.workers.processes, memory_limit_mb=config.workers.memory_limit_mb,
                      zygote=config.workers.zygote)
    return Pipeline(config=config, redis=redis, keys=keys, fetcher=fetcher, pool=pool, rules=rules,
                    consumer=config.consumer_name())


@dataclass
class Pipeline:
    """Everything the stages need, built once by the daemon (or a test) and handed in."""

    config: Config
    redis: Any
    keys: Keys
    fetcher: Fetcher
    pool: WorkerPool
    rules: RuleWatcher
    consumer: str
    feeds: dict[str, Feed] = field(default_factory=dict)
    feed_store: FeedStore = field(init=False)
    source_stats: SourceStats = field(init=False)
    entries: Stream = field(init=False)
    articles: Stream = field(init=False)
    stories: StoryIndex = field(init=False)
    archive: ArticleArchive = field(init=False)
    matched: MatchedArticles = field(init=False)
    outbox: Outbox = field(init=False)
    deliverer: Deliverer = field(init=False)
    poller: Poller = field(init=False)
    last_poll_success: float = 0.0  # unix time; /healthz reports its age
    polls_failed: set[str] = field(default_factory=set)  # sources whose last poll here failed (run --once's exit)
    articles_failing: dict[str, str] = field(default_factory=dict)  # source id -> last page error, while failing

    def __post_init__(self) -> None:
        c, p = self.config, self.config.pipeline
        self.feed_store = FeedStore(self.redis, self.keys)
        self.source_stats = SourceStats(self.redis, self.keys)
        self.entries = Stream(self.redis, self.keys, ENTRIES, consumer=self.consumer,
                              max_deliveries=p.max_deliveries, claim_idle=p.claim_idle,
                              burst_backoff=p.burst_backoff, describe=self._describe_entry)
        # articles carry their text (up to extract.max_text_chars): each is deleted from the stream once handled
        self.articles = Stream(self.redis, self.keys, ARTICLES, consumer=self.consumer,
                               max_deliveries=p.max_deliveries, claim_idle=p.claim_idle,
                               burst_backoff=p.burst_backoff, describe=self._describe_article, delete_on_ack=True)
        self.stories = StoryIndex(self.redis, self.keys, settings=c.dedup)
        self.archive = ArticleArchive(self.redis, self.keys, settings=c.archive)
        self.matched = MatchedArticles(self.redis, archive=self.archive, matched=MatchedRules(self.redis, self.keys),
                                       stories=self.stories.store)
        self.deliverer = Deliverer(self.redis, self.keys, settings=c.alerts, channels=c.channels,
                                   consumer=self.consumer, data_dir=c.data_dir)
        self.outbox = Outbox(self.redis, self.keys, settings=c.alerts, channels=c.channels,
                             store=self.deliverer.store)  # one alert store (and outbox stream) for both
        self.feeds = {f.id: f for f in c.feeds()}
        self.poller = Poller(self)
        self._directory_roots = [Path(urlsplit(f.url).path) for f in self.feeds.values() if f.kind == "directory"]

    # --- stage 1: poll a source ---------------------------------------------------------------------------------

    async def poll_source(self, feed: Feed) -> int:
        """Poll one feed or directory; publish its new entries to the entries stream. Returns how many."""
        now = time.time()
        state = await self.feed_store.state(feed.id)
        try:
            result = await poll_feed(feed, etag=state.etag, last_modified=state.last_modified, fetcher=self.fetcher,
                                     pool=self.pool, parse_timeout=self.config.workers.parse_timeout,
                                     tracking=self.config.dedup.tracking_params)
        except MonitorError as exc:
            self.polls_failed.add(feed.id)
            await self._poll_failed(feed, exc, now)
            return 0
        self.polls_failed.discard(feed.id)
        found = result.entries
        # publish before marking seen: a crash in between repeats entries (handled idempotently), never loses them
        new = await self.feed_store.unseen(found)
        if state.baseline_since is not None:  # the first poll after Redis lost its state
            new = await self._baseline(feed, new, since=state.baseline_since, now=now)
        await self.entries.publish_many([entry.to_dict() for entry in new])
        await self.feed_store.mark_seen(new, now=now)
        metrics.entries.labels("new").inc(len(new))
        metrics.entries.labels("seen").inc(len(found) - len(new))
        metrics.polls.labels("not_modified" if result.not_modified else "ok").inc()
        self.last_poll_success = time.time()
        metrics.last_poll_success.set(self.last_poll_success)
        # the next check counts from now, the poll's end: a poll that queued for its host's shared slot must not
        # bring the next request closer than one interval to this one
        await self.feed_store.record_success(
            feed.id, now=time.time(), interval=feed.interval, jitter=feed.interval * self.config.sources.jitter,
            etag=result.etag, last_modified=result.last_modified, new_entries=len(new), title=result.title)
        if result.bozo_reason:
            log.info("feed %s (%s): ill-formed, kept %d entries: %s", self.source_label(feed.id),
                     redact_url(feed.url), len(found), result.bozo_reason)
        log.info("feed %s: %d entries, %d new%s", self.source_label(feed.id), len(found), len(new),
                 " (not modified)" if result.not_modified else "")
        return len(new)

    async def _baseline(self, feed: Feed, entries: list[Entry], *, since: float, now: float) -> list[Entry]:
        """After a state loss nothing is known seen: entries published before `since` (the last moment the state
        was known intact) less one interval, or undated, are marked seen without alerting; the newer ones are new."""
        cutoff = since - feed.interval
        quiet, fresh = [], []
        for entry in entries:
            (fresh if _published_after(entry, cutoff) else quiet).append(entry)
        await self.feed_store.mark_seen(quiet, now=now)
        log.warning("feed %s: first poll since Redis lost its state: %d entries published before %s or undated "
                    "marked seen without alerting (their alerts, if any, were sent before); %d newer handled as new",
                    feed.id, len(quiet), datetime.fromtimestamp(cutoff, timezone.utc).isoformat(timespec="seconds"),
                    len(fresh))
        return fresh

    async def _poll_failed(self, feed: Feed, exc: MonitorError, now: float) -> None:
        kind = "retry_after" if isinstance(exc, RetryAfter) else "transient" if isinstance(exc, TransientError) \
            else "permanent"
        metrics.polls.labels("error").inc()
        metrics.fetch_errors.labels(kind).inc()
        next_check = await self.feed_store.record_error(feed.id, exc, now=now, interval=feed.interval,
                                                        max_backoff=self.config.sources.max_backoff)
        delay = next_check - now  # record_error returns the due time, not the delay
        log.warning("feed %s (%s): %s: %s; next try in %.0fs", self.source_label(feed.id), redact_url(feed.url),
                    type(exc).__name__, exc, delay)

    def source_label(self, feed_id: str) -> str:
        """How log lines name a source: its `name:` with the id, else the id."""
        feed = self.feeds.get(feed_id)
        return f"{feed.name} [{feed_id}]" if feed is not None and feed.name else feed_id

    def _describe_entry(self, message: Message) -> str:
        payload = message.payload
        return f"entry {payload.get('url', message.id)} of {self.source_label(str(payload.get('feed_id', '?')))}"

    def _describe_article(self, message: Message) -> str:
        payload = message.payload
        return f"article {payload.get('url', message.id)} of {self.source_label(str(payload.get('feed_id', '?')))}"

    @property
    def streams(self) -> tuple[Stream, ...]:
        """The work streams in their order, the alert outbox last (gauges, hand-back on shutdown)."""
        return self.entries, self.articles, self.deliverer.stream

    # --- stage 2: an entry -> its article (the page fetched and extracted, or the feed's text) -> "articles" ------

    async def handle_entry(self, message: Message) -> None:
        """Stream handler of "entries": the stream logs what fails (one line) and decides retry or dead-letter."""
        entry = Entry.from_dict(message.payload)
        article = await self.article_for(entry, last_try=message.deliveries >= self.config.pipeline.max_deliveries)
        await self.articles.publish(article.to_dict())

    # --- stage 3: an article -> its story -> the rules -> the alert outbox ---------------------------------------

    async def handle_article(self, message: Message) -> None:
        """Stream handler of "articles". Every step is idempotent: a retry (e.g. the outbox asks for one while a
        story's first alert is being written) repeats this stage only."""
        await self.match_article(Article.from_dict(message.payload))

    async def match_article(self, article: Article) -> list[Match]:
        assignment = await self.stories.assign(article)
        article = replace(article, story_id=assignment.story_id, fingerprint=assignment.fingerprint)
        metrics.articles.labels("duplicate" if assignment.exact_duplicate else "extracted"
                                if article.text_from == TEXT_FROM_PAGE else "feed_text").inc()
        matches = self.rules.current.match(article)
        # one round trip: the archive entry, the rules that fired (for replay) and, when some did, the story's copies
        sources = await self.matched.record(article, [m.rule_id for m in matches], now=time.time(),
                                            ttl=self.config.archive.retention_days * 86400,
                                            story_id=assignment.story_id)
        for match in matches:
            metrics.matches.labels(match.rule_id).inc()
            match = self._route(match, article.feed_id)
            alert = await self.outbox.submit(match, article, story_id=assignment.story_id, sources=sources)
            if alert is not None:
                metrics.alerts.labels(alert.kind).inc()
                log.info("rule %s fired on %s (story %s): alert %s (%s)", match.rule_id, article.url,
                         assignment.story_id, alert.id, alert.kind)
        return matches

    def _route(self, match: Match, feed_id: str) -> Match:
        """A source may name channels of its own: its alerts go there as well as to the rule's."""
        feed = self.feeds.get(feed_id)
        if feed is None or not feed.channels:
            return match
        base = match.channels or tuple(self.config.alerts.default_channels)
        return replace(match, channels=tuple(dict.fromkeys(base + feed.channels)))

    async def article_for(self, entry: Entry, *, last_try: bool = False) -> Article:
        """The entry's article, as its source's `fetch_page` says: the feed's own full text, the page, or (the page
        failed for good, or on the last try) the feed's content, summary or title. Counted per source."""
        feed = self.feeds.get(entry.feed_id)
        mode = feed.fetch_page if feed is not None else "auto"
        if entry.url.startswith("file:"):
            return await self.fetch_article(entry)
        if mode == "never" or (mode == "auto" and has_full_text(entry, min_chars=self.config.extract.min_chars)):
            await self.source_stats.from_feed(entry.feed_id)
            return self._feed_article(entry)
        try:
            article = await self.fetch_article(entry)
        except MonitorError as exc:
            if isinstance(exc, (WorkerTimeout, WorkerCrashed, WorkerOutOfMemory)):
                metrics.worker_restarts.labels(type(exc).__name__).inc()
            final = isinstance(exc, PermanentError) or last_try
            error = f"{type(exc).__name__}: {exc}"
            streak = await self.source_stats.page_error(entry.feed_id, error, url=redact_url(entry.url), final=final)
            metrics.articles.labels("failed").inc(int(final))
            if final:  # a try that will be retried changes nothing about the source's health
                self._articles_health(entry.feed_id, streak, error)
            if not final or mode == "always":
                raise
            await self.source_stats.from_feed(entry.feed_id)
            article = self._feed_article(entry)
            log.warning("entry %s of %s: page failed, matching on the %s: %s", entry.url,
                        self.source_label(entry.feed_id), article.text_from, error)
            return article
        await self.source_stats.page_ok(entry.feed_id)
        self._articles_health(entry.feed_id, 0, "")
        return article

    def _feed_article(self, entry: Entry) -> Article:
        return replace(feed_article(entry, max_chars=self.config.extract.max_text_chars), fetched_at=utcnow_iso())

    def _articles_health(self, feed_id: str, streak: int, error: str) -> None:
        """Keep the per-source gauge and the set /healthz reports in step with the page failure streak."""
        if 0 < self.config.pipeline.articles_failing_after <= streak:
            metrics.source_articles_failing.labels(feed_id).set(1)
            self.articles_failing[feed_id] = error
        elif streak == 0:  # a page that worked; a failure never makes a source healthier (they finish in any order)
            metrics.source_articles_failing.labels(feed_id).set(0)
            self.articles_failing.pop(feed_id, None)

    async def fetch_article(self, entry: Entry) -> Article:
        """Fetch (or read) the page and extract it in a worker process. Failures name the URL."""
        if entry.url.startswith("file:"):
            page = read_local(entry.url, roots=self._directory_roots, max_bytes=self.config.fetch.max_bytes)
        else:
            feed = self.feeds.get(entry.feed_id)
            page = await self.fetcher.get(entry.url, robots=feed.robots if feed else self.config.fetch.robots)
        article = await self.pool.run(
            extract_article, page.body, timeout=self.config.extract.timeout, url=entry.url,
            content_type=page.content_type, encoding=page.encoding, feed_id=entry.feed_id, source=entry.source,
            entry_title=entry.title, entry_published=entry.published, min_chars=self.config.extract.min_chars,
            max_chars=self.config.extract.max_text_chars)
        return replace(article, fetched_at=utcnow_iso())

    # --- one cycle (run --once, tests) --------------------------------------------------------------------------

    async def sync_feeds(self) -> bool:
        """True if Redis held no state marker (a first start, or state lost while no instance ran)."""
        return await self.feed_store.sync_feeds(list(self.feeds.values()), now=time.time())

    async def poll_all(self, feeds: list[Feed] | None = None) -> int:
        """Poll the given (default: every) source now, whatever its schedule; the new entries' count."""
        return await self.poller.poll_now(feeds)

    async def drain(self, stop: asyncio.Event | None = None) -> None:
        """Process every entry and deliver every alert that is waiting, then return (burst mode)."""
        stop = stop or asyncio.Event()
        await self.entries.consume(self.handle_entry, stop=stop, burst=True,
                                   concurrency=self.config.pipeline.page_concurrency)
        await self.articles.consume(self.handle_article, stop=stop, burst=True,
                                    concurrency=self.config.pipeline.page_concurrency)
        await self.deliverer.run(stop, burst=True)

    async def run_once(self) -> int:
        await self.sync_feeds()
        new = await self.poll_all()
        await self.drain()
        return new

    async def close(self) -> None:
        """Stop the workers and the send processes, close the HTTP sessions (Redis is the caller's)."""
        self.pool.close()
        self.deliverer.close()
        await self.fetcher.close()

    def all_polls_failed(self) -> bool:
        """Every configured source failed its last poll here (run --once exits non-zero then)."""
        return bool(self.feeds) and set(self.feeds) <= self.polls_failed


def _published_after(entry: Entry, cutoff: float) -> bool:
    """True if the entry's published time (ISO 8601; naive = UTC) is after `cutoff` (Unix time)."""
    try:
        when = datetime.fromisoformat(entry.published or "")
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() > cutoff


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
