"""What an instance says about itself: Redis reachability, /healthz and /metrics over HTTP.

`Liveness` is the state the loops update (the scheduler's heartbeat, Redis up or down, a failed reload); `report`
turns it into /healthz's answer; `serve` runs the small HTTP server (started before anything else, so a port in use
fails first).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics
from .config import Config
from .errors import ConfigError

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

REDIS_DOWN_LOG_EVERY = 60.0  # while Redis stays unreachable, repeat the error this often (not on every tick)
STATE_LOSS_WARN_FOR = 86400.0  # /healthz warns this long after Redis lost the state


@dataclass
class Liveness:
    """Updated by the loops, read by /healthz, the watchdog and the periodic jobs."""

    heartbeat: float = field(default_factory=time.monotonic)  # the scheduler's last tick (monotonic)
    starting: bool = False  # run() is starting up: /healthz is served before Redis is opened, and says so
    config_error: str | None = None  # the last configuration reload failed with this (the running one stays)
    rebuild_error: str | None = None  # Redis lost the state and rebuilding the schedule failed (retried each tick)
    redis_ok: bool = False
    redis_down_since: float | None = None  # monotonic time of the first failure of the current outage
    redis_up: asyncio.Event = field(default_factory=asyncio.Event)
    _redis_logged: float = 0.0

    # --- Redis reachability: one place decides, logs the change (not every failure) and wakes waiting loops ------

    def redis_reachable(self) -> None:
        if self.redis_down_since is not None:
            log.warning("Redis reachable again after %.0fs; resuming", time.monotonic() - self.redis_down_since)
        self.redis_ok, self.redis_down_since = True, None
        metrics.redis_up.set(1)
        self.redis_up.set()

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
        self.redis_up.clear()

    def ticking(self, tick: float) -> bool:
        """The scheduler ticked recently enough (the watchdog pings only then)."""
        return time.monotonic() - self.heartbeat < max(3 * tick, 30)


def report(config: Config, live: Liveness, pipeline: Pipeline | None, *, polls_in_flight: int = 0
           ) -> tuple[bool, dict[str, Any]]:
    """(healthy, body). Unhealthy (503) when this instance cannot do its work: Redis unreachable, the scheduler
    stalled, no rules. A failed rule reload is a warning only: the previous rules keep matching."""
    p = pipeline
    tick_age = time.monotonic() - live.heartbeat
    rules = p.rules if p else None
    reasons, warnings = [], []
    if not live.redis_ok:
        reasons.append("redis unreachable")
    if not live.ticking(config.pipeline.tick):
        reasons.append(f"scheduler has not ticked for {tick_age:.0f}s")
    if live.starting:
        reasons.append("starting")
    elif rules is None or not rules.current.rules:
        reasons.append("no rules loaded")
    if rules is not None and rules.last_error:
        warnings.append("last rule reload failed; previous rules active")
    if live.config_error:
        warnings.append("last configuration reload failed; previous configuration active")
    lost_at = p.feed_store.lost_at if p else None
    if live.rebuild_error:
        reasons.append("redis lost monitor's state; rebuilding the schedule failed: " + live.rebuild_error)
    elif lost_at is not None and time.time() - lost_at < STATE_LOSS_WARN_FOR:
        warnings.append(f"redis lost monitor's state at {iso(lost_at)}; schedule rebuilt from the "
                        "configuration; entries seen before are unknown (each feed's first poll is a quiet "
                        "baseline); queued entries and alerts were lost")
    for feed_id, error in sorted((p.articles_failing if p else {}).items()):
        warnings.append(f"source {p.source_label(feed_id) if p else feed_id}: article pages failing: {error}")
    down_for = time.monotonic() - live.redis_down_since if live.redis_down_since is not None else None
    body = {
        "ok": not reasons, "reasons": reasons, "warnings": warnings,
        "redis": live.redis_ok, "redis_down_for_s": round(down_for, 1) if down_for is not None else None,
        "scheduler_tick_age_s": round(tick_age, 1),
        "rules": {"count": len(rules.current.rules) if rules else 0,
                  "version": rules.current.version if rules else None,
                  "last_reload_failed": bool(rules and rules.last_error),
                  "last_error": rules.last_error if rules else None},
        "config": {"path": config.source_path, "last_reload_failed": live.config_error is not None,
                   "last_error": live.config_error},
        "last_poll_success_age_s": _age(p.last_poll_success if p else 0.0),
        "redis_state_lost_at": iso(lost_at) if lost_at is not None else None,
        "polls_in_flight": polls_in_flight,
        "articles_failing": sorted(p.articles_failing) if p else [],
        "consumer": p.consumer if p else None,
    }
    return not reasons, body


async def serve(listen: str | None, health: Callable[[], tuple[bool, dict[str, Any]]],
                before_metrics: Callable[[], Awaitable[None]]) -> web.AppRunner | None:
    """/healthz (200 or 503 with the reasons) and /metrics on `service.listen`; None when it is null."""
    if not listen:
        return None

    async def healthz(request: web.Request) -> web.Response:
        ok, body = health()
        return web.json_response(body, status=200 if ok else 503, dumps=lambda d: json.dumps(d, indent=1))

    async def metrics_page(request: web.Request) -> web.Response:
        await before_metrics()
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    host, _, port = listen.rpartition(":")
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
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


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def _age(timestamp: float) -> float | None:
    return round(time.time() - timestamp, 1) if timestamp else None

