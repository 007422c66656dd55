"""A small pool of worker processes for CPU-bound, untrusted-input work (feed parsing, extraction).

pebble kills a worker that overruns its deadline and starts a fresh one; a worker that outgrows its memory bound ends
itself the same way, so a hostile input can neither hang the daemon nor make its process tree balloon.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import gc
import heapq
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from traceback import format_exc
from typing import Any, Callable

import pebble
from pebble.common.types import RemoteException  # pickles an exception with its worker-side traceback, as pebble does

from .errors import PermanentError, TransientError
from .zygote import ZygoteContext
from .zygote import available as zygote_available

log = logging.getLogger(__name__)


PRIORITY_FEED = 0  # feed parses: short, and every entry of the feed waits for its poll (its "seen" time is the poll's)
PRIORITY_PAGE = 1  # page extractions
ADMITTED_PER_WORKER = 2  # calls handed to pebble per worker: one running, one ready; the rest wait here, by priority
# The most waiting tasks handed to a worker as one call. Measured (bench.pool_batch, 282 corpus pages, 1 worker, 16
# at a time): the main process's CPU an extraction 0.96 ms alone, 0.60 in twos, 0.46 in fours, 0.36 in eights; the
# round trip of a 40 ms task (main + worker) 1.03, 0.71, 0.46, 0.46 ms. Eight gains little more, and doubles what a
# feed parse may wait for (two calls a worker: 2 x BATCH_MAX pages) and what a batch's first page waits for its last.
BATCH_MAX = 4
EXIT_OVER_MEMORY = 86  # exit status of a worker that ended itself over its memory bound during a task
EXIT_RECYCLED = 87  # exit status of a worker that still held more than its bound when a task arrived
EXIT_LATE = 88  # exit status of a worker whose task in a batch ran past that task's own timeout
MEMORY_CHECK_EVERY = 0.05  # seconds between two looks at the worker's resident memory
# A worker hands its free heap back to the system (malloc_trim) once its resident memory is this much above what it
# was after the last trim, and only when it is idle: its watch thread trims once it finds no task running. Between two
# tasks that follow each other the trim would hand back what the next page's tree takes again at once: measured over
# the corpus pages in one worker (bench.extraction's path), trimming after a task whenever 8 MB had added up cost
# ~460 page faults a page instead of ~50 and ~3 ms more CPU a page (malloc_trim itself walks the whole heap,
# ~1.1 ms a call). A worker kept busy trims at the end of a task once TRIM_SLACK_BUSY has added up.
TRIM_SLACK = 8 * 1024 * 1024
TRIM_SLACK_BUSY = 24 * 1024 * 1024
PR_SET_NAME = 15  # prctl option: the process's name (/proc/PID/comm, ps, top), at most 15 bytes


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (another C library). Looked up among the symbols this process has loaded:
    ctypes.util.find_library would run `ldconfig -p` in a forked child, in every worker and send process started."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_heap() -> None:
    """Hand the C heap's free memory back to the system (glibc's malloc_trim; nothing elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class _Watch:
    """In a worker: its memory bound, its resident memory at start, and whether a task runs (under `lock`).

    pebble treats the death of a worker without a running task as a broken pool, so a worker ends itself only while
    `busy` is set and held: its task then fails, the pool carries on.
    """

    limit = 0
    start = 0
    busy = False
    lock = threading.Lock()
    fd = -1
    page = 4096
    trim: Callable[[int], int] | None = None
    trimmed_at = 0  # resident bytes (above start) after the last trim
    deadline = 0.0  # monotonic time by which the running task of a batch must end (0: pebble's timeout applies)
    watching = False  # the watch thread runs

    @classmethod
    def trim_if_grown(cls, slack: int) -> None:
        """Trim once resident memory is `slack` above the last trim's (after every task without /proc/self/statm)."""
        if cls.trim is None:
            return
        if cls.fd >= 0 and cls.grown() < cls.trimmed_at + slack:
            return
        cls.trim(0)
        cls.trimmed_at = cls.grown() if cls.fd >= 0 else 0

    @classmethod
    def grown(cls) -> int:
        return int(os.pread(cls.fd, 128, 0).split()[1]) * cls.page - cls.start


