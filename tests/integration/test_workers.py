"""The worker pool: a worker killed on its deadline is replaced, and its death never reaches the daemon's signals;
the pool freezes the parent's objects before its workers fork."""

from __future__ import annotations

import asyncio
import gc
import operator
import os
import platform
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest

from monitor.rules import RuleWatcher
from monitor.workers import WorkerPool, WorkerTimeout


async def test_a_worker_killed_on_its_deadline_does_not_signal_the_daemon():
    loop = asyncio.get_running_loop()
    received: list[str] = []
    loop.add_signal_handler(signal.SIGTERM, received.append, "SIGTERM")  # as Daemon.run installs it
    pool = WorkerPool(processes=1)
    try:
        assert await pool.run(operator.add, 1, 2, timeout=30) == 3  # a worker forked after the handler exists
        with pytest.raises(WorkerTimeout):
            await pool.run(time.sleep, 30, timeout=0.5)
        task = asyncio.ensure_future(pool.run(time.sleep, 30, timeout=30))
        await asyncio.sleep(0.5)
        task.cancel()  # a cancelled extraction stops its worker too
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.5)
        assert received == []
        assert await pool.run(operator.add, 2, 2, timeout=30) == 4  # replaced worker
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        pool.close()


def _worker_view() -> tuple[int, int]:
    """In a worker: (language models loaded in this process's cache, objects frozen out of the cyclic GC)."""
    import gc

    from monitor import language

    return language._identifier.cache_info().currsize, gc.get_freeze_count()


async def test_workers_share_the_language_model_loaded_before_they_fork():
    from monitor import language

    language.load_model()
    pool = WorkerPool(processes=1)
    try:
        loaded, frozen = await pool.run(_worker_view, timeout=30)
    finally:
        pool.close()
    assert loaded == 1  # inherited from the parent: the worker does not load a private ~75 MB copy
    assert frozen > 0  # and its GC leaves the inherited pages alone (they stay shared with the parent)


def _worker_frozen_and_trim() -> tuple[int, bool]:
    from monitor.workers import _Watch

    return gc.get_freeze_count(), _Watch.trim is not None


async def test_the_pool_freezes_what_exists_before_its_workers_fork_and_they_trim_their_heap():
    gc.unfreeze()
    with WorkerPool(processes=1) as pool:
        assert gc.get_freeze_count() > 0  # the parent's objects: its cyclic GC no longer writes their pages
        frozen_in_worker, trims = await pool.run(_worker_frozen_and_trim, timeout=30)
    assert frozen_in_worker > 0
    assert trims == (platform.libc_ver()[0] == "glibc")
    gc.unfreeze()


def test_a_replaced_rule_set_is_freed_without_the_cyclic_gc():
    """The daemon freezes the rule set it started with (WorkerPool): a frozen object in a reference cycle would
    never be freed after a reload. The rule set has none: dropping the last reference frees it at once."""
    root = Path(__file__).resolve().parents[2]
    gc.disable()
    try:
        watcher = RuleWatcher(root / "rules")
        rule_set = weakref.ref(watcher.current)
        rules = [weakref.ref(rule) for rule in watcher.current.rules]
        del watcher
        assert rule_set() is None and all(rule() is None for rule in rules)
    finally:
        gc.enable()


def _stamp(tag: str, pause: float) -> tuple[str, float]:
    time.sleep(pause)
    return tag, time.monotonic()


async def test_a_feed_parse_waits_only_for_the_admitted_tasks_not_for_every_queued_page():
    from monitor.workers import ADMITTED_PER_WORKER, PRIORITY_FEED

    with WorkerPool(processes=1) as pool:
        await pool.run(operator.add, 1, 1, timeout=30)  # the worker exists
        pages = [asyncio.ensure_future(pool.run(_stamp, f"page{i}", 0.2, timeout=30)) for i in range(6)]
        await asyncio.sleep(0)  # every page asked for admission: ADMITTED_PER_WORKER are in pebble's queue
        assert pool.waiting == 6 - ADMITTED_PER_WORKER
        feed = asyncio.ensure_future(pool.run(_stamp, "feed", 0.0, timeout=30, priority=PRIORITY_FEED))
        done = sorted([*await asyncio.gather(*pages), await feed], key=lambda r: r[1])
    order = [tag for tag, _ in done]
    assert order.index("feed") == ADMITTED_PER_WORKER  # after the admitted pages, before the waiting ones
    assert [t for t in order if t != "feed"] == [f"page{i}" for i in range(6)]  # pages in their order


