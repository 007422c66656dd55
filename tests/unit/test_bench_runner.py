"""`python -m bench` runs each figure with the interpreter that starts it and prints issue 14's table with verdicts.

One figure at --quick sizes (a smoke run: nothing here looks at how fast anything was), its result file in a
temporary folder ($BENCH_RESULTS), the corpus subset as its pages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_runner_runs_a_figure_and_prints_its_row_with_a_verdict(tmp_path, corpus):
    pytest.importorskip("psutil")  # the bench extra
    env = {**os.environ, "BENCH_RESULTS": str(tmp_path), "MONITOR_CORPUS": str(corpus)}
    before = (ROOT / "BENCHMARKS.md").read_bytes()
    out = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "extraction"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"== {sys.executable} -m bench.extraction" in out.stdout  # this interpreter, whatever its virtualenv
    assert (tmp_path / "extraction.json").is_file()
    rows = {cells[0]: cells[1:] for line in out.stdout.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip().strip("|").split("|")]]}
    measured, target, verdict = rows["extraction, 1 worker, vs bare trafilatura"]
    assert re.fullmatch(r"\d+\.\d\dx \(.* articles/s\)", measured) and target == ">= 0.95x"
    assert verdict.split()[0] in ("met", "missed") and "--quick" in verdict
    measured, _, verdict = rows["cold feed refresh, 1,000 feeds x 20 items, vs newsboat with 32 reload threads"]
    assert measured == "not measured: bench.feeds not run (--only)" and verdict == "-"
    assert len(rows) == 2 + 7  # the header, its rule and issue 14's seven figures
    assert (ROOT / "BENCHMARKS.md").read_bytes() == before  # --quick never writes the published figures


def test_quick_and_write_together_are_refused_in_one_line():
    out = subprocess.run([sys.executable, "-m", "bench", "--quick", "--write", "--only", "extraction"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "drop --write" in out.stderr and "Traceback" not in out.stderr
