"""`python -m bench` runs its children (the feed server, `monitor run`) with the interpreter that started it.

The benchmark package is copied into a folder that has no `.venv`, as a checkout installed into any other virtualenv
would be, and its helpers start real children from there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

CHILDREN = """
import urllib.request
from pathlib import Path
from bench.common import feed_server
from bench.endtoend import start_instances

with feed_server(feeds=2, items=1, hosts=1, pages="none") as server:  # no corpus needed
    with urllib.request.urlopen(server.feeds[0], timeout=10) as resp:
        print("feed", resp.status)
work = Path.cwd()
(proc,) = start_instances(1, work / "missing.yaml", work)
print("monitor exit", proc.wait(timeout=120))
"""


def test_bench_children_use_the_running_interpreter(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "bench", tmp_path / "bench", ignore=shutil.ignore_patterns(".cache", ".venvs"))
    assert not (tmp_path / ".venv").exists()
    out = subprocess.run([sys.executable, "-c", CHILDREN], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "feed 200" in out.stdout
    log = (tmp_path / "instance0.log").read_text()
    assert "missing.yaml" in log  # monitor itself ran and named the config it could not read
    assert "Traceback" not in log
