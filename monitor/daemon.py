"""Lifecycle of one `monitor run` instance: start, the long-running loops, signals, drain, stop.

SIGTERM stops claiming work, lets in-flight work finish within `service.shutdown_grace`, then cancels; SIGHUP reloads
the rules and the list of sources. systemd hears READY=1 once Redis answers and rules are loaded, WATCHDOG=1 only
while the scheduler ticks, and STOPPING=1 on the way out.

What runs meanwhile lives elsewhere: the stages in pipeline.py, polling in poller.py, the periodic jobs in
scheduler.py, /healthz and /metrics in health.py.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from . import metrics
from .alerts.channels import resolve_channel_urls
from .config import Config, known_channels, load_config
from .errors import MonitorError, TransientError
from .health import Liveness, report, serve
from .pipeline import Pipeline, build_pipeline
from .rules import RuleWatcher
from .scheduler import Jobs, build_scheduler
from .store import EmbeddedRedis, is_unavailable, open_redis
from .systemd import Notifier
from .workers import release_free_heap

log = logging.getLogger(__name__)


class AllSourcesFailed(TransientError):
    """run --once: not one source could be polled."""


# A page and a feed as the workers see them: extracted once in the daemon before its children fork (warm_up).
_WARM_UP_PAGE = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Warm-up</title>"
                 "<meta property=\"article:published_time\" content=\"2024-05-01T10:00:00Z\"></head><body>"
                 "<nav><ul><li><a href=\"/a\">World</a></li><li><a href=\"/b\">Sport</a></li></ul></nav>"
                 "<main><article><h1>Warm-up</h1>"
                 + "".join(f"<p>Paragraph {i} of the page the daemon extracts once before its workers fork, so "
                           "that what extraction builds at its first page is built here and shared.</p>"
                           for i in range(6))
                 + "</article></main><footer><p>Copyright.</p></footer></body></html>").encode()
_WARM_UP_FEED = (b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Warm-up</title>'
                 b"<link>http://warm-up.invalid/</link><description>d</description><item><title>t</title>"
                 b"<link>http://warm-up.invalid/a</link><guid>a</guid><pubDate>Wed, 01 May 2024 10:00:00 GMT"
                 b"</pubDate><description>s</description></item></channel></rss>")


def warm_up(*, date_parser: bool = False, fallback_stoplist: bool = True) -> None:
    """Extract one page and parse one feed here: what extraction and parsing build lazily at their first call
    (parsers, compiled expressions, tables) is then built once and inherited by every worker, instead of each worker
    building a private copy at its first task (~5 MB a worker, measured). With `fallback_stoplist`
    (workers.preload_fallback_stoplist) also jusText's stop words (a 1.5 MB trie, built at the first page needing
    trafilatura's second fallback otherwise) and with `date_parser` (workers.preload_date_parser) every locale of the
    date parser (~45 MB, which only a page without a fast-found date of an undated entry needs): one page loads
    neither."""
    from .extract import extract_article, load_date_parser, load_fallback_stoplist
    from .sources.feed import parse_feed

    if date_parser:
        load_date_parser()
    if fallback_stoplist:
        load_fallback_stoplist()

    try:
        extract_article(_WARM_UP_PAGE, url="http://warm-up.invalid/a", content_type="text/html")
        parse_feed(_WARM_UP_FEED, feed_id="warm-up", url="http://warm-up.invalid/feed",
                   content_type="application/rss+xml")
    except MonitorError as exc:  # only memory is at stake: start anyway
        log.debug("warm-up: %s", exc)


def fork_children(pipeline: Pipeline) -> None:
    """Fork the extraction workers and the channels' send processes now, together, from a heap that holds only
    what they need. Forked later (at the first task, at the first send) each would inherit the daemon's working
    heap of that moment, and every page the daemon rewrote afterwards would stay theirs (docs/decisions.md)."""
    workers = pipeline.config.workers
    warm_up(date_parser=workers.preload_date_parser, fallback_stoplist=workers.preload_fallback_stoplist)
    gc.collect()
    gc.freeze()  # neither this process's GC nor the children's writes the headers of what exists now
    release_free_heap()  # what the warm-up freed (the stop-word trie's build: ~10 MB) is not inherited
    pipeline.pool.start()
    pipeline.deliverer.sender.processes.start()


@dataclass
class Daemon:
    config: Config
    notifier: Notifier = field(default_factory=Notifier)
    redis: Any = None
    embedded: EmbeddedRedis | None = None
    pipeline: Pipeline | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    live: Liveness = field(default_factory=Liveness)
    jobs: Jobs = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = Jobs(self.config, self.notifier, self.live)

    async def start(self) -> Pipeline:
        """Connect (or start the embedded Redis), load rules, build the pipeline. Raises MonitorError."""
        c = self.config
        # what the configuration names must exist before anything starts: rules and their channels, secrets
        rules = RuleWatcher(c.rules.path, known_channels=known_channels(c))  # RuleError: no (valid) rules
        resolve_channel_urls(c.channels, source=c.source_path)  # ConfigError naming the file, channel and secret
        self.redis, self.embedded = await open_redis(c.redis.url, c.data_dir, timeout=c.redis.connect_timeout)
        try:
            self.live.redis_reachable()
            self.pipeline = self.jobs.pipeline = build_pipeline(c, self.redis, rules)
            await self.jobs.state.check_at_start(await self.pipeline.sync_feeds())
            fork_children(self.pipeline)
        except BaseException:
            await self.close()  # the embedded redis-server and the workers must not outlive a failed start
            raise
        log.info("started: %d sources, %d rules (version %s), consumer %s", len(self.pipeline.feeds),
                 len(rules.current.rules), rules.current.version, self.pipeline.consumer)
        return self.pipeline

    async def close(self) -> None:
        if self.pipeline is not None:
            await self.pipeline.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.embedded is not None:
            self.embedded.stop()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, body) as /healthz answers (health.report)."""
        in_flight = len(self.pipeline.poller.in_flight) if self.pipeline else 0
        return report(self.config, self.live, self.pipeline, polls_in_flight=in_flight)

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
        self.live.starting = True
        # first: a port in use fails before Redis or workers are started
        runner = await serve(self.config.service.listen, self.health, self._before_metrics)
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
        scheduler = build_scheduler(self.jobs, is_stopping=self.stop.is_set)
        concurrency = self.config.pipeline.page_concurrency
        loops = [
            asyncio.create_task(self._supervise("entries", lambda: pipeline.entries.consume(
                pipeline.handle_entry, stop=self.stop, concurrency=concurrency))),
            asyncio.create_task(self._supervise("articles", lambda: pipeline.articles.consume(
                pipeline.handle_article, stop=self.stop, concurrency=concurrency))),
            asyncio.create_task(self._supervise("delivery", lambda: pipeline.deliverer.run(self.stop))),
        ]
        if self.config.rules.watch:
            loops.append(asyncio.create_task(self._supervise("rules", lambda: pipeline.rules.watch(self.stop))))
        scheduler.start()
        await self.jobs.tick()
        self.live.starting = False
        self.notifier.ready(f"{len(pipeline.feeds)} sources, {len(pipeline.rules.current.rules)} rules")
        try:
            await self.stop.wait()
        finally:
            self.notifier.stopping()
            scheduler.shutdown(wait=False)
            await self._drain(loops + list(pipeline.poller.in_flight))
            await self._hand_back(pipeline)

    def request_stop(self, why: str = "") -> None:
        if not self.stop.is_set():
            log.info("stopping (%s): no new work is claimed; in-flight work has %gs", why,
                     self.config.service.shutdown_grace)
            self.stop.set()

    async def _drain(self, pending: list[asyncio.Task[Any]]) -> None:
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=self.config.service.shutdown_grace)
        for task in still:
            task.cancel()
        if still:
            log.warning("%d tasks did not finish within the grace period; cancelled (their messages stay pending "
                        "and another instance takes them over)", len(still))
            await asyncio.gather(*still, return_exceptions=True)

    async def _hand_back(self, pipeline: Pipeline) -> None:
        """What this instance still holds (cancelled or failed work) becomes claimable by the others at once."""
        await pipeline.poller.release()
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
                down = is_unavailable(exc)
                if down:  # said once by redis_unreachable; the loop resumes as soon as Redis answers again
                    self.live.redis_unreachable(exc)
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
            waits.append(asyncio.ensure_future(self.live.redis_up.wait()))
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _before_metrics(self) -> None:
        """Stream gauges as of now for a scrape of /metrics; a slow Redis must not hang it (last values served)."""
        self.jobs.count_reloads()
        if self.live.redis_ok and self.pipeline is not None:
            try:
                await asyncio.wait_for(self.jobs.refresh_gauges(), timeout=2.0)
            except Exception as exc:  # noqa: BLE001 - serve the last known values instead
                log.debug("metrics: stream gauges not refreshed: %s: %s", type(exc).__name__, exc)

    async def reload(self) -> None:
        """SIGHUP: rules from disk, and the list of sources from the configuration file."""
        assert self.pipeline is not None
        await self.pipeline.rules.reload_aside()  # False also when nothing changed: last_error tells a failure
        self.jobs.count_reloads()
        if self.pipeline.rules.last_error:
            log.error("rule reload failed; the previous rules stay active: %s", self.pipeline.rules.last_error)
        if self.config.source_path and self.config.source_path != "(defaults)":
            try:
                fresh = load_config(self.config.source_path)
            except MonitorError as exc:
                self.live.config_error = str(exc)
                metrics.config_reloads.labels("failed").inc()
                log.error("configuration reload failed; keeping the running sources: %s", exc)
                return
            self.live.config_error = None
            metrics.config_reloads.labels("ok").inc()
            self.pipeline.feeds = {f.id: f for f in fresh.feeds()}
            await self.pipeline.sync_feeds()
            log.info("configuration reloaded: %d sources", len(self.pipeline.feeds))
