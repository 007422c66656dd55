"""The worker pool: a worker killed on its deadline is replaced, and its death never reaches the daemon's signals;
the pool freezes the parent's objects before its workers fork."""

from __future__ import annotations

import asyncio
import gc
import operator
import os
import platform
import signal
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


def _parse_big_page() -> int:
    """In a worker: build and drop a large lxml tree (libxml2 allocates with malloc); the worker's growth so far."""
    from lxml import html as lxml_html

    from monitor.workers import _Watch

    tree = lxml_html.fromstring("<html><body>" + "<div><p>words and more words</p></div>" * 200_000 + "</body></html>")
    del tree
    return _Watch.grown()


def _grown_now() -> tuple[int, int]:
    from monitor.workers import _Watch

    return _Watch.grown(), _Watch.trimmed_at


async def test_a_worker_hands_a_big_pages_freed_heap_back_but_does_not_trim_after_every_small_task():
    from monitor.workers import TRIM_SLACK

    with WorkerPool(processes=1) as pool:
        await pool.run(operator.add, 1, 1, timeout=30)
        small_before = await pool.run(_grown_now, timeout=30)
        small_after = await pool.run(_grown_now, timeout=30)
        during = await pool.run(_parse_big_page, timeout=60)  # measured inside the task, before its trim
        after, trimmed_at = await pool.run(_grown_now, timeout=30)
    assert small_after[1] == small_before[1]  # small tasks: no trim, the mark did not move
    assert during > after + 2 * TRIM_SLACK  # the freed tree's heap was resident at the end of the task...
    assert trimmed_at <= after < trimmed_at + TRIM_SLACK  # ...and handed back right after it

def _children_named(name: str, *, at_least: int = 0) -> set[int]:
    """The pids of this process's children whose process name (/proc/PID/comm) is `name`; with `at_least`, waits
    (up to 30 s) until there are that many: a forked child names itself in its initializer, a moment after the fork."""
    for _ in range(600):
        named = _named_children(name)
        if len(named) >= at_least:
            break
        time.sleep(0.05)
    return named


def _named_children(name: str) -> set[int]:
    out = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    out.add(int(pid))
            except OSError:  # ended meanwhile
                pass
    return out


@pytest.mark.skipif(platform.system() != "Linux", reason="process names and /proc are Linux's")
async def test_start_forks_the_named_workers_before_any_task_and_they_run_the_tasks():
    before = _children_named("monitor-worker")
    pool = WorkerPool(processes=2)
    try:
        pool.start()
        forked = _children_named("monitor-worker", at_least=len(before) + 2) - before
        assert len(forked) == 2  # forked by start, not at the first task
        ran = {await pool.run(os.getpid, timeout=30) for _ in range(6)}
        assert ran <= forked
        assert _children_named("monitor-worker") - before == forked  # no other fork for the tasks
    finally:
        pool.close()
