"""The Lua scripts of monitor, one file each in store/scripts/ (each file opens with its contract).

`register(redis, "claim_lease")` gives redis-py's Script object: call it with keys= and args=; it loads itself
(EVALSHA, then SCRIPT LOAD once on NOSCRIPT) and its errors are mapped like any command's (store/errors.py).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

NAMES = ("claim_lease", "host_slots", "assign_story", "route_send", "route_hold", "take_digest", "operator_once",
         "alert_writes")


@cache
def source(name: str) -> str:
    """The text of scripts/<name>.lua."""
    if name not in NAMES:
        raise ValueError(f"no Lua script {name!r} (known: {', '.join(NAMES)})")
    return files(__package__).joinpath("scripts", f"{name}.lua").read_text(encoding="utf-8")


def register(redis: Any, name: str) -> Any:
    """redis-py's Script for scripts/<name>.lua on `redis` (a client or a pipeline)."""
    return redis.register_script(source(name))


class LeaseClaim:
    """scripts/claim_lease.lua on one client: take due members of a sorted set and lease them (see the script)."""

    def __init__(self, redis: Any) -> None:
        self._script = register(redis, "claim_lease")

    async def due(self, zset: str, *, now: float, lease: float, count: int) -> list[str]:
        """Up to `count` members of `zset` scored <= now, re-scored now + lease."""
        if count <= 0:
            return []
        _guard, *ids = await self._script(keys=[zset], args=[repr(now), repr(lease), count])
        return [_text(i) for i in ids]

    async def due_guarded(self, zset: str, guard: str, *, now: float, lease: float, count: int,
                          busy: str = "") -> tuple[str | None, list[str]]:
        """As `due`, only while the string key `guard` exists and is not `busy`: (guard's value or None when it is
        missing, the members taken: none when the guard is missing or busy)."""
        value, *ids = await self._script(keys=[zset, guard], args=[repr(now), repr(lease), max(count, 0), busy])
        return (_text(value) or None), [_text(i) for i in ids]

    async def listed(self, zset: str, members: list[str], *, now: float, lease: float) -> list[str]:
        """Lease the given members whatever their score; returns those in `zset` (the others are not added)."""
        if not members:
            return []
        _guard, *ids = await self._script(keys=[zset], args=[repr(now), repr(lease), len(members), "", *members])
        return [_text(i) for i in ids]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
