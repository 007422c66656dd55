"""The workers' zygote (monitor/zygote.py): every worker, a replacement too, is forked from the start-up heap."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.workers import WorkerPool
from monitor.zygote import ZygoteContext, available

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or not available(), reason="pidfds are Linux's")

MARK = ["start-up"]  # what the daemon's heap held when the pool started; rewritten later in this process


def _mark_and_parent() -> tuple[str, int, int]:
    return MARK[0], os.getpid(), os.getppid()


def _exit_with(code: int) -> None:
    os._exit(code)


def _sleep() -> None:
    time.sleep(60)


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # ended, not yet reaped by whoever is its parent now
            return True
        time.sleep(0.05)
    return False


async def test_replacement_workers_are_forked_from_the_start_up_heap():
    """max_tasks=1: a new worker for every task. Each is the zygote's child and sees what this process held when
    the pool started, not what it holds when the worker is forked (a fork from here would see "rewritten")."""
    pool = WorkerPool(processes=1, max_tasks=1, batch=1)
    try:
        pool.start()
        MARK[0] = "rewritten"
        seen = [await pool.run(_mark_and_parent, timeout=30) for _ in range(4)]
    finally:
        MARK[0] = "start-up"
        zygote = pool.zygote_pid
        pool.close()
    assert zygote is not None and zygote != os.getpid()
    assert {mark for mark, _, _ in seen} == {"start-up"}
    assert {parent for _, _, parent in seen} == {zygote}
    assert len({pid for _, pid, _ in seen}) == 4  # four workers, one after the other
    assert _gone(zygote)  # the pool's close ends the zygote


async def test_without_the_zygote_each_worker_is_forked_from_this_process_as_it_is_then():
    """workers.zygote: false: the replacements see what this process holds when each is forked."""
    pool = WorkerPool(processes=1, max_tasks=1, batch=1, zygote=False)
    try:
        pool.start()
        MARK[0] = "rewritten"
        seen = [await pool.run(_mark_and_parent, timeout=30) for _ in range(3)]
    finally:
        MARK[0] = "start-up"
        pool.close()
    assert pool.zygote_pid is None
    assert {parent for _, _, parent in seen} == {os.getpid()}
    assert [mark for mark, _, _ in seen][1:] == ["rewritten", "rewritten"]  # the first may have forked at start()


def test_exit_codes_signals_and_join_as_multiprocessing_gives_them():
    context = ZygoteContext()
    try:
        first = context.Process(target=_exit_with, args=(7,))
        first.start()
        first.join(10)
        assert first.exitcode == 7 and not first.is_alive()
        with pytest.raises(ValueError):  # a zygote forks only its first process's twins
            context.Process(target=_exit_with, args=(8,)).start()
    finally:
        context.close()
    context = ZygoteContext()
    try:
        sleeper = context.Process(target=_sleep)
        sleeper.start()
        assert sleeper.is_alive()
        sleeper.join(0.2)
        assert sleeper.exitcode is None
        sleeper.terminate()
        sleeper.join(10)
        assert sleeper.exitcode == -signal.SIGTERM
    finally:
        context.close()


async def test_a_killed_zygote_is_replaced_and_the_pool_goes_on():
    pool = WorkerPool(processes=1, max_tasks=1, batch=1)
    try:
        pool.start()
        first = pool.zygote_pid
        assert (await pool.run(_mark_and_parent, timeout=30))[2] == first
        os.kill(first, signal.SIGKILL)
        assert _gone(first)
        parents = {(await pool.run(_mark_and_parent, timeout=30))[2] for _ in range(3)}
        second = pool.zygote_pid
    finally:
        pool.close()
    assert second is not None and second != first
    assert second in parents


def test_the_zygote_and_its_workers_end_with_a_killed_daemon():
    """SIGKILL leaves no clean-up to the daemon: the zygote (parent-death signal) and then its workers (their
    pool's channel closes) end on their own."""
    script = ("import asyncio, os, sys, time; from monitor.workers import WorkerPool\n"
              "async def main():\n"
              "    pool = WorkerPool(processes=2)\n"
              "    pool.start()\n"
              "    pids = {await pool.run(os.getpid, timeout=30) for _ in range(8)}\n"
              "    print(pool.zygote_pid, *pids, flush=True)\n"
              "    time.sleep(120)\n"
              "asyncio.run(main())\n")
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in daemon.stdout.readline().split()]  # type: ignore[union-attr]
        assert len(pids) >= 2
        daemon.kill()
        daemon.wait(10)
        assert [pid for pid in pids if not _gone(pid)] == []
    finally:
        daemon.kill()
        daemon.wait(10)


def test_waits_on_descriptors_numbered_above_select_s_limit():
    """The daemon runs with LimitNOFILE=65536: a worker's pidfd may be numbered 1,024 or above, which select()
    refuses (ValueError); the zygote's waits use poll."""
    import resource

    from monitor.zygote import _readable

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1500:
        pytest.skip(f"this process may open no descriptor numbered 1500 (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    read, write = os.pipe()
    high = os.dup2(read, 1500)
    try:
        assert _readable([high], 0) == []
        os.write(write, b"x")
        assert _readable([high], 1) == [high]
    finally:
        for fd in (high, read, write):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
