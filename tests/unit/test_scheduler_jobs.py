"""A periodic job cut off by the daemon's shutdown ends quietly; cancelled otherwise it stays cancelled."""

from __future__ import annotations

import asyncio

from monitor.scheduler import quiet_when_stopping


async def _run_and_cancel(stopping: bool) -> asyncio.Task[None]:
    started = asyncio.Event()

    async def look_at_redis() -> None:
        started.set()
        await asyncio.sleep(30)  # a reply that the shutdown does not wait for

    task = asyncio.ensure_future(quiet_when_stopping(look_at_redis, lambda: stopping)())
    await started.wait()
    task.cancel()  # what apscheduler's shutdown does to the runs in flight
    await asyncio.wait([task])
    return task


async def test_a_job_cancelled_by_the_shutdown_ends_without_an_error_to_log():
    task = await _run_and_cancel(stopping=True)
    assert not task.cancelled() and task.exception() is None


async def test_a_job_cancelled_while_the_daemon_runs_is_still_cancelled():
    task = await _run_and_cancel(stopping=False)
    assert task.cancelled()


def test_the_job_keeps_its_functions_name_for_the_log():
    async def digests() -> None:
        return None

    assert quiet_when_stopping(digests, lambda: False).__name__ == "digests"