def name_process(name: str) -> None:
    """Name this process in ps and top (and in the benchmarks' memory split): the daemon's children are otherwise
    all "python"."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the name stays
        pass


def _worker_init(memory_limit: int = 0, name: str = "monitor-worker") -> None:
    """In each new worker: forget the daemon's signal set-up inherited through fork; watch the worker's memory.

    asyncio's add_signal_handler points the C signal handler at the event loop's wakeup pipe; a forked worker shares
    that pipe, so the SIGTERM pebble sends a worker it kills on a deadline would otherwise reach the daemon's loop as
    if the daemon itself had been told to stop.
    """
    name_process(name)
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    # What the worker inherited (modules, the language model, the rules) is never collected here: frozen, the cyclic
    # GC neither walks it on every full collection (time) nor writes its headers, which would copy its pages (memory).
    gc.freeze()
    _Watch.limit, _Watch.busy, _Watch.trim, _Watch.trimmed_at = 0, False, _malloc_trim(), 0
    _Watch.deadline, _Watch.watching = 0.0, False
    try:
        _Watch.fd = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        _Watch.fd = -1  # trims after every task then; no memory bound
        log.warning("worker %d: /proc/self/statm unreadable; its memory is not bounded", os.getpid())
        return
    _Watch.page, _Watch.start = os.sysconf("SC_PAGE_SIZE"), 0
    _Watch.start = _Watch.grown()
    _Watch.limit = max(memory_limit, 0)
    _start_watch()  # the memory bound, a batch's deadlines, the trim when idle


def _start_watch() -> None:
    if not _Watch.watching:
        _Watch.watching = True
        threading.Thread(target=_watch_memory, name="memory-watch", daemon=True).start()


def _run_task(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], deadline: float = 0.0) -> Any:
    """In a worker: one task, marked busy for the memory watch (and, in a batch, given its own `deadline`)."""
    with _Watch.lock:
        _Watch.busy, _Watch.deadline = True, deadline
        if _Watch.limit and _Watch.grown() > _Watch.limit:  # kept from the last task: start afresh (task retried)
            os._exit(EXIT_RECYCLED)
    try:
        return fn(*args, **kwargs)
    finally:
        # Still resident at the end of the task (the freed heap is trimmed only below): the task took the worker over
        # its bound even if the watch thread, which needs the GIL, did not look while it was there.
        if _Watch.limit and _Watch.grown() > _Watch.limit:
            with _Watch.lock:
                os._exit(EXIT_OVER_MEMORY)  # busy: pebble fails this task and starts a fresh worker
        _Watch.trim_if_grown(TRIM_SLACK_BUSY)  # a worker kept busy never idles: trim now and then all the same
        with _Watch.lock:
            _Watch.busy, _Watch.deadline = False, 0.0


_DONE, _FAILED, _LATE = 0, 1, 2  # how one task of a batch ended


_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], float]  # fn, args, kwargs, timeout


def _run_tasks(calls: list[_Call]) -> list[tuple[int, Any]]:
    """In a worker: several tasks in turn, one pebble call; each task's (_DONE, result), (_FAILED, exception) or
    (_LATE, None).

    Each task runs through _run_task (memory bound, trim) with its own deadline from its own start: the watch thread
    ends the worker (EXIT_LATE) once a task overruns it, and a task that ended past it, the watch not having looked,
    counts as late. The pool then retries the batch's tasks one by one; pebble's timeout on the whole call (the sum
    of the tasks' timeouts) is the bound when the watch thread cannot get the GIL.
    """
    _start_watch()
    out: list[tuple[int, Any]] = []
    for fn, args, kwargs, timeout in calls:
        started = time.monotonic()
        try:
            value = _run_task(fn, args, kwargs, started + timeout)
        except BaseException as exc:  # as pebble's own wrapper: the caller gets it, with its traceback as the cause
            outcome: tuple[int, Any] = (_FAILED, RemoteException(exc, format_exc()))
        else:
            outcome = (_DONE, value)
        out.append((_LATE, None) if time.monotonic() - started > timeout else outcome)
    return out


def _watch_memory() -> None:
    """End the worker (EXIT_OVER_MEMORY) once its resident memory has grown more than the bound during a task, or
    (EXIT_LATE) once a task of a batch has run past its deadline; trim the free heap when no task runs (TRIM_SLACK).

    Growth, not size: a forked worker starts with the daemon's resident pages, which it shares. The check runs in a
    thread, so it also fires while the task is busy in Python code or in C that releases the GIL (lxml's parser).
    """
    while True:
        time.sleep(MEMORY_CHECK_EVERY)
        if not _Watch.busy:  # idle: hand back the heap the last pages' trees left free (TRIM_SLACK)
            with _Watch.lock:
                if not _Watch.busy:  # (a task starting now waits for the trim: _run_task takes the lock first)
                    _Watch.trim_if_grown(TRIM_SLACK)
        if _Watch.limit and _Watch.grown() > _Watch.limit:
            with _Watch.lock:
                if _Watch.busy:  # pebble sees the worker die, fails its task and starts a fresh worker
                    os._exit(EXIT_OVER_MEMORY)
        if _Watch.deadline and time.monotonic() > _Watch.deadline:
            with _Watch.lock:
                if _Watch.busy and _Watch.deadline and time.monotonic() > _Watch.deadline:
                    os._exit(EXIT_LATE)


def _cancelling() -> bool:
    """Whether the running asyncio task itself is being cancelled (not only something it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class WorkerTimeout(PermanentError):
    """The worker ran past its deadline and was killed."""


class WorkerCrashed(TransientError):
    """The worker process died (killed by the system, segfault) while handling the item."""


class WorkerOutOfMemory(PermanentError):
    """The worker outgrew its memory bound on this item and was replaced: the same item would do it again."""


_ALONE = object()  # a waiting task's gate: admitted, run it alone (the caller holds the admission)


class _Waiter:
    """A task waiting for admission; `gate` ends as _ALONE, or with the task's outcome when it ran in a batch."""

    __slots__ = ("fn", "args", "kwargs", "timeout", "gate", "alone")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float,
                 gate: asyncio.Future[Any]) -> None:
        self.fn, self.args, self.kwargs, self.timeout, self.gate, self.alone = fn, args, kwargs, timeout, gate, False


class WorkerPool:
    """`await pool.run(fn, *args, timeout=..., **kwargs)` runs `fn` in a worker process. `fn` must be importable.

    At most ADMITTED_PER_WORKER calls per worker are in pebble's own queue (first in, first out); the other tasks
    wait here, the lowest `priority` first and in order within one: a feed's parse (1-2 ms) is not queued behind every
    page extraction (~25-40 ms each) already waiting, only behind the calls admitted. When an admission frees up
    and several tasks of the first priority wait, up to `batch` of them go as one call (_run_tasks): the round trip
    (~0.9 ms of this process's CPU and ~0.5 ms of the worker's, nearly all fixed per call) is paid once for them.
    A lone task goes alone, at once: a batch only forms from tasks that were waiting anyway.
    """

    def __init__(self, *, processes: int = 2, max_tasks: int = 500, memory_limit_mb: int = 0,
                 batch: int = BATCH_MAX, zygote: bool = True) -> None:
        """`memory_limit_mb`: how far a worker's resident memory may grow beyond its start (0: unbounded).
        `batch`: the most waiting tasks handed to a worker as one call (1: every task alone).
        `zygote`: fork the workers from a zygote (monitor/zygote.py) where pidfds allow it, else from here."""
        self.processes = processes
        self.memory_limit_mb = memory_limit_mb
        self.batch = max(batch, 1)
        # The workers fork at start() or the first task, sharing every page of this process until one side writes
        # it. Frozen, what exists now (modules, the language model, the rules) is never walked by this process's
        # cyclic GC either, whose writes to object headers would un-share those pages.
        gc.collect()
        gc.freeze()
        # Every worker, a replacement too, is forked by one zygote forked at the pool's start (monitor/zygote.py),
        # so it shares the start-up heap, not the working heap of the moment it replaces another.
        self._context = ZygoteContext() if zygote and zygote_available() else None
        self._pool = pebble.ProcessPool(max_workers=processes, max_tasks=max_tasks, initializer=_worker_init,
                                        initargs=(memory_limit_mb * 1024 * 1024,),
                                        context=self._context or multiprocessing.get_context("fork"))
        self.timeouts = 0
        self.crashes = 0
        self.over_memory = 0
        self.batches = 0  # calls that carried more than one task
        self.batches_retried = 0  # of those, calls that failed as a whole (their tasks were retried one by one)
        self._admit = max(processes, 1) * ADMITTED_PER_WORKER
        self._admitted = 0
        self._waiting: list[tuple[int, int, _Waiter]] = []  # heap of (priority, arrival, task)
        self._arrival = itertools.count()
        self._dispatches: set[asyncio.Task[None]] = set()  # running batches (a reference, so none is collected)

    def start(self) -> None:
        """Fork the workers now rather than at the first task (the daemon does so right after start-up, while its
        heap holds only what every worker needs: a page the daemon rewrites later stays shared with none of them)."""
        if not self._pool.active:
            raise RuntimeError("worker pool is closed")

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float, priority: int = PRIORITY_PAGE,
                  **kwargs: Any) -> Any:
        """`timeout` counts from the task's start in a worker, not from its wait for one (nor, in a batch, from the
        batch's start)."""
        if self._admitted < self._admit and not self._waiting:
            self._admitted += 1
        else:
            waiter = _Waiter(fn, args, kwargs, timeout, asyncio.get_running_loop().create_future())
            heapq.heappush(self._waiting, (priority, next(self._arrival), waiter))
            try:
                outcome = await waiter.gate  # _release admits it alone (the count stays) or runs it in a batch
            except asyncio.CancelledError:
                if waiter.gate.done() and not waiter.gate.cancelled():
                    if waiter.alone:  # admitted just as it was cancelled: pass the admission on
                        self._release()
                    else:
                        waiter.gate.exception()  # its batch's outcome, dropped: retrieved, so asyncio logs nothing
                raise
            if not waiter.alone:
                return outcome
        try:
            return await self._run(fn, args, kwargs, timeout)
        finally:
            self._release()

    def _release(self) -> None:
        """An admission freed up: hand it to the first waiting task, with up to `batch` - 1 more of its priority."""
        tasks: list[_Waiter] = []
        priority = None
        while self._waiting and len(tasks) < self.batch:
            first, _, waiter = self._waiting[0]
            if waiter.gate.done():  # cancelled while it waited
                heapq.heappop(self._waiting)
                continue
            if tasks and first != priority:
                break
            heapq.heappop(self._waiting)
            tasks.append(waiter)
            priority = first
        if not tasks:
            self._admitted -= 1
        elif len(tasks) == 1:
            tasks[0].alone = True
            tasks[0].gate.set_result(_ALONE)
        else:
            dispatch = asyncio.ensure_future(self._dispatch(tasks))
            self._dispatches.add(dispatch)
            dispatch.add_done_callback(self._dispatches.discard)

    @property
    def waiting(self) -> int:
        """Tasks waiting for admission (not yet in pebble's queue)."""
        return sum(not waiter.gate.done() for _, _, waiter in self._waiting)

    async def _dispatch(self, tasks: list[_Waiter]) -> None:
        """Run `tasks` as one call, holding the admission _release handed over; each caller gets its own outcome."""
        try:
            await self._run_batch(tasks)
        finally:
            self._release()

    async def _run_batch(self, tasks: list[_Waiter]) -> None:
        self.batches += 1
        calls: list[_Call] = [(w.fn, w.args, w.kwargs, w.timeout) for w in tasks]

        def abandoned(_: asyncio.Future[Any]) -> None:
            if all(w.gate.cancelled() for w in tasks):  # every caller is gone: stop the call, as for a lone task
                future.cancel()

        try:
            future = self._pool.schedule(_run_tasks, args=(calls,), timeout=sum(w.timeout for w in tasks))
            for w in tasks:
                w.gate.add_done_callback(abandoned)
            outcomes: list[tuple[int, Any]] | None = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if _cancelling():  # the loop is closing: so are the callers
                for w in tasks:
                    w.gate.cancel()
                raise
            outcomes = None  # stopped: every caller was cancelled, or the pool is closing
        except Exception:  # the call as a whole: a timeout, a crash, the memory bound, a result that did not pickle
            outcomes = None
        if outcomes is None:
            # The culprit is unknown (its worker is gone): each task runs again alone, with its own timeout, so the
            # culprit gets its own error and the others their results.
            left = [w for w in tasks if not w.gate.done()]
            self.batches_retried += bool(left)
            for w in left:
                if not w.gate.done():
                    await self._retry_alone(w)
            return
        for w, (status, value) in zip(tasks, outcomes):
            if w.gate.done():  # its caller was cancelled: the result goes nowhere
                continue
            if status == _DONE:
                w.gate.set_result(value)
            elif status == _LATE:
                w.gate.set_exception(self._timed_out(w.fn, w.timeout))
            elif isinstance(value, MemoryError):
                error = self._out_of_memory(w.fn)
                error.__cause__ = value
                w.gate.set_exception(error)
            else:
                w.gate.set_exception(value)

    async def _retry_alone(self, w: _Waiter) -> None:
        run = asyncio.ensure_future(self._run(w.fn, w.args, w.kwargs, w.timeout))
        w.gate.add_done_callback(lambda gate: run.cancel() if gate.cancelled() else None)
        try:
            value = await run
        except asyncio.CancelledError:
            w.gate.cancel()  # its caller was cancelled (and the call with it), the pool is closing, or the loop
            if _cancelling():
                raise
            return
        except Exception as exc:
            if not w.gate.done():
                w.gate.set_exception(exc)
            return
        if not w.gate.done():
            w.gate.set_result(value)

    async def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                   timeout: float) -> Any:
        future = self._pool.schedule(_run_task, args=(fn, args, kwargs), timeout=timeout)
        try:
            return await asyncio.wrap_future(future)
        except concurrent.futures.TimeoutError as exc:
            raise self._timed_out(fn, timeout) from exc
        except pebble.ProcessExpired as exc:
            if exc.exitcode == EXIT_OVER_MEMORY:
                raise self._over_memory(fn) from exc
            self.crashes += 1
            if exc.exitcode == EXIT_RECYCLED:
                raise WorkerCrashed("worker process replaced before the task: it still held memory of the task "
                                    "before") from exc
            raise WorkerCrashed(f"worker process died with exit code {exc.exitcode}") from exc
        except MemoryError as exc:  # an allocation the system refused, raised in the worker and passed back
            raise self._out_of_memory(fn) from exc
        except asyncio.CancelledError:
            future.cancel()
            raise

    def _timed_out(self, fn: Callable[..., Any], timeout: float) -> WorkerTimeout:
        self.timeouts += 1
        return WorkerTimeout(f"{getattr(fn, '__name__', fn)} took longer than {timeout:g}s")

    def _out_of_memory(self, fn: Callable[..., Any]) -> WorkerOutOfMemory:
        """A MemoryError the worker raised (an allocation the system refused)."""
        self.over_memory += 1
        return WorkerOutOfMemory(f"{getattr(fn, '__name__', fn)} ran out of memory in the worker")

    def _over_memory(self, fn: Callable[..., Any]) -> WorkerOutOfMemory:
        self.over_memory += 1
        return WorkerOutOfMemory(f"{getattr(fn, '__name__', fn)} took the worker over its memory bound of "
                                 f"{self.memory_limit_mb} MiB (workers.memory_limit_mb); the worker was replaced")

    @property
    def zygote_pid(self) -> int | None:
        """The pid of the process that forks the workers, None before the first or without one."""
        return self._context.zygote_pid if self._context is not None else None

    def close(self) -> None:
        self._pool.stop()
        self._pool.join(timeout=5)
        if self._context is not None:
            self._context.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