async def test_a_task_cancelled_while_waiting_for_admission_leaves_no_slot_taken():
    with WorkerPool(processes=1) as pool:
        await pool.run(operator.add, 1, 1, timeout=30)
        busy = [asyncio.ensure_future(pool.run(_stamp, f"p{i}", 0.3, timeout=30)) for i in range(2)]
        waiting = asyncio.ensure_future(pool.run(_stamp, "w", 0.0, timeout=30))
        await asyncio.sleep(0.05)
        assert pool.waiting == 1
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await asyncio.gather(*busy)
        # both admissions came back: two tasks run at once again (admitted together, so nothing waits)
        again = [asyncio.ensure_future(pool.run(operator.add, i, 1, timeout=30)) for i in range(2)]
        await asyncio.sleep(0)
        assert pool.waiting == 0
        assert await asyncio.gather(*again) == [1, 2]


def _drop_tree(divs: int) -> int:
    """In a worker: build and drop an lxml tree of ~450 bytes a <div> (libxml2 allocates with malloc, so the freed
    tree stays resident until a trim); the worker's growth right after, before any trim."""
    from lxml import html as lxml_html

    from monitor.workers import _Watch

    tree = lxml_html.fromstring("<html><body>" + "<div><p>words and more words</p></div>" * divs + "</body></html>")
    del tree
    return _Watch.grown()


def _grown_now() -> tuple[int, int]:
    from monitor.workers import _Watch

    return _Watch.grown(), _Watch.trimmed_at


def _trim_now() -> tuple[int, int]:
    """In a worker: hand back the free heap it inherited (a test process's), so that a tree built next takes new
    pages and leaves them resident when dropped."""
    from monitor.workers import _Watch

    _Watch.trim(0)
    _Watch.trimmed_at = _Watch.grown()
    return _Watch.grown(), _Watch.trimmed_at


def _hold_watch() -> None:
    """In a worker: send its watch thread to sleep for an hour (after its current look, made while this task runs, so
    it trims nothing): the tasks that follow run as back to back as a busy worker's."""
    from monitor import workers

    workers.MEMORY_CHECK_EVERY = 3600.0
    time.sleep(4 * 0.05)


async def test_an_idle_worker_hands_a_pages_freed_heap_back():
    from monitor.workers import MEMORY_CHECK_EVERY, TRIM_SLACK, TRIM_SLACK_BUSY

    with WorkerPool(processes=1) as pool:
        await pool.run(_trim_now, timeout=30)
        small_before = await pool.run(_grown_now, timeout=30)
        small_after = await pool.run(_grown_now, timeout=30)
        during = await pool.run(_drop_tree, 40_000, timeout=60)  # ~18 MB freed: past TRIM_SLACK, not the busy one
        for _ in range(100):  # the watch thread looks every MEMORY_CHECK_EVERY
            await asyncio.sleep(MEMORY_CHECK_EVERY)
            after, trimmed_at = await pool.run(_grown_now, timeout=30)
            if trimmed_at != small_after[1]:
                break
    assert small_after[1] == small_before[1]  # small tasks: no trim, the mark did not move
    assert TRIM_SLACK_BUSY > during - small_after[0] > TRIM_SLACK
    assert during > after + TRIM_SLACK  # the freed tree's heap was resident at the end of the task...
    assert trimmed_at <= after < trimmed_at + TRIM_SLACK  # ...and handed back once the worker idled


