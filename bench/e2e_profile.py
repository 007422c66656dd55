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
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(sys.argv[1]))
