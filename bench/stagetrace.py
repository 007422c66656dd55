"""`python -m bench.stagetrace TRACE.jsonl run -c monitor.yaml`: `monitor run` with each stage of an entry stamped.

For the end-to-end profile (bench.endtoend --trace): wraps the pipeline's awaits (stream pick-up, page fetch, the
worker pool, story assignment, archive, matching, outbox, deliverer) and writes one JSON line per stage end
{"k": url or alert id, "s": stage, "t": unix time}; an event-loop probe records how late a 20 ms sleep wakes.
Nothing of monitor itself changes; this is a bench tool only.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import threading
import time
from typing import Any, Callable

_out: Any = None
_lock = threading.Lock()


def stamp(key: str, stage: str, t: float | None = None) -> None:
    with _lock:
        _out.write(json.dumps({"k": key, "s": stage, "t": t or time.time()}) + "\n")


def _wrap(cls: Any, name: str, key: Callable[..., str | None], stage: str, *, start: bool = False) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        k = key(*args, **kwargs)
        if k and start:
            stamp(k, stage + ">")
        result = await original(*args, **kwargs)
        if k:
            stamp(k, stage)
        return result

    setattr(cls, name, wrapper)


async def _loop_probe() -> None:
    """How late the event loop wakes a 20 ms sleep: a blocked loop delays every await."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(0.02)
        late = time.perf_counter() - t0 - 0.02
        if late > 0.01:
            with _lock:
                _out.write(json.dumps({"k": "loop", "s": "lag", "t": time.time(), "v": late}) + "\n")


def install(path: str) -> None:
    global _out
    _out = open(path, "a", buffering=1)  # noqa: SIM115 - one line per stamp, open for the process's life

    from monitor import pipeline as pl
    from monitor.alerts import deliver, outbox, sending
    from monitor.archive import ArticleArchive
    from monitor.dedup import StoryIndex
    from monitor.net import Fetcher
    from monitor.streams import Stream
    from monitor.workers import WorkerPool

    _wrap(pl.Pipeline, "handle_entry", lambda self, m: m.payload.get("url"), "picked", start=True)
    _wrap(pl.Pipeline, "handle_article", lambda self, m: m.payload.get("url"), "match", start=True)
    _wrap(Fetcher, "get", lambda self, url, **kw: url if "/article/" in url else None, "fetched")
    _wrap(Fetcher, "_fetch_once", lambda self, url, current, headers: url if "/article/" in url else None,
          "response", start=True)
    _wrap(WorkerPool, "run", lambda self, fn, *a, **kw: kw.get("url") if fn.__name__ == "extract_article" else None,
          "extracted", start=True)
    _wrap(StoryIndex, "assign", lambda self, article, **kw: article.url, "assigned")
    _wrap(ArticleArchive, "put", lambda self, article, **kw: article.url, "archived")
    _wrap(pl, "record_matched", lambda redis, keys, url, *a, **kw: url, "matched")
    _wrap(outbox.Outbox, "submit", lambda self, match, article, **kw: article.url, "submitted")
    _wrap(deliver.Deliverer, "handle", lambda self, m: (m.payload.get("article") or {}).get("url"), "routed",
          start=True)
    _wrap(sending.Sender, "send_one", lambda self, channel, alert_id: alert_id, "sent", start=True)
    original_publish_many = Stream.publish_many

    async def publish_many(self: Any, payloads: list[dict[str, Any]]) -> None:
        await original_publish_many(self, payloads)
        if self.name == "entries":
            now = time.time()
            for payload in payloads:
                stamp(payload.get("url", ""), "published", now)

    Stream.publish_many = publish_many
    original_submit = outbox.Outbox._publish

    async def publish(self: Any, alert: Any) -> None:
        stamp(alert.article.get("url", ""), "alert:" + alert.id)
        await original_submit(self, alert)

    outbox.Outbox._publish = publish
    original_consume = Stream.consume

    async def consume(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == "entries" and not getattr(Stream, "_probe", None):
            Stream._probe = asyncio.ensure_future(_loop_probe())
        return await original_consume(self, *args, **kwargs)

    Stream.consume = consume


def main() -> None:
    install(sys.argv[1])
    from monitor.cli import main as monitor_main

    sys.argv = ["monitor"] + sys.argv[2:]
    monitor_main()


if __name__ == "__main__":
    main()