async def test_a_busy_worker_keeps_its_freed_heap_until_it_passes_the_busy_slack():
    from monitor.workers import TRIM_SLACK, TRIM_SLACK_BUSY

    with WorkerPool(processes=1) as pool:
        await pool.run(_hold_watch, timeout=30)
        start = await pool.run(_trim_now, timeout=30)
        during = await pool.run(_drop_tree, 40_000, timeout=60)
        kept = await pool.run(_grown_now, timeout=30)
        during_big = await pool.run(_drop_tree, 100_000, timeout=60)  # ~45 MB freed: past the busy slack
        trimmed = await pool.run(_grown_now, timeout=30)
    assert TRIM_SLACK_BUSY > during - start[0] > TRIM_SLACK
    assert kept[1] == start[1] and kept[0] > start[1] + TRIM_SLACK  # the next page would take it again: kept
    assert during_big > trimmed[1] + TRIM_SLACK_BUSY
    assert trimmed[1] <= trimmed[0] < trimmed[1] + TRIM_SLACK  # handed back at the end of the big task


def _children_named(name: str, *, at_least: int = 0, root: int | None = None) -> set[int]:
    """The pids of the descendants of `root` (this process) whose process name (/proc/PID/comm) is `name`; with
    `at_least`, waits (up to 30 s) until there are that many: a forked child names itself in its initializer, a
    moment after the fork."""
    for _ in range(600):
        named = _named_children(name, os.getpid() if root is None else root)
        if len(named) >= at_least:
            break
        time.sleep(0.05)
    return named


