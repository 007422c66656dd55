"""The worker pool: a worker killed on its deadline is replaced, and its death never reaches the daemon's signals."""

from __future__ import annotations

import asyncio
import operator
import signal
import time

import pytest

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
