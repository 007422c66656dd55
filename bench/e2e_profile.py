"""`python -m bench.e2e_profile TRACE`: where a steady-phase entry spends its time from "seen" to "alert delivered".

Reads what `bench.endtoend --trace TRACE` left: TRACE.0 (stage stamps of instance 0, bench/stagetrace.py) and
TRACE.run.json (webhook arrivals, seen stamps). Prints, per stage, the p50 / p99 of its share and, over the slowest
5% of alerts, which stage held them longest.
"""

from __future__ import annotations

import collections
import json
import sys
from typing import Any

from bench.common import percentile

# (stage, from stamp, to stamp): the awaits an entry passes through, in order
SEGMENTS = [
    ("poll: feed fetch + parse + Redis", "seen", "published"),
    ("entries stream: wait to be picked", "published", "picked>"),
    ("robots + per-host gate", "picked>", "response>"),
    ("page request", "response>", "fetched"),
    ("worker pool: queue + extraction", "extracted>", "extracted"),
    ("articles stream: publish + wait to be picked", "extracted", "match>"),
    ("story assignment (MinHash)", "match>", "assigned"),
    ("archive write", "assigned", "archived"),
    ("matching + record", "archived", "matched"),
    ("outbox submit", "matched", "alert"),
    ("outbox stream: wait to be routed", "alert", "routed>"),
    ("channel: wait to be claimed", "routed", "sent>"),
    ("send to the webhook", "sent>", "arrived"),
]


def load(trace: str) -> tuple[dict[str, dict[str, float]], dict[str, Any], list[float]]:
    from monitor.dedup import canonical_url, url_hash

    run = json.loads(open(trace + ".run.json").read())
    stamps: dict[str, dict[str, float]] = collections.defaultdict(dict)
    lags: list[float] = []
    by_alert: dict[str, str] = {}
    for line in open(trace + ".0"):
        rec = json.loads(line)
        if rec["k"] == "loop":
            lags.append(rec["v"])
            continue
        if rec["k"] in ("cb", "cpu"):
            continue
        if rec["s"].startswith("alert:"):
            by_alert[rec["s"][6:]] = rec["k"]
            stamps[rec["k"]].setdefault("alert", rec["t"])
            continue
        stamps[rec["k"]].setdefault(rec["s"], rec["t"])  # the first time (a retried entry keeps its first)
    for key in list(stamps):
        if key in by_alert:  # deliverer stamps are keyed by alert id
            for stage, t in stamps.pop(key).items():
                stamps[by_alert[key]].setdefault(stage, t)
    for arrived, urls in run["arrivals"]:
        if urls:
            s = stamps.get(urls[0])
            if s is not None:
                s.setdefault("arrived", arrived)
                s["seen"] = run["seen"].get(url_hash(canonical_url(urls[0])), float("nan"))
    return stamps, run, lags


def report(trace: str) -> str:
    stamps, run, lags = load(trace)
    steady = [s for s in stamps.values() if "arrived" in s and s.get("seen", 0) >= run["steady_from"] + 2]
    total = [s["arrived"] - s["seen"] for s in steady]
    lines = [f"{len(steady)} steady alerts; seen -> delivered p50 {percentile(total, 50):.2f} s, "
             f"p99 {percentile(total, 99):.2f} s", "", "| stage | p50 s | p99 s | max s | share of the slowest 5% |",
             "| --- | ---: | ---: | ---: | ---: |"]
    slow = sorted(steady, key=lambda s: s["arrived"] - s["seen"])[-max(1, len(steady) // 20):]
    slow_total = sum(s["arrived"] - s["seen"] for s in slow)
    for name, a, b in SEGMENTS:
        d = [s[b] - s[a] for s in steady if a in s and b in s]
        ds = sum(s[b] - s[a] for s in slow if a in s and b in s)
        lines.append(f"| {name} | {percentile(d, 50):.3f} | {percentile(d, 99):.3f} | {max(d, default=0):.3f} | "
                     f"{ds / slow_total:.0%} |")
    lines.append("")
    lines.append(f"event loop: {len(lags)} wake-ups of a 20 ms sleep more than 10 ms late; worst "
                 f"{max(lags, default=0) * 1000:.0f} ms; sum {sum(lags):.1f} s")
    lines += cpu_report(trace, run["steady_from"], len(steady))
    return "\n".join(lines)


def cpu_report(trace: str, steady_from: float, alerts: int) -> list[str]:
    """Load-insensitive: the main thread's CPU in the steady phase, the loop callbacks that used > 5 ms of it each,
    and the functions cProfile (timed by main-thread CPU) found costliest."""
    import os
    import pstats

    slow: dict[str, list[float]] = collections.defaultdict(list)
    cpu = None
    for line in open(trace + ".0"):
        rec = json.loads(line)
        if rec["k"] == "cb" and rec["t"] >= steady_from:
            slow[rec["s"]].append(rec["v"])
        elif rec["k"] == "cpu":
            cpu = rec
    lines = [""]
    if cpu:
        lines.append(f"main thread CPU in the steady phase: {cpu['v']:.1f} s ({cpu['p']:.1f} s with its other "
                     f"threads); {alerts} steady alerts")
    total = sum(sum(v) for v in slow.values())
    lines += ["", f"loop callbacks over 5 ms of CPU (steady phase and after): {sum(map(len, slow.values()))}, "
              f"{total:.1f} s CPU", "", "| callback | count | CPU s | max ms |", "| --- | ---: | ---: | ---: |"]
    for what, v in sorted(slow.items(), key=lambda kv: -sum(kv[1]))[:15]:
        lines.append(f"| {what} | {len(v)} | {sum(v):.2f} | {max(v) * 1000:.0f} |")
    if os.path.exists(trace + ".0.prof"):
        lines += samples_report(trace + ".0.prof")
    return lines


def samples_report(path: str, top: int = 30) -> list[str]:
    """The CPU sampler's stacks (bench/stagetrace.py CpuSampler): the share of main-thread samples per function,
    inclusive (on the stack) and self (the innermost frame)."""
    data = json.loads(open(path).read())
    total = sum(n for _, n in data["stacks"]) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for stack, n in data["stacks"]:
        own[stack[0]] += n
        for fn in set(stack):
            inclusive[fn] += n
    lines = ["", f"CPU samples of the main thread in the steady phase: {total} (one per {data['interval'] * 1000:g} ms "
             "of process CPU)", "", "| function (inclusive) | share |", "| --- | ---: |"]
    lines += [f"| {fn} | {n / total:.1%} |" for fn, n in inclusive.most_common(top)]
    lines += ["", "| function (self) | share |", "| --- | ---: |"]
    lines += [f"| {fn} | {n / total:.1%} |" for fn, n in own.most_common(top)]
    return lines


if __name__ == "__main__":
    print(report(sys.argv[1]))
