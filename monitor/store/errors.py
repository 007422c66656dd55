"""The one place that maps redis-py's exceptions into monitor's tree (monitor/errors.py), as net.py maps aiohttp's.

    Redis does not answer          -> StoreUnavailable (TransientError)
      connection refused or lost, timeouts, AUTH/ACL refused, too many connections, a protocol error, LOADING
      (a restarted server reading its data), BUSY (a long script), MASTERDOWN, READONLY (a replica after a
      failover), CLUSTERDOWN, TRYAGAIN and MOVED/ASK left over (resharding), a slot not covered, NOSCRIPT after
      redis-py's own reload (the script cache was flushed in between)
    OOM (maxmemory reached)        -> StoreFull (TransientError): retrying later works once memory is freed
    any other reply error          -> StoreDataError (PermanentError)
      WRONGTYPE (a key holds another type: a data problem, retrying fails alike), a script's runtime error, a
      command redis-py refused to send (DataError), a transaction aborted for an invalid command
    WatchError                     -> unchanged: the normal end of an optimistic transaction, not a failure

The mapping is applied by the client `connect` returns (monitor/store/redis.py): its `execute_command`, its
pipelines' `execute` and its scripts all pass errors through `map_error`, so every command of every caller gets it.
A mapped error is an instance of its monitor class *and* of the redis-py class it replaces (a class made for the
pair, named after the monitor class): code that still catches `redis.exceptions.ResponseError` (BUSYGROUP in
streams.py, the scripts' NOSCRIPT reload in redis-py) keeps working while callers move to the monitor classes.
The original error stays as `__cause__`.
"""

from __future__ import annotations

from functools import cache

from redis import exceptions as rx

from ..errors import StoreDataError, StoreError, StoreFull, StoreUnavailable

__all__ = ["is_unavailable", "map_error", "classify"]

# A reply error's first word says what happened; these mean "Redis cannot serve this now", not "this is wrong".
_UNAVAILABLE_CODES = frozenset({"LOADING", "BUSY", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "MOVED",
                                "ASK", "NOSCRIPT", "NOREPLICAS", "NOPERM", "NOAUTH"})
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # also AuthenticationError, AuthorizationError, BusyLoadingError, MaxConnectionsError
    rx.TimeoutError, rx.InvalidResponse, rx.ClusterError,  # ClusterDownError, MasterDownError
    rx.TryAgainError, rx.ReadOnlyError, rx.AskError, rx.NoScriptError, rx.NoPermissionError, rx.SlotNotCoveredError,
)


def classify(exc: BaseException) -> type[StoreError] | None:
    """The monitor class for a redis-py (or socket) error raised by a command; None for anything else."""
    if isinstance(exc, StoreError):
        return next((c for c in (StoreUnavailable, StoreFull, StoreDataError) if isinstance(exc, c)), StoreError)
    if isinstance(exc, rx.WatchError):
        return None
    if isinstance(exc, _UNAVAILABLE_TYPES):
        return StoreUnavailable
    if isinstance(exc, rx.OutOfMemoryError):
        return StoreFull
    if isinstance(exc, rx.ResponseError):
        code = str(exc).split(" ", 1)[0].upper()
        if code == "OOM":
            return StoreFull
        return StoreUnavailable if code in _UNAVAILABLE_CODES else StoreDataError
    if isinstance(exc, (rx.CrossSlotTransactionError, rx.InvalidPipelineStack)):  # how the command was built
        return StoreDataError
    if isinstance(exc, rx.RedisClusterException):  # "Redis Cluster cannot be connected", no node answers
        return StoreUnavailable
    if isinstance(exc, rx.RedisError):  # DataError, PubSubError, ...: the command as sent is wrong
        return StoreDataError
    if isinstance(exc, OSError):  # a socket error redis-py did not wrap (it came from the Redis connection)
        return StoreUnavailable
    return None


@cache
def _pair(target: type[StoreError], origin: type[BaseException]) -> type[BaseException]:
    """A class that is both `target` and `origin`, named after `target`."""
    return type(target.__name__, (target, origin), {"__module__": target.__module__,
                                                     "__qualname__": target.__qualname__, "__doc__": target.__doc__})


def map_error(exc: BaseException) -> BaseException:
    """`exc` as its monitor class (see the module doc); `exc` itself when it is already mapped or not Redis's."""
    target = classify(exc)
    if target is None or isinstance(exc, StoreError):
        return exc
    cls = _pair(target, type(exc))
    mapped = cls.__new__(cls, *exc.args)  # not __init__: redis-py's classes parse their arguments differently
    mapped.args = exc.args
    mapped.__dict__.update(getattr(exc, "__dict__", {}))
    mapped.__cause__ = exc
    return mapped


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says Redis does not answer (the daemon pauses its loops and reports redis down).

    Mapped errors are StoreUnavailable; a redis-py error raised outside the store's client is classified the same
    way; of plain socket errors only a refused connection counts (any other OSError may come from elsewhere)."""
    if isinstance(exc, StoreError):
        return isinstance(exc, StoreUnavailable)
    if isinstance(exc, OSError) and not isinstance(exc, (rx.RedisError, rx.RedisClusterException)):
        return isinstance(exc, ConnectionRefusedError)
    return classify(exc) is StoreUnavailable
