"""Operator alerts: a feed failing for long and its recovery; a source whose article pages all fail and its recovery.

Any instance may run these checks; per-source markers in Redis (store.ops.OpsMarkers: SET NX / DEL) make exactly one
of them queue each alert. An operator alert is an alert of kind "operator" (Outbox.submit_operator): the deliverer
sends it to the operator channel with the retries, history and send deadline every alert has.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from . import metrics
from .redact import redact_url
from .store.ops import OpsMarkers

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

class OperatorAlerts:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.config = pipeline.config
        self.markers = OpsMarkers(pipeline.redis, pipeline.keys)

    @property
    def channel(self) -> str:
        return self.config.service.operator_channel or ""

    # --- feeds: failing polls -----------------------------------------------------------------------------------

    async def feed_health(self) -> None:
        """One operator alert when a feed has failed for `feed_failing_alert_after`, one when it recovers."""
        states = await self.pipeline.feed_store.states()
        # healthy feeds that ever failed may carry markers: one pipelined round trip clears them
        healthy = {s.feed_id: s for s in states if s.error_streak == 0 and s.last_error_at is not None}
        for feed_id in await self.markers.clear_recovered(list(healthy)):
            await self._feed_alert(healthy[feed_id], recovered=True)  # only the instance that cleared the marker
        for state in (s for s in states if s.error_streak > 0):
            await self._check_failing(state, now=time.time())

    async def _check_failing(self, state: Any, *, now: float) -> None:
        # failing since the first observation of this streak (or the last success, if later)
        since = max(await self.markers.failing_since(state.feed_id, now), state.last_success or 0.0)
        if now - since < self.config.service.feed_failing_alert_after:
            return
        if await self.markers.claim_alert(state.feed_id, now):
            if not await self._feed_alert(state, recovered=False, since=since):
                await self.markers.release_alert(state.feed_id)  # not sent: the next run tries again

    async def _feed_alert(self, state: Any, *, recovered: bool, since: float = 0.0) -> bool:
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
        kind = "recovered" if recovered else "failing"
        ok = await self.send(title, body, key=f"feed-{kind}:{state.feed_id}:{since if since else time.time():.3f}")
        metrics.operator_alerts.labels(kind).inc(1 if ok else 0)
        log.log(logging.WARNING if ok else logging.ERROR, "feed %s: operator alert %s %s channel %s", state.feed_id,
                kind, "queued for" if ok else "NOT QUEUED (will retry): no", self.channel)
        return ok

    # --- sources: failing article pages --------------------------------------------------------------------------

    async def articles(self, feed_id: str, st: Any, failing: bool) -> None:
        """One operator alert per episode of a source's pages all failing, and one when they are fetched again."""
        label = self.pipeline.source_label(feed_id)
        if failing and await self.markers.claim_articles(feed_id, time.time()):
            body = (f"Source {label}: the last {st.fail_streak} article pages all failed; its entries are matched "
                    f"on the feed's own text (fetch_page: always: dead-lettered).\nLast error ({st.last_error_url}): "
                    f"{st.last_error}")
            if not await self.send(f"monitor: articles of {label} failing", body,
                                   key=f"articles-failing:{feed_id}:{time.time():.3f}"):
                await self.markers.release_articles(feed_id)  # not sent: the next run tries again
        elif not failing and await self.markers.clear_articles(feed_id):
            await self.send(f"monitor: articles of {label} recovered",
                            f"Source {label}: article pages are fetched again.",
                            key=f"articles-recovered:{feed_id}:{time.time():.3f}")

    # --- sending --------------------------------------------------------------------------------------------------

    async def send(self, title: str, body: str, *, key: str) -> bool:
        """Queue an operator alert on the operator channel: the outbox and the deliverer send it like any alert
        (retries, history, send timeout, secrets masked). False when there is no such channel to send to.
        `key` names the episode: one alert per key, whichever instances ask."""
        if self.channel not in self.pipeline.deliverer.channels:
            log.error("operator channel %r is not configured; cannot send: %s", self.channel, title)
            return False
        await self.pipeline.outbox.submit_operator(channel=self.channel, title=title, body=body, key=key)
        return True
