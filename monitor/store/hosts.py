"""Per-host request slots and Retry-After holds shared by every instance (scripts/host_slots.lua).

The politeness logic (one poller per host per instance, waiting for a slot, falling back when Redis is away) is
monitor/hosts.py's; this is the Redis half: one script call per operation, on the Redis server's clock.
"""

from __future__ import annotations

from typing import Any

from .keys import Keys
from .scripts import register

TAKEN, FULL, HELD = 1, 0, -1  # what acquire answers (with milliseconds: 0, until the earliest lease ends, held for)


class HostSlots:
    """`acquire(host, limit=, lease_ms=, token=)` -> (TAKEN | FULL | HELD, ms); `release`; `hold`. Errors are the
    store's (StoreUnavailable when Redis does not answer)."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self.keys = keys
        self._script = register(redis, "host_slots")

    def _keys(self, host: str) -> list[str]:
        return [self.keys.host_slots(host), self.keys.host_hold(host)]

    async def acquire(self, host: str, *, limit: int, lease_ms: int, token: str) -> tuple[int, int]:
        status, ms = await self._script(keys=self._keys(host), args=["acquire", limit, lease_ms, token])
        return int(status), int(ms)

    async def release(self, host: str, token: str) -> None:
        await self._script(keys=self._keys(host), args=["release", token])

    async def hold(self, host: str, ms: int) -> int:
        """Hold `host` back `ms` milliseconds for every instance (a longer hold in force stays); the hold in force."""
        _status, held = await self._script(keys=self._keys(host), args=["hold", ms])
        return int(held)
