"""Lifecycle of one `monitor run` instance: start-up, the long-running loops, signals, health, shutdown.

SIGTERM stops claiming work, lets in-flight work finish within `service.shutdown_grace`, then cancels; SIGHUP reloads
the rules and the list of sources. systemd hears READY=1 once Redis answers and rules are loaded, WATCHDOG=1 only
while the scheduler ticks, and STOPPING=1 on the way out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics
from .alerts.channels import resolve_channel_urls
from .config import Config, known_channels, load_config
from .errors import ConfigError, MonitorError, TransientError
from .feedstate import StateLost
from .hosts import LEASE_MARGIN, SharedHosts
from .language import load_model as load_language_model
from .models import Feed
from .net import Fetcher, redact_url
from .pipeline import Pipeline
from .rules import RuleWatcher
from .store import EmbeddedRedis, Keys, open_redis
from .systemd import Notifier
from .workers import WorkerPool

log = logging.getLogger(__name__)

REDIS_DOWN_LOG_EVERY = 60.0  # while Redis stays unreachable, repeat the error this often (not on every tick)
OPS_MARKER_TTL = 90 * 86400  # operator-alert markers of feeds that vanished from the configuration expire
STATE_LOSS_WARN_FOR = 86400.0  # /healthz warns this long after Redis lost the state
STATE_FILE = "redis-state.json"  # in data_dir: when this instance last saw its Redis state intact, per prefix
STATE_FILE_EVERY = 60.0  # seconds between updates of it


class AllSourcesFailed(TransientError):
    """run --once: not one source could be polled."""


@dataclass
class Daemon:
    config: Config
    notifier: Notifier = field(default_factory=Notifier)
    redis: Any = None
    embedded: EmbeddedRedis | None = None
    pipeline: Pipeline | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    heartbeat: float = field(default_factory=time.monotonic)
    redis_ok: bool = False
    redis_down_since: float | None = None  # monotonic time of the first failure of the current outage
    _redis_up: asyncio.Event = field(default_factory=asyncio.Event)
    _redis_logged: float = 0.0
    _reloads_seen: tuple[int, int] = (0, 0)
    _in_flight: set[asyncio.Task[Any]] = field(default_factory=set)
    _polling: set[str] = field(default_factory=set)  # feeds whose poll runs now (leased by this instance)
    _poll_slots: asyncio.Semaphore | None = None
    config_error: str | None = None  # the last configuration reload failed with this (the running one stays)
    rebuild_error: str | None = None  # Redis lost the state and rebuilding the schedule failed (retried each tick)
    starting: bool = False  # run() is starting up: /healthz is served from before Redis is opened, and says so
    _state_noted: float = 0.0  # when STATE_FILE was last written

    async def start(self) -> Pipeline:
        """Connect (or start the embedded Redis), load rules, build the pipeline. Raises MonitorError."""
        c = self.config
        # what the configuration names must exist before anything starts: rules and their channels, secrets
        rules = RuleWatcher(c.rules.path, on_change=self._rules_changed,  # RuleError: no (valid) rules, no start
                            known_channels=known_channels(c))
        resolve_channel_urls(c.channels, source=c.source_path)  # ConfigError naming the file, channel and secret
        self.redis, self.embedded = await open_redis(c.redis.url, c.data_dir, timeout=c.redis.connect_timeout)
        try:
            self.redis_reachable()
            keys = Keys(c.redis.prefix)
            # one per-host limit and Retry-After hold for every instance on this Redis (hosts.py)
            fetcher = Fetcher(c.fetch, shared=SharedHosts(self.redis, keys, per_host=c.fetch.per_host,
                                                          lease=c.fetch.timeout + LEASE_MARGIN))
            load_language_model()  # before the workers fork, so they share it
            pool = WorkerPool(processes=c.workers.processes, memory_limit_mb=c.workers.memory_limit_mb)
            self.pipeline = Pipeline(config=c, redis=self.redis, keys=keys, fetcher=fetcher,
                                     pool=pool, rules=rules, consumer=c.consumer_name())
            await self._check_state_at_start(await self.pipeline.sync_feeds())
        except BaseException:
            await self.close()  # the embedded redis-server and the workers must not outlive a failed start
            raise
        log.info("started: %d sources, %d rules (version %s), consumer %s", len(self.pipeline.feeds),
                 len(rules.current.rules), rules.current.version, self.pipeline.consumer)
        return self.pipeline

    async def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.pool.close()
            await self.pipeline.fetcher.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.embedded is not None:
            self.embedded.stop()

    def _rules_changed(self, ruleset: Any) -> None:
        """The watcher logs the change; reload counters are taken from the watcher (see _count_reloads)."""

    # --- Redis reachability: one place decides, logs the change (not every failure) and wakes waiting loops ------

    def redis_reachable(self) -> None:
        if self.redis_down_since is not None:
            log.warning("Redis reachable again after %.0fs; resuming", time.monotonic() - self.redis_down_since)
        self.redis_ok, self.redis_down_since = True, None
        metrics.redis_up.set(1)
        self._redis_up.set()

    def redis_unreachable(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.redis_down_since is None:
            self.redis_down_since = now
            log.error("Redis unreachable: %s: %s; retrying with backoff, nothing is acknowledged meanwhile",
                      type(exc).__name__, exc)
            self._redis_logged = now
        elif now - self._redis_logged >= REDIS_DOWN_LOG_EVERY:
            log.error("Redis still unreachable after %.0fs: %s", now - self.redis_down_since, exc)
            self._redis_logged = now
        self.redis_ok = False
        metrics.redis_up.set(0)
        self._redis_up.clear()

    # --- run --once ---------------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """One cycle; raises AllSourcesFailed when every source failed to poll (`run --once` exits 1 then)."""
        pipeline = await self.start()
        try:
            new = await pipeline.run_once()
        finally:
            await self.close()
        if pipeline.all_polls_failed():
            raise AllSourcesFailed(f"run --once: every source failed to poll ({len(pipeline.feeds)} sources; "
                                 "monitor feeds shows why)")
        return new

    # --- run (forever) ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.starting = True
        runner = await self._serve_http()  # first: a port in use fails before Redis or workers are started
        try:
            pipeline = await self.start()
            try:
                await self._run_loops(pipeline)
            finally:
                await self.close()
                log.info("stopped")
        finally:
            if runner is not None:
                await runner.cleanup()

    async def _run_loops(self, pipeline: Pipeline) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        self._poll_slots = asyncio.Semaphore(self.config.pipeline.feed_concurrency)
        # a tick still running when the next is due is skipped by design (max_instances=1): not worth a warning
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        scheduler = self._scheduler(pipeline)
        loops = [
            asyncio.create_task(self._supervise("entries", lambda: pipeline.entries.consume(
                pipeline.handle_entry, stop=self.stop, concurrency=self.config.pipeline.page_concurrency))),
            asyncio.create_task(self._supervise("articles", lambda: pipeline.articles.consume(
                pipeline.handle_article, stop=self.stop, concurrency=self.config.pipeline.page_concurrency))),
            asyncio.create_task(self._supervise("delivery", lambda: pipeline.deliverer.run(self.stop))),
        ]
        if self.config.rules.watch:
            loops.append(asyncio.create_task(self._supervise("rules", lambda: pipeline.rules.watch(self.stop))))
        scheduler.start()
        await self._tick()
        self.starting = False
        self.notifier.ready(f"{len(pipeline.feeds)} sources, {len(pipeline.rules.current.rules)} rules")
        try:
            await self.stop.wait()
        finally:
            self.notifier.stopping()
            scheduler.shutdown(wait=False)
            await self._drain(loops)
            await self._hand_back(pipeline)

    def request_stop(self, why: str = "") -> None:
        if not self.stop.is_set():
            log.info("stopping (%s): no new work is claimed; in-flight work has %gs", why,
                     self.config.service.shutdown_grace)
            self.stop.set()

    async def _drain(self, loops: list[asyncio.Task[Any]]) -> None:
        pending = set(loops) | self._in_flight
        done, still = await asyncio.wait(pending, timeout=self.config.service.shutdown_grace) if pending else ((), ())
        for task in still:
            task.cancel()
        if still:
            log.warning("%d tasks did not finish within the grace period; cancelled (their messages stay pending "
                        "and another instance takes them over)", len(still))
            await asyncio.gather(*still, return_exceptions=True)

    async def _hand_back(self, pipeline: Pipeline) -> None:
        """What this instance still holds (cancelled or failed work) becomes claimable by the others at once."""
        if self._polling:
            try:
                await asyncio.wait_for(pipeline.feed_store.release(sorted(self._polling), now=time.time()), 5.0)
                log.info("%d feeds whose polls were cancelled are due again now: %s", len(self._polling),
                         ", ".join(sorted(self._polling)))
            except Exception as exc:  # noqa: BLE001 - their leases run out anyway
                log.warning("could not release %d leased feeds (%s); they are due when the lease ends",
                            len(self._polling), exc)
        for stream in pipeline.streams:
            try:
                count = await asyncio.wait_for(stream.hand_back(), timeout=5.0)
            except Exception as exc:  # noqa: BLE001 - Redis away: the messages come back after claim_idle anyway
                log.warning("stream %s: could not hand back pending messages (%s: %s); others take them over "
                            "after claim_idle", stream.name, type(exc).__name__, exc)
                continue
            if count:
                log.info("stream %s: %d pending messages handed back to the other instances", stream.name, count)

    async def _supervise(self, name: str, make: Callable[[], Awaitable[Any]]) -> None:
        """Keep a long-running loop alive: the one place that catches broad exceptions."""
        delay = 1.0
        while not self.stop.is_set():
            try:
                await make()
                delay = 1.0
                if not self.stop.is_set():
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the daemon loop must survive anything
                down = _is_redis_down(exc)
                if down:  # said once by redis_unreachable; the loop resumes as soon as Redis answers again
                    self.redis_unreachable(exc)
                    log.debug("%s loop stopped by the Redis outage; restarting when it is back", name)
                else:
                    log.error("%s loop failed: %s: %s; restarting in %.0fs", name, type(exc).__name__, exc, delay,
                              exc_info=not isinstance(exc, (MonitorError, ConnectionError, OSError)))
                    metrics.loop_restarts.labels(name).inc()
                await self._pause(delay, wake_on_redis=down)
                delay = min(delay * 2, 30.0)

    async def _pause(self, delay: float, *, wake_on_redis: bool) -> None:
        """Sleep `delay` seconds, or less when stopping (or, after a Redis outage, as soon as Redis answers)."""
        waits = [asyncio.ensure_future(self.stop.wait())]
        if wake_on_redis:
            waits.append(asyncio.ensure_future(self._redis_up.wait()))
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    def _scheduler(self, pipeline: Pipeline) -> AsyncIOScheduler:
        p = self.config.pipeline
        sched = AsyncIOScheduler(timezone="UTC")
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}
        sched.add_job(self._tick, "interval", seconds=p.tick, id="tick", **common)
        sched.add_job(self._watchdog, "interval", seconds=self._watchdog_period(), id="watchdog", **common)
        sched.add_job(self._guard(self._digests), "interval", seconds=30, id="digests", **common)
        sched.add_job(self._guard(pipeline.outbox.republish_stale), "interval", minutes=2, id="outbox-sweep",
                      **common)
        sched.add_job(self._guard(self._retention), "interval", hours=1, id="retention", **common)
        sched.add_job(self._guard(self._refresh_gauges), "interval", seconds=15, id="gauges", **common)
        sched.add_job(self._guard(self._articles_health), "interval", seconds=15, id="articles-health", **common)
        if self.config.service.operator_channel:
            sched.add_job(self._guard(self._feed_health), "interval", seconds=self._feed_health_period(),
                          id="feed-health", **common)
        return sched

    def _guard(self, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            if not self.redis_ok:  # the outage is logged once by redis_unreachable; the next run will do the work
                return
            try:
                await fn()
            except Exception as exc:  # noqa: BLE001 - a periodic job must not die with one failure
                if _is_redis_down(exc):
                    self.redis_unreachable(exc)
                    return
                log.error("job %s failed: %s: %s", getattr(fn, "__name__", fn), type(exc).__name__, exc)
        return job

    async def _tick(self) -> None:
        """Claim due feeds and start polling them; the heartbeat the watchdog and /healthz look at."""
        assert self.pipeline is not None and self._poll_slots is not None
        if self.stop.is_set():
            return
        p = self.config.pipeline
        self.heartbeat = time.monotonic()  # the loop runs; whether Redis answers is health's other question
        try:
            free = max(0, p.claim_batch - len(self._in_flight))
            due = await self.pipeline.feed_store.claim_due(now=time.time(), limit=free, lease=p.lease) if free else []
        except StateLost as lost:
            await self._rebuild(lost)
            return
        except Exception as exc:  # noqa: BLE001 - Redis away: say so, keep ticking
            if _is_redis_down(exc):
                self.redis_unreachable(exc)
            else:
                log.error("cannot claim due feeds: %s: %s", type(exc).__name__, exc)
            return
        if not self.redis_ok:
            self.redis_reachable()
        if time.time() - self._state_noted >= STATE_FILE_EVERY:
            self._note_state_intact()
        for feed_id in due:
            feed = self.pipeline.feeds.get(feed_id)
            if feed is not None:
                self._spawn(self._poll(feed))

    def _state_path(self) -> Path:
        return Path(self.config.data_dir) / STATE_FILE

    def _note_state_intact(self) -> None:
        """Remember (in data_dir, if there is one) that this Redis prefix held our state now."""
        self._state_noted = now = time.time()
        path = self._state_path()
        if not path.parent.is_dir():
            return
        try:
            known = json.loads(path.read_text()) if path.exists() else {}
            known[self.config.redis.prefix] = {"intact_at": now}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(known))
            tmp.replace(path)
        except (OSError, ValueError) as exc:
            log.debug("cannot note the Redis state in %s: %s", path, exc)

    async def _check_state_at_start(self, marker_was_missing: bool) -> None:
        """A Redis without our marker while this data_dir says it had our state: lost while no instance ran."""
        assert self.pipeline is not None
        try:
            known = json.loads(self._state_path().read_text()).get(self.config.redis.prefix) or {}
            since = float(known["intact_at"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            since = None
        if marker_was_missing and since is not None:
            feeds = list(self.pipeline.feeds.values())
            await self.pipeline.feed_store.mark_baseline(feeds, since=since, now=time.time())
            metrics.state_losses.inc()
            log.error("Redis holds none of monitor's state, which it held at %s (%s): lost while no instance ran "
                      "(restarted without persistence or flushed). Entries seen before are unknown: each feed's "
                      "first poll marks those published before then (less its interval) seen without alerting",
                      _iso(since), self._state_path())
        self._note_state_intact()

    async def _rebuild(self, lost: StateLost) -> None:
        """Redis came back without our data: schedule every configured source again at once (first polls quiet)."""
        assert self.pipeline is not None
        if not self.redis_ok:
            self.redis_reachable()
        now = time.time()
        since = lost.intact_at or now
        try:
            won = await self.pipeline.feed_store.rebuild(list(self.pipeline.feeds.values()), now=now, since=since)
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            self.rebuild_error = f"{type(exc).__name__}: {exc}"
            log.error("Redis lost monitor's state and rebuilding the schedule failed (%s); retrying at the next "
                      "tick", self.rebuild_error)
            return
        self.rebuild_error = None
        if won:
            metrics.state_losses.inc()
            log.error("Redis lost monitor's state (the schedule's marker is gone: restarted without persistence or "
                      "flushed); %d sources scheduled again from the configuration. Entries seen before are "
                      "unknown: each feed's first poll marks those published before %s (less its interval) "
                      "seen without alerting; entries and alerts that were queued in Redis are lost",
                      len(self.pipeline.feeds),
                      _iso(since))

    async def _poll(self, feed: Feed) -> None:
        assert self.pipeline is not None and self._poll_slots is not None
        self._polling.add(feed.id)  # stays there only if the poll is cancelled (shutdown): see _hand_back
        async with self._poll_slots:
            try:
                await self.pipeline.poll_source(feed)
            except Exception as exc:  # noqa: BLE001 - one feed must not take the scheduler down
                log.error("feed %s (%s): poll failed unexpectedly: %s: %s", feed.id, redact_url(feed.url),
                          type(exc).__name__, exc, exc_info=True)
        self._polling.discard(feed.id)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _watchdog_period(self) -> float:
        interval = self.notifier.watchdog_interval
        return max(0.5, interval / 2) if interval else 30.0

    async def _watchdog(self) -> None:
        """WATCHDOG=1 only while the scheduler ticks: a wedged loop stops the pings and systemd restarts us."""
        if time.monotonic() - self.heartbeat < max(3 * self.config.pipeline.tick, 30):
            self.notifier.watchdog()

    async def _digests(self) -> None:
        assert self.pipeline is not None
        await self.pipeline.deliverer.flush_due_digests(time.time())

    async def _retention(self) -> None:
        assert self.pipeline is not None
        now = time.time()
        dropped = await self.pipeline.feed_store.expire_seen(older_than=now - self.config.pipeline.seen_retention)
        pruned = await self.pipeline.archive.prune(now=now)
        log.info("retention: %d seen URLs and %d archived articles dropped", dropped, pruned)

    async def _refresh_gauges(self) -> None:
        """Stream sizes from Redis (every 15 s and on each scrape of /metrics) and the rule reload counters."""
        assert self.pipeline is not None
        self._count_reloads()
        for stream in self.pipeline.streams:
            metrics.stream_length.labels(stream.name).set(await stream.length())
            metrics.stream_pending.labels(stream.name).set(await stream.pending_count())
            lag = await stream.lag()
            if lag is not None:
                metrics.stream_lag.labels(stream.name).set(lag)
            metrics.dead_letters.labels(stream.name).set(await stream.dead_count())

    def _count_reloads(self) -> None:
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

    # --- operator alerts: a feed failing for long, and its recovery -----------------------------------------------

    def _feed_health_period(self) -> float:
        return min(60.0, max(0.5, self.config.service.feed_failing_alert_after / 4))

    async def _feed_health(self) -> None:
        """One operator alert when a feed has failed for `feed_failing_alert_after`, one when it recovers.

        Any instance may run this; SET NX / DEL on per-feed markers make exactly one of them send each alert.
        """
        assert self.pipeline is not None
        states = await self.pipeline.feed_store.states()
        # healthy feeds that ever failed may carry markers: one pipelined round trip clears them
        healthy = [s for s in states if s.error_streak == 0 and s.last_error_at is not None]
        if healthy:
            async with self.redis.pipeline(transaction=False) as pipe:
                for state in healthy:
                    pipe.delete(self._ops_key("alerted", state.feed_id))
                    pipe.delete(self._ops_key("failing", state.feed_id))
                cleared = (await pipe.execute())[::2]
            for state, was_alerted in zip(healthy, cleared):
                if was_alerted:  # only the instance that deleted the marker says "recovered"
                    await self._operator_alert(state, recovered=True)
        for state in (s for s in states if s.error_streak > 0):
            await self._check_failing(state, now=time.time())

    def _ops_key(self, kind: str, feed_id: str) -> str:
        assert self.pipeline is not None
        return self.pipeline.keys("ops", kind, feed_id)

    async def _check_failing(self, state: Any, *, now: float) -> None:
        failing, alerted = self._ops_key("failing", state.feed_id), self._ops_key("alerted", state.feed_id)
        # failing since the first observation of this streak (or the last success, if later)
        await self.redis.set(failing, repr(now), nx=True, ex=OPS_MARKER_TTL)
        since = max(float(await self.redis.get(failing) or now), state.last_success or 0.0)
        if now - since < self.config.service.feed_failing_alert_after:
            return
        if await self.redis.set(alerted, repr(now), nx=True, ex=OPS_MARKER_TTL):
            if not await self._operator_alert(state, recovered=False, since=since):
                await self.redis.delete(alerted)  # not sent: the next run tries again

    async def _operator_alert(self, state: Any, *, recovered: bool, since: float = 0.0) -> bool:
        """Send straight to the operator channel's apprise URLs (not through rules and the outbox)."""
        assert self.pipeline is not None
        name = self.config.service.operator_channel or ""
        feed = self.pipeline.feeds.get(state.feed_id)
        url = redact_url(feed.url if feed else state.url)
        if recovered:
            title = f"monitor: feed {state.feed_id} recovered"
            body = f"Feed {state.feed_id} ({url}) is polled successfully again."
        else:
            hours = (time.time() - since) / 3600
            title = f"monitor: feed {state.feed_id} failing"
            body = (f"Feed {state.feed_id} ({url}) has failed for {hours:.1f} h ({state.error_streak} polls in a "
                    f"row).\nLast error: {state.last_error}")
        ok = await self._send_operator(title, body)
        metrics.operator_alerts.labels("recovered" if recovered else "failing").inc(1 if ok else 0)
        log.log(logging.WARNING if ok else logging.ERROR, "feed %s: operator alert %s on channel %s%s",
                state.feed_id, "recovered" if recovered else "failing", name, "" if ok else " FAILED (will retry)")
        return ok

    async def _send_operator(self, title: str, body: str) -> bool:
        """Send straight to the operator channel's apprise URLs; False when not sent (not configured, or failed)."""
        assert self.pipeline is not None
        name = self.config.service.operator_channel or ""
        channel = self.pipeline.deliverer.channels.get(name)
        if channel is None or not channel.targets:
            log.error("operator channel %r is not configured; cannot send: %s", name, title)
            return False
        results = [await t.apprise.async_notify(title=title, body=body, body_format="text")
                   for t in channel.targets if t.apprise is not None]
        return bool(results) and all(results)

    async def _articles_health(self) -> None:
        """Sources whose pages all fail (pipeline.articles_failing_after in a row), from the stats every instance
        writes: the per-source gauge, /healthz's warnings, and one operator alert per episode (and its recovery)."""
        p = self.pipeline
        assert p is not None
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
                await self._articles_alert(feed_id, st, failing)

    async def _articles_alert(self, feed_id: str, st: Any, failing: bool) -> None:
        assert self.pipeline is not None
        marker = self._ops_key("articles", feed_id)
        label = self.pipeline.source_label(feed_id)
        if failing and await self.redis.set(marker, repr(time.time()), nx=True, ex=OPS_MARKER_TTL):
            body = (f"Source {label}: the last {st.fail_streak} article pages all failed; its entries are matched "
                    f"on the feed's own text (fetch_page: always: dead-lettered).\nLast error ({st.last_error_url}): "
                    f"{st.last_error}")
            if not await self._send_operator(f"monitor: articles of {label} failing", body):
                await self.redis.delete(marker)  # not sent: the next run tries again
        elif not failing and await self.redis.delete(marker):
            await self._send_operator(f"monitor: articles of {label} recovered",
                                      f"Source {label}: article pages are fetched again.")

    async def reload(self) -> None:
        """SIGHUP: rules from disk, and the list of sources from the configuration file."""
        assert self.pipeline is not None
        await self.pipeline.rules.reload_aside()  # False also when nothing changed: last_error tells a failure
        self._count_reloads()
        if self.pipeline.rules.last_error:
            log.error("rule reload failed; the previous rules stay active: %s", self.pipeline.rules.last_error)
        if self.config.source_path and self.config.source_path != "(defaults)":
            try:
                fresh = load_config(self.config.source_path)
            except MonitorError as exc:
                self.config_error = str(exc)
                metrics.config_reloads.labels("failed").inc()
                log.error("configuration reload failed; keeping the running sources: %s", exc)
                return
            self.config_error = None
            metrics.config_reloads.labels("ok").inc()
            self.pipeline.feeds = {f.id: f for f in fresh.feeds()}
            await self.pipeline.sync_feeds()
            log.info("configuration reloaded: %d sources", len(self.pipeline.feeds))

    # --- health and metrics over HTTP ---------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, body). Unhealthy (503) when this instance cannot do its work: Redis unreachable, the scheduler
        stalled, no rules. A failed rule reload is a warning only: the previous rules keep matching."""
        p = self.pipeline
        tick_age = time.monotonic() - self.heartbeat
        rules = p.rules if p else None
        reasons, warnings = [], []
        if not self.redis_ok:
            reasons.append("redis unreachable")
        if tick_age > max(3 * self.config.pipeline.tick, 30):
            reasons.append(f"scheduler has not ticked for {tick_age:.0f}s")
        if self.starting:
            reasons.append("starting")
        elif rules is None or not rules.current.rules:
            reasons.append("no rules loaded")
        if rules is not None and rules.last_error:
            warnings.append("last rule reload failed; previous rules active")
        if self.config_error:
            warnings.append("last configuration reload failed; previous configuration active")
        lost_at = p.feed_store.lost_at if p else None
        if self.rebuild_error:
            reasons.append("redis lost monitor's state; rebuilding the schedule failed: " + self.rebuild_error)
        elif lost_at is not None and time.time() - lost_at < STATE_LOSS_WARN_FOR:
            warnings.append(f"redis lost monitor's state at {_iso(lost_at)}; schedule rebuilt from the "
                            "configuration; entries seen before are unknown (each feed's first poll is a quiet "
                            "baseline); queued entries and alerts were lost")
        for feed_id, error in sorted((p.articles_failing if p else {}).items()):
            warnings.append(f"source {p.source_label(feed_id) if p else feed_id}: article pages failing: {error}")
        down_for = time.monotonic() - self.redis_down_since if self.redis_down_since is not None else None
        body = {
            "ok": not reasons, "reasons": reasons, "warnings": warnings,
            "redis": self.redis_ok, "redis_down_for_s": round(down_for, 1) if down_for is not None else None,
            "scheduler_tick_age_s": round(tick_age, 1),
            "rules": {"count": len(rules.current.rules) if rules else 0,
                      "version": rules.current.version if rules else None,
                      "last_reload_failed": bool(rules and rules.last_error),
                      "last_error": rules.last_error if rules else None},
            "config": {"path": self.config.source_path, "last_reload_failed": self.config_error is not None,
                       "last_error": self.config_error},
            "last_poll_success_age_s": _age(p.last_poll_success if p else 0.0),
            "redis_state_lost_at": _iso(lost_at) if lost_at is not None else None,
            "polls_in_flight": len(self._in_flight),
            "articles_failing": sorted(p.articles_failing) if p else [],
            "consumer": p.consumer if p else None,
        }
        return not reasons, body

    async def _serve_http(self) -> web.AppRunner | None:
        listen = self.config.service.listen
        if not listen:
            return None
        host, _, port = listen.rpartition(":")
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"service.listen {listen}: cannot listen there: {exc.strerror or exc} (another "
                              "process has the port? set service.listen to a free one, or null)") from None
        log.info("metrics and health on http://%s/metrics and /healthz", listen)
        return runner

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, body = self.health()
        return web.json_response(body, status=200 if ok else 503, dumps=lambda d: json.dumps(d, indent=1))

    async def _metrics(self, request: web.Request) -> web.Response:
        self._count_reloads()
        if self.redis_ok and self.pipeline is not None:  # stream gauges as of now; a slow Redis must not hang us
            try:
                await asyncio.wait_for(self._refresh_gauges(), timeout=2.0)
            except Exception as exc:  # noqa: BLE001 - serve the last known values instead
                log.debug("metrics: stream gauges not refreshed: %s: %s", type(exc).__name__, exc)
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def _age(timestamp: float) -> float | None:
    return round(time.time() - timestamp, 1) if timestamp else None


def _is_redis_down(exc: BaseException) -> bool:
    from redis.exceptions import (ClusterDownError, ConnectionError as RedisConnectionError, RedisClusterException,
                                  TimeoutError as RedisTimeoutError, TryAgainError)

    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionRefusedError, ClusterDownError,
                            RedisClusterException, TryAgainError))
