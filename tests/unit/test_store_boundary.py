"""The storage boundary: outside monitor/store/ (and streams.py) no module calls Redis, and what the store raises is
monitor's own error tree, never a bare redis-py exception."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import redis.asyncio
from redis.exceptions import ResponseError

from monitor.errors import PermanentError, StoreDataError, StoreFull, StoreUnavailable, TransientError
from monitor.store import is_unavailable, map_error

MONITOR = Path(__file__).resolve().parents[2] / "monitor"
SPEAKS_REDIS = ("store/", "streams.py")  # the boundary itself
# Modules that still call Redis themselves, to be moved behind store/ repositories: empty this list.
PENDING: tuple[str, ...] = ()  # every module that called Redis has moved behind store/ repositories
RECEIVERS = {"redis", "client", "pipe", "tx"}  # how the code names a client or a Redis pipeline (not `pipeline`:
# that is the stages' Pipeline object)
NOT_COMMANDS = {"aclose", "close"}  # closing the client the caller opened is not a command
COMMANDS = {name for name in dir(redis.asyncio.Redis) if not name.startswith("_")} - NOT_COMMANDS


def _receiver(node: ast.expr) -> str | None:
    """'redis' for `redis.x(...)`, `self.redis.x(...)`, `self.pipeline.redis.x(...)`; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def redis_calls(path: Path, source: str | None = None) -> list[str]:
    """`file:line: receiver.command(...)` for each Redis call in the module (or in `source`, named `path`)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, str(path))
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in COMMANDS
                and _receiver(node.func.value) in RECEIVERS):
            found.append(f"{path.relative_to(MONITOR.parent)}:{node.lineno}: {ast.unparse(node.func)}(...)")
    return found


def test_no_module_outside_the_store_calls_redis():
    offending = []
    for path in sorted(MONITOR.rglob("*.py")):
        where = path.relative_to(MONITOR).as_posix()
        if where.startswith(SPEAKS_REDIS) or where.startswith(PENDING):
            continue
        offending += redis_calls(path)
    assert offending == [], "Redis called outside monitor/store/ (add a repository method):\n" + "\n".join(offending)


def test_the_pending_list_holds_only_modules_that_still_call_redis():
    """So the list shrinks as modules move: a module that no longer calls Redis must leave it."""
    stale = []
    for pending in PENDING:
        paths = sorted((MONITOR / pending).rglob("*.py")) if pending.endswith("/") else [MONITOR / pending]
        if not any(redis_calls(p) for p in paths if p.exists()):
            stale.append(pending)
    assert stale == []


def test_the_walk_finds_calls_in_the_forms_the_code_uses():
    source = ("async def f(self, redis, pipe):\n    await redis.set('k', 1)\n    await self.redis.hget('h', 'f')\n"
              "    pipe.zadd('z', {'a': 1})\n    await self.client.aclose()\n    d = {}.get('x')\n")
    assert sorted(redis_calls(MONITOR / "probe.py", source)) == [
        "monitor/probe.py:2: redis.set(...)", "monitor/probe.py:3: self.redis.hget(...)",
        "monitor/probe.py:4: pipe.zadd(...)"]


def key_names_built(path: Path) -> list[str]:
    """Calls like `keys("ops", kind, id)` or `self.k(TAG, "once", d)`: a key name spelt outside store/keys.py."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else (
            node.func.attr if isinstance(node.func, ast.Attribute) else None)
        if name in ("keys", "k") and any(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args):
            found.append(f"{path.relative_to(MONITOR.parent)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_key_names_are_spelt_only_in_store_keys():
    offending = []
    for path in sorted(MONITOR.rglob("*.py")):
        where = path.relative_to(MONITOR).as_posix()
        if where == "store/keys.py" or where.startswith(PENDING):
            continue
        offending += key_names_built(path)
    assert offending == [], ("key names built outside monitor/store/keys.py (add a Keys method):\n"
                             + "\n".join(offending))


@pytest.mark.parametrize("message, mapped", [
    ("WRONGTYPE Operation against a key holding the wrong kind of value", StoreDataError),
    ("OOM command not allowed when used memory > 'maxmemory'.", StoreFull),
    ("LOADING Redis is loading the dataset in memory", StoreUnavailable),
    ("BUSY Redis is busy running a script.", StoreUnavailable),
    ("ERR Error running script (call to f_1234): user_script:3: bad argument", StoreDataError),
])
def test_reply_errors_map_by_their_code(message, mapped):
    exc = map_error(ResponseError(message))
    assert isinstance(exc, mapped) and isinstance(exc, ResponseError)  # still a ResponseError for old callers
    assert str(exc) == message and isinstance(exc.__cause__, ResponseError)


def test_the_daemon_predicate_knows_an_outage_from_a_data_problem():
    from redis.exceptions import ClusterDownError, ConnectionError, TimeoutError, TryAgainError

    for down in (ConnectionError("refused"), TimeoutError("t"), ClusterDownError("CLUSTERDOWN"),
                 TryAgainError("TRYAGAIN"), ConnectionRefusedError(111, "refused"), map_error(ConnectionError("x"))):
        assert is_unavailable(down), down
    for other in (ResponseError("WRONGTYPE x"), map_error(ResponseError("OOM x")), OSError("disk"), ValueError()):
        assert not is_unavailable(other), other


async def test_a_key_of_the_wrong_type_comes_out_of_a_repository_as_a_store_data_error(redis, keys):
    from monitor.feedstate import FeedStore

    store = FeedStore(redis, keys)
    await redis.set(keys.feed("a"), "not a hash")  # the feed's record is a hash: HGETALL now fails for real
    with pytest.raises(StoreDataError) as info:
        await store.state("a")  # a pipeline
    assert "WRONGTYPE" in str(info.value) and isinstance(info.value, PermanentError)
    with pytest.raises(StoreDataError):
        await store.record_error("a", TransientError("x"), now=1.0, interval=60)  # a single command
    await redis.set(keys.state_marker, "epoch")
    await redis.set(keys.due, "not a zset")
    with pytest.raises(StoreDataError):
        await store.claim_due(now=1.0, limit=10, lease=60)  # a Lua script


async def test_redis_not_answering_is_store_unavailable():
    from monitor.store import connect

    client = connect("redis://127.0.0.1:1")  # nothing listens on port 1
    try:
        with pytest.raises(StoreUnavailable) as info:
            await client.get("k")
        assert isinstance(info.value, TransientError) and is_unavailable(info.value)
    finally:
        await client.aclose()
