"""The shared corpus the benchmarks read: $MONITOR_CORPUS only, as for the tests' sweeps (no path guessed beside the
checkout: a clone elsewhere has none). A leaf module: bench/server.py runs as its own process and imports only this."""

from __future__ import annotations

import os
from pathlib import Path


class CorpusMissing(SystemExit):
    """MONITOR_CORPUS is unset or names no folder: one line, no traceback."""


def corpus(part: str = "") -> Path:
    """$MONITOR_CORPUS / part, checked to be a folder."""
    value = os.environ.get("MONITOR_CORPUS")
    if not value:
        raise CorpusMissing("bench: this figure reads the shared corpus: set MONITOR_CORPUS=/path/to/shared/corpus")
    path = Path(value) / part
    if not path.is_dir():
        raise CorpusMissing(f"bench: MONITOR_CORPUS: {path} is not a folder")
    return path
