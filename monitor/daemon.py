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
from typing import Any, Awaitable, Callable

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics
from .config import Config, load_config
from .errors import MonitorError
from .models import Feed
from .net import Fetcher, redact_url
from .pipeline import Pipeline
from .rules import RuleWatcher
from .store import EmbeddedRedis, Keys, open_redis
from .systemd import Notifier
from .workers import WorkerPool

log = logging.getLogger(__name__)


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
    _in_flight: set[asyncio.Task[Any]] = field(default_factory=set)
    _poll_slots: asyncio.Semaphore | None = None

    async def start(self) -> Pipeline:
        """Connect (or start the embedded Redis), load rules, build the pipeline. Raises MonitorError."""
        c = self.config
        rules = RuleWatcher(c.rules.path, on_change=self._rules_changed)  # raises RuleError: no rules, no start
        self.redis, self.embedded = await open_redis(c.redis.url, c.data_dir)
        self.redis_ok = True
        fetcher = Fetcher(c.fetch)
        pool = WorkerPool(processes=c.workers.processes)
        self.pipeline = Pipeline(config=c, redis=self.redis, keys=Keys(c.redis.prefix), fetcher=fetcher, pool=pool,
                                 rules=rules, consumer=c.consumer_name())
        await self.pipeline.sync_feeds()
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
        metrics.rule_reloads.labels("ok").inc()
        log.info("rules reloaded: %d rules, version %s", len(ruleset.rules), ruleset.version)

    # --- run --once ---------------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        pipeline = await self.start()
        try:
            return await pipeline.run_once()
        finally:
            await self.close()

    # --- run (forever) ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        pipeline = await self.start()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        self._poll_slots = asyncio.Semaphore(self.config.pipeline.feed_concurrency)
        scheduler = self._scheduler(pipeline)
        runner = await self._serve_http()
        loops = [
            asyncio.create_task(self._supervise("entries", lambda: pipeline.entries.consume(
                pipeline.handle_entry, stop=self.stop, concurrency=self.config.pipeline.page_concurrency))),
            asyncio.create_task(self._supervise("delivery", lambda: pipeline.deliverer.run(self.stop))),
        ]
        if self.config.rules.watch:
            loops.append(asyncio.create_task(self._supervise("rules", lambda: pipeline.rules.watch(self.stop))))
        scheduler.start()
        await self._tick()
        self.notifier.ready(f"{len(pipeline.feeds)} sources, {len(pipeline.rules.current.rules)} rules")
        try:
            await self.stop.wait()
        finally:
            self.notifier.stopping()
            scheduler.shutdown(wait=False)
            await self._drain(loops)
            if runner is not None:
                await runner.cleanup()
            await self.close()
            log.info("stopped")

    def request_stop(self, why: str = "") -> None:
        if not self.stop.is_set():
            log.info("stopping (%s): no new work is claimed; in-flight work has %.0fs", why,
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
                self.redis_ok = not _is_redis_down(exc)
                log.error("%s loop failed: %s: %s; restarting in %.0fs", name, type(exc).__name__, exc, delay,
                          exc_info=not isinstance(exc, (MonitorError, ConnectionError, OSError)))
                try:
                    await asyncio.wait_for(self.stop.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2, 30.0)

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
        return sched

    def _guard(self, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            try:
                await fn()
            except Exception as exc:  # noqa: BLE001 - a periodic job must not die with one failure
                log.error("job %s failed: %s: %s", getattr(fn, "__name__", fn), type(exc).__name__, exc)
        return job

    async def _tick(self) -> None:
        """Claim due feeds and start polling them; the heartbeat the watchdog and /healthz look at."""
        assert self.pipeline is not None and self._poll_slots is not None
        if self.stop.is_set():
            return
        p = self.config.pipeline
        try:
            free = max(0, p.claim_batch - len(self._in_flight))
            due = await self.pipeline.feed_store.claim_due(now=time.time(), limit=free, lease=p.lease) if free else []
            self.redis_ok = True
        except Exception as exc:  # noqa: BLE001 - Redis away: say so, keep ticking
            self.redis_ok = False
            log.error("cannot claim due feeds (Redis unreachable?): %s: %s", type(exc).__name__, exc)
            return
        self.heartbeat = time.monotonic()
        for feed_id in due:
            feed = self.pipeline.feeds.get(feed_id)
            if feed is not None:
                self._spawn(self._poll(feed))

    async def _poll(self, feed: Feed) -> None:
        assert self.pipeline is not None and self._poll_slots is not None
        async with self._poll_slots:
            try:
                await self.pipeline.poll_source(feed)
            except Exception as exc:  # noqa: BLE001 - one feed must not take the scheduler down
                log.error("feed %s (%s): poll failed unexpectedly: %s: %s", feed.id, redact_url(feed.url),
                          type(exc).__name__, exc, exc_info=True)

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
        assert self.pipeline is not None
        for stream in (self.pipeline.entries,):
            metrics.stream_length.labels(stream.name).set(await stream.length())
            metrics.stream_pending.labels(stream.name).set(await stream.pending_count())
            lag = await stream.lag()
            if lag is not None:
                metrics.stream_lag.labels(stream.name).set(lag)
            metrics.dead_letters.labels(stream.name).set(await self.redis.xlen(stream.dead_key))

    async def reload(self) -> None:
        """SIGHUP: rules from disk, and the list of sources from the configuration file."""
        assert self.pipeline is not None
        ok = self.pipeline.rules.reload()
        if not ok:
            metrics.rule_reloads.labels("failed").inc()
            log.error("rule reload failed; the previous rules stay active: %s", self.pipeline.rules.last_error)
        if self.config.source_path and self.config.source_path != "(defaults)":
            try:
                fresh = load_config(self.config.source_path)
            except MonitorError as exc:
                log.error("configuration reload failed; keeping the running sources: %s", exc)
                return
            self.pipeline.feeds = {f.id: f for f in fresh.feeds()}
            await self.pipeline.sync_feeds()
            log.info("configuration reloaded: %d sources", len(self.pipeline.feeds))

    # --- health and metrics over HTTP ---------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        p = self.pipeline
        tick_age = time.monotonic() - self.heartbeat
        rules = p.rules if p else None
        reasons = []
        if not self.redis_ok:
            reasons.append("redis unreachable")
        if tick_age > max(3 * self.config.pipeline.tick, 30):
            reasons.append(f"scheduler has not ticked for {tick_age:.0f}s")
        if rules is None or not rules.current.rules:
            reasons.append("no rules loaded")
        body = {
            "ok": not reasons, "reasons": reasons, "redis": self.redis_ok, "scheduler_tick_age_s": round(tick_age, 1),
            "rules": {"count": len(rules.current.rules) if rules else 0,
                      "version": rules.current.version if rules else None,
                      "last_reload_failed": bool(rules and rules.last_error),
                      "last_error": rules.last_error if rules else None},
            "last_poll_success_age_s": _age(metrics.last_poll_success._value.get()),
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
        await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
        log.info("metrics and health on http://%s/metrics and /healthz", listen)
        return runner

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, body = self.health()
        return web.json_response(body, status=200 if ok else 503, dumps=lambda d: json.dumps(d, indent=1))

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _age(timestamp: float) -> float | None:
    return round(time.time() - timestamp, 1) if timestamp else None


def _is_redis_down(exc: BaseException) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionRefusedError))