def _parents(pids: set[int]) -> dict[int, str]:
    """pid -> its state and its parent's pid and name, for a failure message."""
    out = {}
    for pid in pids:
        try:
            state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
            out[pid] = f"state {state}, parent {ppid} {Path(f'/proc/{ppid}/comm').read_text().strip()}"
        except (OSError, IndexError, ValueError):
            out[pid] = "ended"
    return out


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`: its children, theirs (the workers are the zygote's children), and so on."""
    out: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in map(int, (task / "children").read_text().split()):
                out |= {child} | _descendants(child)
    except OSError:  # ended meanwhile
        pass
    return out


def _named_children(name: str, root: int) -> set[int]:
    out = set()
    for pid in _descendants(root):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                out.add(pid)
        except OSError:  # ended meanwhile
            pass
    return out


STARTS_NOTHING = """
import sys
started = []
sys.addaudithook(lambda event, args: event in ("subprocess.Popen", "os.fork", "os.posix_spawn") and started.append(args))
from monitor import workers, zygote
workers._worker_init(name="monitor-test")  # what every worker and send process runs first
workers.release_free_heap()
assert workers._malloc_trim() is not None and zygote._libc() is not None
print(started)
"""


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc's malloc_trim and prctl")
def test_a_new_worker_finds_the_c_library_without_starting_a_process():
    """A worker or send process starting up found libc with ctypes.util.find_library, which runs `ldconfig -p` in a
    forked child (named like its parent until it execs: the send processes' count below caught one)."""
    out = subprocess.run([sys.executable, "-c", STARTS_NOTHING], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(platform.system() != "Linux", reason="process names and /proc are Linux's")
async def test_start_forks_the_named_workers_before_any_task_and_they_run_the_tasks():
    pool = WorkerPool(processes=2)
    try:
        pool.start()
        # this pool's workers only: those of a pool an earlier test in this process closed may still be ending
        root = pool.zygote_pid or os.getpid()
        before = set() if pool.zygote_pid else _children_named("monitor-worker")
        forked = _children_named("monitor-worker", at_least=len(before) + 2, root=root) - before
        assert len(forked) == 2, _parents(forked)  # forked by start, not at the first task
        ran = {await pool.run(os.getpid, timeout=30) for _ in range(6)}
        assert ran <= forked
        assert _children_named("monitor-worker", root=root) - before == forked  # no other fork for the tasks
    finally:
        pool.close()


# --- batches: tasks that waited for admission go to a worker together, each caller gets its own outcome -------------

def _tagged(tag: str, pause: float = 0.0) -> tuple[str, int]:
    time.sleep(pause)
    return tag, os.getpid()


def _fails(tag: str) -> None:
    raise ValueError(f"bad input {tag}")


def _dies(tag: str) -> None:
    os._exit(3)  # as a segfault or the kernel's OOM killer would end the worker, mid-batch


def _hogs(mb: int) -> int:
    held = b"x" * (mb * 1024 * 1024)  # written, so resident
    time.sleep(0.3)
    return len(held)


async def _backed_up(pool: WorkerPool, jobs: list[tuple], block: float = 0.3) -> tuple[list, list[asyncio.Future]]:
    """The pool's admissions taken by two tasks of `block` s; `jobs` ((fn, args, timeout), ...) queued behind them."""
    await pool.run(operator.add, 1, 1, timeout=30)  # the worker exists
    blockers = [asyncio.ensure_future(pool.run(_tagged, f"block{i}", block, timeout=30)) for i in range(2)]
    await asyncio.sleep(0)
    queued = [asyncio.ensure_future(pool.run(fn, *args, timeout=timeout)) for fn, args, timeout in jobs]
    await asyncio.sleep(0)
    assert pool.waiting == len(jobs)
    return blockers, queued


async def test_a_lone_task_goes_alone_at_once():
    with WorkerPool(processes=1, batch=4) as pool:
        for i in range(5):
            assert await pool.run(_tagged, f"t{i}", timeout=30) == (f"t{i}", await pool.run(os.getpid, timeout=30))
        assert pool.batches == 0


async def test_queued_tasks_go_in_batches_and_each_caller_gets_its_own_result():
    with WorkerPool(processes=1, batch=4) as pool:
        worker = await pool.run(os.getpid, timeout=30)
        blockers, queued = await _backed_up(pool, [(_tagged, (f"q{i}",), 30) for i in range(10)])
        results = await asyncio.gather(*queued)
        await asyncio.gather(*blockers)
        # 10 waiting: batches of 4, 4 and 2 as admissions freed up
        assert pool.batches == 3 and pool.batches_retried == 0
        assert results == [(f"q{i}", worker) for i in range(10)]


async def test_an_exception_in_one_task_of_a_batch_reaches_its_caller_only():
    from pebble.common.types import RemoteTraceback

    with WorkerPool(processes=1, batch=4) as pool:
        blockers, queued = await _backed_up(pool, [(_tagged, ("a",), 30), (_fails, ("b",), 30),
                                                   (_tagged, ("c",), 30), (_tagged, ("d",), 30)])
        a, b, c, d = await asyncio.gather(*queued, return_exceptions=True)
        await asyncio.gather(*blockers)
        assert pool.batches == 1 and pool.batches_retried == 0  # one call, not retried: the worker was fine
    assert [a[0], c[0], d[0]] == ["a", "c", "d"]
    assert isinstance(b, ValueError) and str(b) == "bad input b"
    assert isinstance(b.__cause__, RemoteTraceback) and "_fails" in str(b.__cause__)  # the worker's traceback


async def test_a_task_that_hangs_in_a_batch_times_out_alone_and_the_others_get_their_results():
    with WorkerPool(processes=1, batch=4) as pool:
        started = time.monotonic()
        blockers, queued = await _backed_up(pool, [(_tagged, ("a",), 30), (_tagged, ("hang", 60), 1),
                                                   (_tagged, ("c",), 30), (_tagged, ("d",), 30)])
        a, hang, c, d = await asyncio.gather(*queued, return_exceptions=True)
        took = time.monotonic() - started
        await asyncio.gather(*blockers)
        worker = await pool.run(os.getpid, timeout=30)
        assert pool.batches == 1 and pool.batches_retried == 1 and pool.timeouts == 1
    assert isinstance(hang, WorkerTimeout) and "1s" in str(hang)
    assert [a[0], c[0], d[0]] == ["a", "c", "d"]
    assert c[1] == d[1] == worker  # retried alone in the replacement worker
    # cut at its own timeout in the batch (the worker's watch), then at its timeout alone: not the batch's sum (91 s)
    assert took < 30


async def test_a_worker_crash_in_a_batch_fails_only_the_task_that_caused_it():
    from monitor.workers import WorkerCrashed

    with WorkerPool(processes=1, batch=4) as pool:
        blockers, queued = await _backed_up(pool, [(_tagged, ("a",), 30), (_tagged, ("b",), 30),
                                                   (_dies, ("c",), 30), (_tagged, ("d",), 30)])
        a, b, c, d = await asyncio.gather(*queued, return_exceptions=True)
        await asyncio.gather(*blockers)
        assert pool.batches_retried == 1 and pool.crashes == 1  # the batch's own death is not counted as a crash
    assert isinstance(c, WorkerCrashed) and "exit code 3" in str(c)
    assert [a[0], b[0], d[0]] == ["a", "b", "d"]


async def test_a_task_over_the_memory_bound_in_a_batch_fails_alone_with_the_reason():
    from monitor.workers import WorkerOutOfMemory

    with WorkerPool(processes=1, batch=4, memory_limit_mb=64) as pool:
        blockers, queued = await _backed_up(pool, [(_tagged, ("a",), 30), (_hogs, (200,), 30),
                                                   (_tagged, ("c",), 30)])
        a, hog, c = await asyncio.gather(*queued, return_exceptions=True)
        await asyncio.gather(*blockers)
        assert pool.batches_retried == 1 and pool.over_memory == 1
    assert isinstance(hog, WorkerOutOfMemory) and "64 MiB" in str(hog)
    assert [a[0], c[0]] == ["a", "c"]


async def test_a_caller_cancelled_in_a_batch_loses_no_other_callers_result():
    with WorkerPool(processes=1, batch=4) as pool:
        blockers, queued = await _backed_up(pool, [(_tagged, (f"q{i}", 0.2), 30) for i in range(4)], block=0.2)
        await asyncio.sleep(0.5)  # the batch runs (its first task, or its second)
        assert pool.batches == 1
        queued[2].cancel()
        results = await asyncio.gather(*queued, return_exceptions=True)
        await asyncio.gather(*blockers)
        assert isinstance(results[2], asyncio.CancelledError)
        assert [r[0] for i, r in enumerate(results) if i != 2] == ["q0", "q1", "q3"]
        assert pool.batches_retried == 0  # the worker was not stopped for one caller of four
        # every admission came back: two lone tasks are admitted at once
        again = [asyncio.ensure_future(pool.run(operator.add, i, 1, timeout=30)) for i in range(2)]
        await asyncio.sleep(0)
        assert pool.waiting == 0
        assert await asyncio.gather(*again) == [1, 2]


async def test_a_batch_whose_callers_are_all_cancelled_stops_its_worker():
    with WorkerPool(processes=1, batch=4) as pool:
        first = await pool.run(os.getpid, timeout=30)
        blockers, queued = await _backed_up(pool, [(_tagged, (f"q{i}", 30), 60) for i in range(3)], block=0.1)
        await asyncio.sleep(0.5)  # the batch is in the worker
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        await asyncio.gather(*blockers)
        assert await pool.run(os.getpid, timeout=30) != first  # not 90 s later: the worker was replaced
        assert pool.waiting == 0


async def test_waiting_feed_parses_overtake_waiting_pages_and_wait_at_most_for_two_calls():
    from monitor.workers import PRIORITY_FEED

    with WorkerPool(processes=1, batch=4) as pool:
        await pool.run(operator.add, 1, 1, timeout=30)
        pages = [asyncio.ensure_future(pool.run(_stamp, f"page{i}", 0.3, timeout=30)) for i in range(10)]
        await pages[0]  # page1 runs; page2-5, a batch, is the ready call; page6-9 wait
        feeds = [asyncio.ensure_future(pool.run(_stamp, f"feed{i}", 0.0, timeout=30, priority=PRIORITY_FEED))
                 for i in range(2)]
        answered: dict[str, float] = {}
        for tag, feed in zip(("feed0", "feed1"), feeds):
            feed.add_done_callback(lambda _, tag=tag: answered.setdefault(tag, time.monotonic()))
        done = sorted([*await asyncio.gather(*pages), *await asyncio.gather(*feeds)], key=lambda r: r[1])
    order = [tag for tag, _ in done]
    # behind the running call and the ready one (a batch of 4 pages: the worst wait), before the waiting pages;
    # the two feeds in one batch
    assert order == [f"page{i}" for i in range(6)] + ["feed0", "feed1"] + [f"page{i}" for i in range(6, 10)]
    assert pool.batches == 3  # page2-5, the feeds, page6-9
    # and the feeds' callers had their results before page6 ended: no page rode in the feeds' call
    assert max(answered.values()) < dict(done)["page6"]
