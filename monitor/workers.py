"""A small pool of worker processes for CPU-bound, untrusted-input work (feed parsing, extraction).

pebble kills a worker that overruns its deadline and starts a fresh one, so a hostile input cannot hang the daemon.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any, Callable

import pebble

from .errors import PermanentError, TransientError

log = logging.getLogger(__name__)


class WorkerTimeout(PermanentError):
    """The worker ran past its deadline and was killed."""


class WorkerCrashed(TransientError):
    """The worker process died (out of memory, segfault) while handling the item."""


class WorkerPool:
    """`await pool.run(fn, *args, timeout=..., **kwargs)` runs `fn` in a worker process. `fn` must be importable."""

    def __init__(self, *, processes: int = 2, max_tasks: int = 500) -> None:
        self.processes = processes
        self._pool = pebble.ProcessPool(max_workers=processes, max_tasks=max_tasks)
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
