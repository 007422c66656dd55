"""Alert sends: the cost of a forked child per send, and how long a dripping service holds a request open.

Side by side in one run: apprise's `async_notify(timeout=)` in the daemon's process (before) and
`monitor.alerts.sending.send_in_child` (now), to a fast loopback webhook and to one that drips its answer.

    python -m bench.sends [--fast 30] [--drips 3] [--every 0.2] [--timeout 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import apprise

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from receivers import DripReceiver, WebhookReceiver  # noqa: E402

from monitor.alerts.channelset import load_service  # noqa: E402
from monitor.alerts.sending import send_in_child  # noqa: E402


def _apprise(url: str) -> apprise.Apprise:
    ap = apprise.Apprise()
    ap.add(load_service(url))
    return ap


async def _before(ap: apprise.Apprise, timeout: float) -> None:
    await ap.async_notify(body="b", title="t", timeout=timeout)


async def _now(ap: apprise.Apprise, timeout: float) -> None:
    await send_in_child(ap, alert_id="a0", timeout=timeout, body="b", title="t")


async def fast_sends(n: int) -> dict[str, float]:
    """Median ms per send to a webhook that answers at once, alternating the two ways."""
    times: dict[str, list[float]] = {"before": [], "now": []}
    async with WebhookReceiver() as hook:
        ap = _apprise(hook.url())
        for _ in range(n):
            for name, way in (("before", _before), ("now", _now)):
                start = time.perf_counter()
                await way(ap, 30)
                times[name].append((time.perf_counter() - start) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


async def drip_sends(n: int, every: float, timeout: float) -> dict[str, dict[str, float]]:
    """Per way: median seconds the call took and the request stayed open (until the receiver saw it end)."""
    out: dict[str, dict[str, float]] = {}
    for name, way in (("before", _before), ("now", _now)):
        calls, lifetimes = [], []
        for _ in range(n):
            async with DripReceiver(every=every) as drip:
                ap = _apprise(drip.url())
                start = time.perf_counter()
                await way(ap, timeout)
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
    print(f"fast webhook, median ms per send (n={args.fast} each): in-process {fast['before']:.1f}, "
          f"forked child {fast['now']:.1f}, ratio {fast['now'] / fast['before']:.2f}")
    drips = await drip_sends(args.drips, args.every, args.timeout)
    answer = len(DripReceiver.ANSWER) * args.every
    print(f"dripping webhook ({answer:.0f} s to answer in full), send_timeout {args.timeout:g} s, medians of "
          f"{args.drips}:")
    for name, figures in drips.items():
        print(f"  {name:6s} call {figures['call_s']:.2f} s, request open {figures['request_open_s']:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
