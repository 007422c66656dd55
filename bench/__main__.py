"""`python -m bench`: every figure of BENCHMARKS.md, one after the other (they must not share the 2 cores), then
issue 14's table: | figure | measured | target | verdict |.

Each figure runs as `<this interpreter> -m bench.<figure>` (and every child it starts runs with that interpreter too:
any virtualenv with `pip install -e '.[test,bench]'`, not only ./.venv). A row reads the result file its figure
wrote in this run (bench/.cache/results/<figure>.json, or $BENCH_RESULTS/); a row that cannot be measured here says
"not measured: why", never a number from an earlier run.

    python -m bench                          # all figures, full sizes (about 90 minutes, memory alone is 30)
    python -m bench --write                  # the same, and each figure's section plus the table into BENCHMARKS.md
    python -m bench --only feeds,extraction  # some figures (the other rows: "not measured: not run")
    python -m bench --quick                  # a smoke run of the runner with tiny sizes (no figure worth quoting)
    python -m bench --against ../wt-main     # bench.feeds and bench.matching also run that checkout's code
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (R2E_VERSION_CMD, ROOT, machine_facts, median, package_versions, results_dir, table, utc_now,
                          write_section)

FIGURES = ("feeds", "extraction", "matching", "endtoend", "memory", "redis_memory")
FULL: dict[str, list[str]] = {
    "feeds": ["--runs", "3", "--contenders", "monitor,feedparser-only,newsboat-threads"],
    "extraction": ["--runs", "3", "--passes", "3", "--tries", "2"],
    "matching": ["--shapes", "generic,desk,pack,pack-dev"],
    "endtoend": [],
    "memory": [],
    "redis_memory": [],
}
# --quick: the smallest sizes that still run every stage of a figure (seconds, not minutes)
QUICK: dict[str, list[str]] = {
    "feeds": ["--feeds", "20", "--runs", "1", "--contenders", "monitor", "--newsboat-threads", "0"],
    "extraction": ["--pages", "3", "--passes", "1", "--runs", "1", "--tries", "1"],
    "matching": ["--sizes", "10,100", "--runs", "1", "--shapes", "desk"],
    "endtoend": ["--feeds", "20", "--steady", "10", "--max-instances", "1"],
    "memory": ["--minutes", "2", "--warmup", "1", "--feeds", "100", "--rotate", "60", "--table-every", "1"],
    "redis_memory": ["--entries", "100", "--runs", "1"],
}
SUMMARY_TITLE = "Issue 14: every figure and its verdict"


class NotMeasured(Exception):
    """Why a row has no figure on this run (the text after "not measured: ")."""


@dataclass(frozen=True)
class Row:
    figure: str
    target: str
    module: str  # the bench module whose result file holds it
    read: Callable[[dict[str, Any], bool], tuple[str, bool]]  # (result, quick) -> (measured text, met)


# ------------------------------------------------------------------------------------------------ the rows
def _one_instance(result: dict[str, Any], n: int = 1) -> list[dict[str, Any]]:
    runs = (result.get("results") or {}).get(str(n)) or (result.get("results") or {}).get(n)
    if not runs:
        raise NotMeasured(f"bench.endtoend ran no {n}-instance case (--max-instances)")
    return runs


def read_p99(result: dict[str, Any], quick: bool) -> tuple[str, bool]:
    p99 = median([r["steady_p99"] for r in _one_instance(result)])
    rate = result.get("args", {}).get("rate", 40)
    return f"{p99:.2f} s at {rate:.0f} entries/s", p99 < 2


def read_pss(result: dict[str, Any], quick: bool) -> tuple[str, bool]:
    pss = median([r["peak_pss_mb"] for r in _one_instance(result)])
    return f"{pss:.0f} MB PSS", pss <= 300


def read_per_host(result: dict[str, Any], quick: bool) -> tuple[str, bool]:
    peak = max(r["server"]["peak_per_host"] for r in _one_instance(result, 2))
    return f"{peak} at once", peak <= 4


def read_redis(result: dict[str, Any], quick: bool) -> tuple[str, bool]:
    now = result["now"]
    per = now["used_delta"] / now["entries"]
    if "seen_at_scale" not in now:
        return f"{per / 1000:.1f} KB per entry", per <= 3000
    # at scale a seen URL costs what seen_at_scale measured, not what this run's few thousand did (bench.redis_memory)
    scale = per - now["by_kind"].get("seen URLs", 0) / now["entries"] + now["seen_at_scale"]
    return f"{per:,.0f} B per entry ({scale:,.0f} B at scale)", max(per, scale) <= 3000


def read_feeds(result: dict[str, Any], quick: bool) -> tuple[str, bool]:
    summary = result["summary"]
    threads = [name for name in summary if name.startswith("newsboat (reload-threads")]
    if not threads:
        installed = shutil.which("newsboat")
        raise NotMeasured("newsboat with reload threads was not run (" +
                          ("left out" if installed else "not installed: `apt-get install -y newsboat`") + ")")
    x = summary["monitor"]["cold_feeds_per_s"] / summary[threads[0]]["cold_feeds_per_s"]
    return f"{x:.2f}x ({summary['monitor']['cold_feeds_per_s']:.0f} vs {summary[threads[0]]['cold_feeds_per_s']:.0f} " \
           "feeds/s)", x >= 1.5


def read_matching(result: dict[str, Any], quick: bool) -> tuple[str, bool]:
    sized = [shape for shape in result["results"] if shape not in ("pack", "pack-dev")]  # (a pack has one size)
    if not sized:
        return "not measured (no generated rule set was run)", False
    shape = "desk" if "desk" in sized else sized[0]
    rows = result["results"][shape]
    x = rows[-1]["us"]["new"] / rows[0]["us"]["new"]
    return f"{x:.1f}x ({rows[-1]['rules']:,} vs {rows[0]['rules']:,} rules, {shape} rules)", x <= 3


def read_extraction(result: dict[str, Any], quick: bool) -> tuple[str, bool]:
    s = result["summary"]
    x = s["monitor/1"] / s["bare/1"]
    return f"{x:.2f}x ({s['monitor/1']:.1f} vs {s['bare/1']:.1f} articles/s)", x >= 0.95


ROWS = (
    Row("end to end, 1 instance, steady 40 entries/s: entry seen -> alert delivered, p99", "< 2 s", "endtoend",
        read_p99),
    Row("Redis memory per new entry (seen URL, story, archive)", "<= 3 KB", "redis_memory", read_redis),
    Row("requests one site sees at once with 2 instances, `per_host: 4`", "<= 4", "endtoend", read_per_host),
    Row("end to end, peak PSS of one instance (main + 2 workers)", "<= 300 MB", "endtoend", read_pss),
    Row("cold feed refresh, 1,000 feeds x 20 items, vs newsboat with 32 reload threads", ">= 1.5x", "feeds",
        read_feeds),
    Row("matching, cost per article of 10,000 rules vs 10", "<= 3x", "matching", read_matching),
    Row("extraction, 1 worker, vs bare trafilatura", ">= 0.95x", "extraction", read_extraction),
)


def row_cells(row: Row, ran: dict[str, str], quick: bool) -> list[str]:
    """The table row; `ran` maps each figure run to "" (it wrote its result) or why it did not."""
    if row.module not in ran:
        measured, verdict = f"not measured: bench.{row.module} not run (--only)", "-"
    elif ran[row.module]:
        measured, verdict = f"not measured: {ran[row.module]}", "-"
    else:
        try:
            result = json.loads((results_dir() / f"{row.module}.json").read_text())
            text, met = row.read(result, quick)
            measured, verdict = text, "met" if met else "missed"
        except NotMeasured as exc:
            measured, verdict = f"not measured: {exc}", "-"
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as exc:
            measured, verdict = f"not measured: bench.{row.module}'s result has no such figure ({exc!r})", "-"
        if quick and verdict != "-":
            verdict += " (--quick sizes: not the figure)"
    return [row.figure, measured, row.target, verdict]


# ------------------------------------------------------------------------------------------------ running
def run_figure(figure: str, extra: list[str]) -> str:
    """Run `python -m bench.<figure>`; "" when it wrote its result file in this run, else why not."""
    path = results_dir() / f"{figure}.json"
    started = time.time()
    print(f"== {sys.executable} -m bench.{figure} {' '.join(extra)}", flush=True)
    if figure == "matching" and not (ROOT / "bench" / "matching.py").exists():
        return "bench/matching.py is not there"
    code = subprocess.run([sys.executable, "-m", f"bench.{figure}", *extra], cwd=ROOT, check=False).returncode
    if path.exists() and path.stat().st_mtime >= started and code == 0:
        return ""
    return f"bench.{figure} failed (exit code {code})" if code else f"bench.{figure} wrote no {path.name}"


def machine_section() -> str:
    facts = machine_facts()
    lines = [f"Recorded {utc_now()} by `python -m bench --write` ({sys.executable}; every child runs with it too).",
             ""]
    lines += [f"- {name}: {value}" for name, value in facts.items()]
    lines.append("- monitor's stack: " + package_versions(
        ["aiohttp", "feedparser", "lxml", "trafilatura", "redis", "pebble", "apprise", "ahocorasick-rs",
         "Brotli", "numpy", "py3langid"]))
    lines.append("- Redis: " + _redis_version() + " at 127.0.0.1:6379 (each run uses its own key prefix)")
    lines.append("- contenders: " + ", ".join(_contender_versions()))
    lines.append(f"- load when recorded: `uptime`: {_uptime()}")
    lines += [
        "- every load is on loopback addresses: the feed/page server (`bench/server.py`) runs as its own process "
        "bound to 127.0.0.1 and 127.0.0.2 ... (one site per address, so per-host limits are not what is measured); "
        "it shares the 2 cores with whatever is measured, as does the Redis server.",
        "- figures are medians of alternating runs; raw results are kept under `bench/.cache/results/` (git-ignored)",
        "- the machine is shared: other sessions' test suites ran on the same 2 cores during these measurements; "
        "each section says how many cores other processes kept busy (\"other load\"); ratios measured side by side "
        "in one run are what count",
        "",
        "Reproduce: `MONITOR_CORPUS=/path/to/shared/corpus python -m bench` from the checkout (the corpus is read "
        "from $MONITOR_CORPUS only), with the Python of any virtualenv that has "
        "`pip install -e '.[test,bench]'`: every figure, then issue 14's table with its verdicts (`--write` also "
        "refreshes each figure's section and the table here; about 90 minutes, the memory figure alone runs 30). "
        "`--only feeds,extraction` runs some figures, `--quick` is a smoke run of the runner with tiny sizes. Each "
        "figure also runs alone: `python -m bench.feeds`, `bench.extraction`, `bench.matching`, `bench.endtoend`, "
        "`bench.memory`, `bench.redis_memory` (`--help` lists the sizes). rss2email is installed with `python3 -m "
        "venv bench/.venvs/rss2email && bench/.venvs/rss2email/bin/pip install rss2email`, newsboat with "
        "`apt-get install -y newsboat`.",
    ]
    return "\n".join(lines)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _redis_version() -> str:
    import redis

    try:
        return "Redis " + str(redis.Redis(host="127.0.0.1", port=6379).info("server")["redis_version"])
    except redis.RedisError:
        return "Redis (unreachable)"


def _contender_versions() -> list[str]:
    out = []
    try:
        text = subprocess.run(R2E_VERSION_CMD, capture_output=True, text=True, timeout=30).stdout.strip()
        out.append(f"rss2email {text.split()[-1]} (own venv bench/.venvs/rss2email)" if text else "rss2email missing")
    except (OSError, subprocess.SubprocessError):
        out.append("rss2email not installed")
    newsboat_bin = shutil.which("newsboat")
    if newsboat_bin:
        first = subprocess.run([newsboat_bin, "-v"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
        out.append(first.split(" - ")[0] + " (Debian package)")
    else:
        out.append("newsboat not installed")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(FIGURES), help="comma-separated: " + ", ".join(FIGURES))
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the runner, not the figures")
    p.add_argument("--write", action="store_true",
                   help="write each figure's section and issue 14's table into BENCHMARKS.md")
    p.add_argument("--no-write", dest="write", action="store_false", help="(the default) print only")
    p.add_argument("--against", help="another checkout (e.g. of main): bench.feeds and bench.matching run its code "
                   "too, side by side")
    args = p.parse_args(argv)
    chosen = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        p.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    if args.quick and args.write:
        p.error("--quick sizes are a smoke run, not figures to publish: drop --write")
    ran = {}
    for figure in chosen:
        extra = (QUICK if args.quick else FULL)[figure] + ([] if args.write else ["--no-write"])
        if args.against and figure in ("feeds", "matching"):
            extra += ["--against", args.against]
        ran[figure] = run_figure(figure, extra)
    rows = [row_cells(row, ran, args.quick) for row in ROWS]
    text = table(["figure", "measured", "target", "verdict"], rows)
    print("\n" + text, flush=True)
    if args.write:
        write_section("Machine", machine_section())
        write_section(SUMMARY_TITLE, f"Recorded {utc_now()} by `python -m bench --write"
                      f"{' --only ' + args.only if args.only != ','.join(FIGURES) else ''}"
                      f"{' --against ' + args.against if args.against else ''}` "
                      f"(`uptime`: {_uptime()}).\n\n{text}")


if __name__ == "__main__":
    main()
