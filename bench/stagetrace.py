"""`python -m bench.stagetrace TRACE.jsonl run -c monitor.yaml`: `monitor run` with each stage of an entry stamped.

For the end-to-end profile (bench.endtoend --trace): wraps the pipeline's awaits (stream pick-up, page fetch, the
worker pool, story assignment, archive, matching, outbox, deliverer) and writes one JSON line per stage end
{"k": url or alert id, "s": stage, "t": unix time}; an event-loop probe records how late a 20 ms sleep wakes.
Load-insensitive evidence of what holds the loop: every event-loop callback that used more than 5 ms of the main
thread's CPU (not wall time, so other processes on the cores do not count) is written as {"k": "cb", "s": what,
"v": CPU seconds}, and SIGUSR1 / SIGUSR2 (sent by bench.endtoend around the steady phase) start and stop a sampling
profiler on the process's CPU clock (CpuSampler), its stacks written to TRACE.prof. Nothing of monitor itself changes; this is a bench
tool only.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import signal
import json
import sys
import threading
import time
from typing import Any, Callable

_out: Any = None
_lock = threading.RLock()  # re-entrant: the SIGUSR2 handler stamps too, and may run inside stamp()


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


SLOW_CALLBACK_CPU = 0.005  # seconds of main-thread CPU: a callback above it is written with what it ran


def _what(handle: asyncio.Handle) -> str:
    """A short name for what a loop callback ran: the coroutine a task step resumed, else the callback."""
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        where = f":{frame.f_lineno}" if frame is not None else ""
        return f"task {getattr(coro, '__qualname__', coro)}{where}"
    return getattr(callback, "__qualname__", repr(callback))[:120]


def _time_callbacks() -> None:
    """Wrap every event-loop callback: its main-thread CPU time, and a stamp when it is over SLOW_CALLBACK_CPU."""
    original = asyncio.events.Handle._run

    def run(self: asyncio.Handle) -> None:
        c0 = time.thread_time()
        original(self)
        used = time.thread_time() - c0
        if used > SLOW_CALLBACK_CPU:
            with _lock:
                _out.write(json.dumps({"k": "cb", "s": _what(self), "t": time.time(), "v": used}) + "\n")

    asyncio.events.Handle._run = run  # type: ignore[method-assign]


PROFILE_INTERVAL = 0.002  # seconds of the process's CPU time between two stack samples


class CpuSampler:
    """A sampling profiler on the process's CPU clock (setitimer ITIMER_PROF): every PROFILE_INTERVAL of CPU used,
    SIGPROF records the main thread's stack. A sample per slice of CPU, so time other processes take from the
    cores does not count, and unlike cProfile it does not inflate functions that make many small calls."""

    def __init__(self) -> None:
        self.stacks: collections.Counter[tuple[str, ...]] = collections.Counter()

    def _sample(self, _signum: int, frame: Any) -> None:
        stack = []
        while frame is not None and len(stack) < 60:
            code = frame.f_code
            stack.append(f"{code.co_filename.rsplit('site-packages/', 1)[-1]}:{code.co_name}")
            frame = frame.f_back
        self.stacks[tuple(stack)] += 1

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, PROFILE_INTERVAL, PROFILE_INTERVAL)

    def stop(self, path: str) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        with open(path, "w") as out:
            json.dump({"interval": PROFILE_INTERVAL, "stacks": [[list(k), n] for k, n in self.stacks.items()]}, out)


def _profile_on_signals(path: str) -> None:
    """SIGUSR1 starts the CPU sampler, SIGUSR2 stops it and writes its samples to `path`, with the main thread's
    CPU seconds over the same span (and the process's, all threads) in a stamp {"k": "cpu", "v": ..., "p": ...}."""
    sampler = CpuSampler()
    began = [0.0, 0.0]

    def start(*_: Any) -> None:
        began[:] = [time.thread_time(), time.process_time()]
        sampler.start()

    def stop(*_: Any) -> None:
        sampler.stop(path)
        with _lock:
            _out.write(json.dumps({"k": "cpu", "s": "steady", "t": time.time(), "v": time.thread_time() - began[0],
                                   "p": time.process_time() - began[1]}) + "\n")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def install(path: str) -> None:
    global _out
    _out = open(path, "a", buffering=1)  # noqa: SIM115 - one line per stamp, open for the process's life
    _time_callbacks()
    _profile_on_signals(path + ".prof")

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
