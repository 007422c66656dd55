"""Hot reload of the rules folder: a new RuleSet is built aside and swapped in only if every file is valid.

A broken, half-written or deleted file leaves the last good set running; the error is kept for health output.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from pathlib import Path
from typing import Callable, Iterable

from ..errors import RuleError
from .loader import load_rules
from .matcher import RuleSet

log = logging.getLogger(__name__)

FOLDER_POLL = 1.0  # seconds between checks for a deleted rules folder to come back


class RuleWatcher:
    """Holds the current RuleSet; `reload()` on demand (SIGHUP), `watch()` on file changes."""

    def __init__(self, path: str | Path, *, on_change: Callable[[RuleSet], None] | None = None,
                 debounce_ms: int = 300, known_channels: Iterable[str] | None = None) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self.known_channels = set(known_channels) if known_channels is not None else None  # None: not checked
        self.current: RuleSet = self._load()  # the first load must succeed: RuleError otherwise
        _freeze()
        self.last_error: str | None = None
        self.last_reload_at: float | None = None
        self.reloads_ok = 0
        self.reloads_failed = 0

    def reload(self) -> bool:
        """Parse, validate and compile aside; swap only if all valid. Returns whether the set was swapped."""
        self.last_reload_at = time.time()
        try:
            new = self._load()
        except RuleError as exc:
            return self._failed(exc)
        return self._swap(new)

    async def reload_aside(self) -> bool:
        """`reload` with the loading (seconds for a large pack, more when new words need their inflected forms) in a
        thread, so the event loop, /healthz and the watchdog keep answering; the swap happens on the loop."""
        self.last_reload_at = time.time()
        try:
            new = await asyncio.to_thread(self._load)
        except RuleError as exc:
            return self._failed(exc)
        return self._swap(new)

    def _failed(self, exc: RuleError) -> bool:
        self.reloads_failed += 1
        self.last_error = str(exc)
        log.error("rules reload failed, keeping version %s: %s", self.current.version[:12], exc)
        return False

    def _swap(self, new: RuleSet) -> bool:
        self.reloads_ok += 1
        self.last_error = None
        if new.version == self.current.version:
            return False
        gc.unfreeze()  # let the old set be collected
        old, self.current = self.current, new
        _freeze()
        log.info("rules reloaded: version %s -> %s, %d rules", old.version[:12], new.version[:12], len(new.rules))
        if self.on_change is not None:
            self.on_change(new)
        return True

    def _load(self) -> RuleSet:
        return load_rules(self.path, known_channels=self.known_channels)

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload after each debounced batch of changes in the folder until `stop` is set.

        If the folder itself disappears, the last good rules stay; watching resumes when it is back.
        """
        from watchfiles import awatch

        while not stop.is_set():
            if not self.path.is_dir():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), FOLDER_POLL)
                if self.path.is_dir():
                    await self.reload_aside()
                continue
            try:
                async for changes in awatch(self.path, stop_event=stop, debounce=self.debounce_ms, recursive=True,
                                            watch_filter=_yaml_change):
                    log.debug("rules folder changed: %s", sorted(p for _c, p in changes))
                    await self.reload_aside()
                    if not self.path.is_dir():
                        break  # the watch on a deleted folder is dead: wait for it to come back
            except FileNotFoundError:
                continue  # deleted between the check and the watch


def _freeze() -> None:
    """Move the (large, long-lived) rule objects out of the cyclic collector's way: with 10,000 rules every full
    collection otherwise walks them all (measured in bench/matching.py)."""
    gc.collect()
    gc.freeze()


def _yaml_change(_change: object, path: str) -> bool:
    return path.endswith((".yaml", ".yml", ".txt", ".md")) and "/." not in path
