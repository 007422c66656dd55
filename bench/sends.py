"""Alert sends: the cost of a forked child per send, and how long a dripping service holds a request open.

Side by side in one run: apprise's `async_notify(timeout=)` in the daemon's process (before),
`monitor.alerts.sending.send_in_child` (a child forked per send) and `SendProcesses` (a channel's long-lived send
processes, what the daemon uses), to a fast loopback webhook and to one that drips its answer. For the fast webhook
also the CPU per send of this process and of its children (load-insensitive, unlike the wall times).

    python -m bench.sends [--fast 30] [--drips 3] [--every 0.2] [--timeout 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path

import apprise

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from receivers import DripReceiver, WebhookReceiver  # noqa: E402

from monitor.alerts.channelset import load_service  # noqa: E402
from monitor.alerts.channelset import ChannelSet  # noqa: E402
from monitor.alerts.sending import SendProcesses, send_in_child  # noqa: E402
from monitor.settings import ChannelSettings  # noqa: E402


def _apprise(url: str) -> apprise.Apprise:
    ap = apprise.Apprise()
    ap.add(load_service(url))
    return ap


async def _before(ap: apprise.Apprise, timeout: float) -> None:
    await ap.async_notify(body="b", title="t", timeout=timeout)


async def _now(ap: apprise.Apprise, timeout: float) -> None:
    await send_in_child(ap, alert_id="a0", timeout=timeout, body="b", title="t")


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


async def fast_sends(n: int) -> dict[str, dict[str, float]]:
    """Per way: median ms per send to a webhook that answers at once, and CPU ms per send of this process and of
    its children (reaped children only: a send process is counted once its pool is closed), in alternating rounds."""
    times: dict[str, list[float]] = {"before": [], "child": [], "pool": []}
    cpu = {name: [0.0, 0.0] for name in times}
    async with WebhookReceiver() as hook:
        ap = _apprise(hook.url())
        channels = ChannelSet.build({"hook": ChannelSettings(urls=[hook.url()])})
        spec = channels.get("hook")
        processes = SendProcesses(channels)

        async def pool(_ap: apprise.Apprise, timeout: float) -> None:
            await processes.send("hook", spec.targets[0].apprise, alert_id="a0", timeout=timeout, body="b", title="t")

        await pool(ap, 30)  # start the channel's processes outside the measured rounds
        ways = (("before", _before), ("child", _now), ("pool", pool))
        for _ in range(n):
            for name, way in ways:
                own0, kids0 = _cpu()
                start = time.perf_counter()
                await way(ap, 30)
                times[name].append((time.perf_counter() - start) * 1000)
                if name == "pool":  # the pool's processes are not reaped until closed: counted below
                    cpu[name][0] += _cpu()[0] - own0
                else:
                    own1, kids1 = _cpu()
                    cpu[name][0] += own1 - own0
                    cpu[name][1] += kids1 - kids0
        kids0 = _cpu()[1]
        processes.close()
        cpu["pool"][1] = _cpu()[1] - kids0  # includes the first send and the processes' start
    return {name: {"ms": statistics.median(v), "cpu_own_ms": cpu[name][0] * 1000 / n,
                   "cpu_children_ms": cpu[name][1] * 1000 / n} for name, v in times.items()}


async def _pooled(url: str, timeout: float) -> None:
    channels = ChannelSet.build({"hook": ChannelSettings(urls=[url])})
    processes = SendProcesses(channels)
    try:
        await processes.send("hook", channels.get("hook").targets[0].apprise, alert_id="a0", timeout=timeout,
                             body="b", title="t")
    finally:
        processes.close()


async def drip_sends(n: int, every: float, timeout: float) -> dict[str, dict[str, float]]:
    """Per way: median seconds the call took and the request stayed open (until the receiver saw it end)."""
    out: dict[str, dict[str, float]] = {}
    for name in ("before", "child", "pool"):
        calls, lifetimes = [], []
        for _ in range(n):
            async with DripReceiver(every=every) as drip:
                start = time.perf_counter()
                if name == "pool":
                    await _pooled(drip.url(), timeout)
                else:
                    await (_before if name == "before" else _now)(_apprise(drip.url()), timeout)
                calls.append(time.perf_counter() - start)
                while drip.open or not drip.requests:  # until the request has ended, however it ends
                    await asyncio.sleep(0.02)
                lifetimes.append(time.perf_counter() - start)
        out[name] = {"call_s": statistics.median(calls), "request_open_s": statistics.median(lifetimes)}
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", type=int, default=30, help="sends per way to the fast webhook")
    parser.add_argument("--drips", type=int, default=3, help="sends per way to the dripping webhook")
    parser.add_argument("--every", type=float, default=0.2, help="seconds between two bytes of the drip")
    parser.add_argument("--timeout", type=float, default=3.0, help="send_timeout")
    args = parser.parse_args()
    fast = await fast_sends(args.fast)
    print(f"fast webhook, n={args.fast} sends per way:")
    for name, label in (("before", "in-process"), ("child", "forked child"), ("pool", "send processes")):
        f = fast[name]
        print(f"  {label:15s} median {f['ms']:6.1f} ms; CPU per send: this process {f['cpu_own_ms']:5.1f} ms, "
              f"children {f['cpu_children_ms']:5.1f} ms")
    drips = await drip_sends(args.drips, args.every, args.timeout)
    answer = len(DripReceiver.ANSWER) * args.every
    print(f"dripping webhook ({answer:.0f} s to answer in full), send_timeout {args.timeout:g} s, medians of "
          f"{args.drips}:")
    for name, figures in drips.items():
        print(f"  {name:6s} call {figures['call_s']:.2f} s, request open {figures['request_open_s']:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
