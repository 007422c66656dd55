"""`python -m bench`: every figure of BENCHMARKS.md, one after the other (they must not share the 2 cores).

Every child (the feed server, `monitor run`, contenders' drivers) runs with the interpreter that started this.

    .venv/bin/python -m bench                         # all figures, full sizes (about 60 minutes, memory is 30)
    .venv/bin/python -m bench --quick                 # small sizes, a few minutes; writes the tables too
    .venv/bin/python -m bench --only feeds,extraction # some figures
    .venv/bin/python -m bench --no-write              # print, leave BENCHMARKS.md alone
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys

from bench import endtoend, extraction, feeds, memory, redis_memory
from bench.common import R2E_VERSION_CMD, machine_facts, package_versions, utc_now, write_section

FIGURES = ("feeds", "extraction", "matching", "endtoend", "memory", "redis_memory")


def machine_section() -> str:
    facts = machine_facts()
    lines = [f"Recorded {utc_now()} by `python -m bench` ({sys.executable}; every child runs with it too).", ""]
    lines += [f"- {name}: {value}" for name, value in facts.items()]
    lines.append("- monitor's stack: " + package_versions(
        ["aiohttp", "feedparser", "trafilatura", "redis", "pebble", "apprise", "pyahocorasick", "datasketch"]))
    lines.append("- Redis: " + _redis_version() + " at 127.0.0.1:6379 (each run uses its own key prefix)")
    lines.append("- contenders: " + ", ".join(_contender_versions()))
    lines += [
        "- every load is on loopback addresses: the feed/page server (`bench/server.py`) runs as its own process "
        "bound to 127.0.0.1 and 127.0.0.2 ... (one site per address, so per-host limits are not what is measured); "
        "it shares the 2 cores with whatever is measured, as does the Redis server.",
        "- figures are medians of alternating runs; raw results are kept under `bench/.cache/results/` (git-ignored)",
        "- the machine is shared: other sessions' test suites ran on the same 2 cores during these measurements; "
        "each section says how many cores other processes kept busy (\"other load\")",
        "",
        "Reproduce: `python -m bench` from the checkout, with the Python of any virtualenv that has "
        "`pip install -e '.[test,bench]'` (every figure, about an hour: the memory figure alone runs 30 "
        "minutes), `.venv/bin/python -m bench --only feeds,extraction` for some, `--quick` for a smoke run with "
        "small sizes, `--no-write` to leave this file alone. Each figure also runs alone: `python -m bench.feeds`, "
        "`bench.extraction`, `bench.matching`, `bench.endtoend`, `bench.memory` (`--help` lists the sizes). "
        "rss2email is installed with `python3 -m venv bench/.venvs/rss2email && bench/.venvs/rss2email/bin/pip "
        "install rss2email`, newsboat with `apt-get install -y newsboat`.",
    ]
    return "\n".join(lines)


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(FIGURES), help="comma-separated: " + ", ".join(FIGURES))
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not the published figures)")
    p.add_argument("--no-write", dest="write", action="store_false")
    args = p.parse_args()
    chosen = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        p.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    flag = ["--no-write"] if not args.write else []
    if args.write:
        write_section("Machine", machine_section())
    quick = {
        "feeds": ["--feeds", "200", "--runs", "1"],
        "extraction": ["--passes", "1", "--runs", "1", "--tries", "1"],
        "matching": ["--sizes", "10,100,1000", "--runs", "1"],
        "endtoend": ["--feeds", "50", "--steady", "20", "--max-instances", "1"],
        "memory": ["--minutes", "3", "--warmup", "1", "--feeds", "200", "--rotate", "60", "--table-every", "1"],
        "redis_memory": ["--entries", "200", "--runs", "1"],
    }
    for figure in chosen:
        extra = (quick[figure] if args.quick else []) + flag
        print(f"== {figure} {' '.join(extra)}", flush=True)
        if figure == "matching":
            if importlib.util.find_spec("bench.matching") is None:
                print("   bench/matching.py is not there; skipped")
                continue
            subprocess.run([sys.executable, "-m", "bench.matching", *extra], check=False)
            continue
        module = {"feeds": feeds, "extraction": extraction, "endtoend": endtoend, "memory": memory,
                  "redis_memory": redis_memory}[figure]
        module.main(extra)


if __name__ == "__main__":
    main()
