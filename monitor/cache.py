"""Where the daemon and the rule tools cache what they derive from their dependencies' data (rebuilt when missing)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path | None:
    """systemd's $CACHE_DIRECTORY (CacheDirectory=), else $XDG_CACHE_HOME/monitor, else ~/.cache/monitor; None when
    there is no home (what would be cached is then computed at every start)."""
    if os.environ.get("CACHE_DIRECTORY"):
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache" if Path.home() != Path("/") else None)
    return Path(base) / "monitor" if base else None
