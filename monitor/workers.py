"""A small pool of worker processes for CPU-bound, untrusted-input work (feed parsing, extraction).

pebble kills a worker that overruns its deadline and starts a fresh one, so a hostile input cannot hang the daemon.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
from typing import Any, Callable

import pebble

from .errors import PermanentError, TransientError

log = logging.getLogger(__name__)


def _worker_init() -> None:
    """In each new worker: forget the daemon's signal set-up inherited through fork.

    asyncio's add_signal_handler points the C signal handler at the event loop's wakeup pipe; a forked worker shares
    that pipe, so the SIGTERM pebble sends a worker it kills on a deadline would otherwise reach the daemon's loop as
    if the daemon itself had been told to stop.
    """
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class WorkerTimeout(PermanentError):
    """The worker ran past its deadline and was killed."""


class WorkerCrashed(TransientError):
    """The worker process died (out of memory, segfault) while handling the item."""


class WorkerPool:
    """`await pool.run(fn, *args, timeout=..., **kwargs)` runs `fn` in a worker process. `fn` must be importable."""

    def __init__(self, *, processes: int = 2, max_tasks: int = 500) -> None:
        self.processes = processes
        self._pool = pebble.ProcessPool(max_workers=processes, max_tasks=max_tasks, initializer=_worker_init)
        self.timeouts = 0
        self.crashes = 0

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float, **kwargs: Any) -> Any:
        future = self._pool.schedule(fn, args=args, kwargs=kwargs, timeout=timeout)
        try:
            return await asyncio.wrap_future(future)
        except concurrent.futures.TimeoutError as exc:
            self.timeouts += 1
            raise WorkerTimeout(f"{getattr(fn, '__name__', fn)} took longer than {timeout:g}s") from exc
        except pebble.ProcessExpired as exc:
            self.crashes += 1
            raise WorkerCrashed(f"worker process died with exit code {exc.exitcode}") from exc
        except asyncio.CancelledError:
            future.cancel()
            raise

    def close(self) -> None:
        self._pool.stop()
        self._pool.join(timeout=5)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
