"""The one exception tree of monitor: every error the product raises on purpose is one of these.

    MonitorError
     +-- ConfigError        monitor.yaml is wrong: fix the file (file, line, key path in the message)
     +-- RuleError          a rule or entity file is wrong: fix the file (file:line:column in the message)
     +-- TransientError     try again later: timeouts, 5xx, 429, connection refused, Redis away
     |    +-- RetryAfter    the server said when (seconds in .delay)
     |    |    +-- HostHeld  not sent: the host asked every instance to wait (a Retry-After or 429 still in force)
     |    +-- StoreUnavailable  Redis does not answer: connection, timeout, cluster down, TRYAGAIN, LOADING, ...
     |    +-- StoreFull     Redis refused a write for lack of memory (OOM): retry once memory is freed
     +-- PermanentError     give up on this item: 4xx, not a feed, body too large, blocked address, bad content
          +-- BlockedURL    scheme or address not allowed (SSRF guard)
          +-- StoreDataError  Redis rejected the command itself: a key of the wrong type (WRONGTYPE), a script error

StoreError is the base of the three Store* classes (every redis-py error mapped by monitor/store/errors.py).

Only the daemon loop catches broad exceptions; everything else catches these.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error monitor raises on purpose."""


class ConfigError(MonitorError):
    """The configuration is invalid. `problems` holds one line per error, all reported at once."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [message])
        super().__init__(message if not problems else message + "\n" + "\n".join(f"  {p}" for p in problems))


class RuleError(MonitorError):
    """A rule or entity file is invalid. `problems` holds one `file:line:column: message` line per error."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [message])
        super().__init__(message if not problems else message + "\n" + "\n".join(f"  {p}" for p in problems))


class TransientError(MonitorError):
    """Temporary failure: the same work may succeed later."""


class RetryAfter(TransientError):
    """The server asked us to wait `delay` seconds (429/503 with Retry-After)."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class HostHeld(RetryAfter):
    """No request was made: the host is held back (its Retry-After or 429 is still in force) for `delay` seconds."""


class PermanentError(MonitorError):
    """Retrying the same work will fail the same way: record it and move on."""


class BlockedURL(PermanentError):
    """The URL's scheme or address is not allowed."""


class StoreError(MonitorError):
    """A Redis command failed; raised only by monitor/store/errors.py, which maps every redis-py error."""


class StoreUnavailable(StoreError, TransientError):
    """Redis does not answer (connection, timeout, cluster down or resharding, loading its data): retry later."""


class StoreFull(StoreError, TransientError):
    """Redis refused a write because it reached maxmemory (OOM): retry once memory is freed."""


class StoreDataError(StoreError, PermanentError):
    """Redis rejected the command for what it holds or was sent (WRONGTYPE, a script error): retrying fails alike."""
