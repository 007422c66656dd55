"""The periodic jobs of a running instance, as public functions, and the scheduler that runs them.

`tick` claims due sources and starts their polls (it is also the heartbeat the watchdog and /healthz look at); the
others flush digests, republish stale outbox entries, apply retention, refresh gauges and check sources' health.
Each job but the tick and the watchdog is guarded: while Redis is away it does nothing (the outage is logged once),
and one failure is one log line, not the end of the job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from . import metrics
from .config import Config
from .feedstate import StateLost
from .health import Liveness
from .operator import OperatorAlerts
from .pipeline import Pipeline
from .stateloss import StateWatch
from .store import is_unavailable
from .systemd import Notifier

log = logging.getLogger(__name__)


@dataclass
class Jobs:
    config: Config
    notifier: Notifier
    live: Liveness
    pipeline: Pipeline | None = None  # set once the instance has started
    _reloads_seen: tuple[int, int] = (0, 0)
    _state: StateWatch | None = field(default=None, init=False)
    _operator: OperatorAlerts | None = field(default=None, init=False)

    @property
    def state(self) -> StateWatch:
        if self._state is None:
            self._state = StateWatch(self._pipeline(), self.live)
        return self._state

    @property
    def operator(self) -> OperatorAlerts:
        if self._operator is None:
            self._operator = OperatorAlerts(self._pipeline())
        return self._operator

    def _pipeline(self) -> Pipeline:
        if self.pipeline is None:
            raise RuntimeError("the instance has not started: no pipeline")
        return self.pipeline

    # --- the jobs -----------------------------------------------------------------------------------------------

    async def tick(self, stopping: bool = False) -> None:
        """Claim due feeds and start polling them; the heartbeat the watchdog and /healthz look at."""
        if stopping:
            return
        pipeline = self._pipeline()
        self.live.heartbeat = time.monotonic()  # the loop runs; whether Redis answers is health's other question
        try:
            due = await pipeline.poller.claim_due(now=time.time())
        except StateLost as lost:
            await self.state.rebuild(lost)
            return
        except Exception as exc:  # noqa: BLE001 - Redis away: say so, keep ticking
            if is_unavailable(exc):
                self.live.redis_unreachable(exc)
            else:
                log.error("cannot claim due feeds: %s: %s", type(exc).__name__, exc)
            return
        if not self.live.redis_ok:
            self.live.redis_reachable()
        self.state.note_intact()
        for feed, at in due:
            pipeline.poller.start(feed, at)

    async def watchdog(self) -> None:
        """WATCHDOG=1 only while the scheduler ticks: a wedged loop stops the pings and systemd restarts us."""
        if self.live.ticking(self.config.pipeline.tick):
            self.notifier.watchdog()

    async def digests(self) -> None:
        await self._pipeline().deliverer.flush_due_digests(time.time())

    async def outbox_sweep(self) -> None:
        await self._pipeline().outbox.republish_stale()

    async def retention(self) -> None:
        pipeline, now = self._pipeline(), time.time()
        dropped = await pipeline.feed_store.expire_seen(older_than=now - self.config.pipeline.seen_retention)
        pruned = await pipeline.archive.prune(now=now)
        log.info("retention: %d seen URLs and %d archived articles dropped", dropped, pruned)

    async def refresh_gauges(self) -> None:
        """Stream sizes from Redis (every 15 s and on each scrape of /metrics) and the rule reload counters."""
        self.count_reloads()
        for stream in self._pipeline().streams:
            metrics.stream_length.labels(stream.name).set(await stream.length())
            metrics.stream_pending.labels(stream.name).set(await stream.pending_count())
            lag = await stream.lag()
            if lag is not None:
                metrics.stream_lag.labels(stream.name).set(lag)
            metrics.dead_letters.labels(stream.name).set(await stream.dead_count())

    async def feed_health(self) -> None:
        """Operator alerts for feeds failing longer than `service.feed_failing_alert_after`, and their recovery."""
        await self.operator.feed_health()

    async def articles_health(self) -> None:
        """Sources whose pages all fail (pipeline.articles_failing_after in a row), from the stats every instance
        writes: the per-source gauge, /healthz's warnings, and one operator alert per episode (and its recovery)."""
        p = self._pipeline()
        after = self.config.pipeline.articles_failing_after
        stats = await p.source_stats.many(sorted(p.feeds))
        for feed_id, st in stats.items():
            failing = st.failing(after)
            metrics.source_articles_failing.labels(feed_id).set(int(failing))
            if failing:
                p.articles_failing[feed_id] = st.last_error
            else:
                p.articles_failing.pop(feed_id, None)
            if self.config.service.operator_channel:
                await self.operator.articles(feed_id, st, failing)

    def count_reloads(self) -> None:
        """The watcher counts its reloads (file changes and SIGHUP alike); the Prometheus counters follow it."""
        if self.pipeline is None:
            return
        rules = self.pipeline.rules
        ok, failed = getattr(rules, "reloads_ok", 0), getattr(rules, "reloads_failed", 0)
        seen_ok, seen_failed = self._reloads_seen
        if ok > seen_ok:
            metrics.rule_reloads.labels("ok").inc(ok - seen_ok)
        if failed > seen_failed:
            metrics.rule_reloads.labels("failed").inc(failed - seen_failed)
        self._reloads_seen = (ok, failed)

    # --- running them ---------------------------------------------------------------------------------------------

    def guard(self, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            if not self.live.redis_ok:  # the outage is logged once by redis_unreachable; the next run does the work
                return
            try:
                await fn()
            except Exception as exc:  # noqa: BLE001 - a periodic job must not die with one failure
                if is_unavailable(exc):
                    self.live.redis_unreachable(exc)
                    return
                log.error("job %s failed: %s: %s", getattr(fn, "__name__", fn), type(exc).__name__, exc)
        return job

    def watchdog_period(self) -> float:
        interval = self.notifier.watchdog_interval
        return max(0.5, interval / 2) if interval else 30.0

    def feed_health_period(self) -> float:
        return min(60.0, max(0.5, self.config.service.feed_failing_alert_after / 4))


def quiet_when_stopping(fn: Callable[[], Awaitable[Any]], is_stopping: Callable[[], bool]) -> Callable[[], Any]:
    """`fn` as a job that, cancelled by the daemon's shutdown (`scheduler.shutdown` cancels the runs in flight),
    ends quietly: apscheduler would log the cancellation as the job's failure, with a traceback. A look at the due
    feeds cut off that way claimed nothing the poller holds; what its script may have leased is due again when the
    lease ends."""
    async def job() -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            if not is_stopping():
                raise

    job.__name__ = getattr(fn, "__name__", "job")
    return job


def build_scheduler(jobs: Jobs, *, is_stopping: Callable[[], bool]) -> AsyncIOScheduler:
    """Every job on its interval; a run still going when the next is due is skipped (max_instances=1)."""
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)  # that skip is by design: no warning
    sched = AsyncIOScheduler(timezone="UTC")
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}

    async def tick() -> None:
        await jobs.tick(stopping=is_stopping())

    def add(fn: Callable[[], Awaitable[Any]], job_id: str, **trigger: Any) -> None:
        sched.add_job(quiet_when_stopping(fn, is_stopping), "interval", id=job_id, **trigger, **common)

    add(tick, "tick", seconds=jobs.config.pipeline.tick)
    add(jobs.watchdog, "watchdog", seconds=jobs.watchdog_period())
    add(jobs.guard(jobs.digests), "digests", seconds=30)
    add(jobs.guard(jobs.outbox_sweep), "outbox-sweep", minutes=2)
    add(jobs.guard(jobs.retention), "retention", hours=1)
    add(jobs.guard(jobs.refresh_gauges), "gauges", seconds=15)
    add(jobs.guard(jobs.articles_health), "articles-health", seconds=15)
    if jobs.config.service.operator_channel:
        add(jobs.guard(jobs.feed_health), "feed-health", seconds=jobs.feed_health_period())
    return sched
