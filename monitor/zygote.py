"""Workers forked by a zygote: one process forked from the daemon at the pool's start, which forks every worker.

A forked worker shares the pages of the process it was forked from until one side writes them. Forked from the
daemon itself, a worker that replaces another (after `max_tasks` calls, a timeout, a crash) inherits the daemon's
working heap of that moment, and every page the daemon rewrites afterwards (its heap churns with each article) stays
that worker's own: measured, 46-60 MB of private memory in a replacement against ~32 MB in a worker forked at
start-up (BENCHMARKS.md, End to end). The zygote is forked once, when the pool starts its first worker (right after
the daemon's warm-up), and then only waits: every worker, the first ones and every replacement, is its child and
shares the start-up heap with it, with the send processes forked beside it and with each other.

`ZygoteContext()` is a multiprocessing fork context for pebble's ProcessPool (`context=`): its processes look like
multiprocessing's own to pebble (pid, is_alive, exitcode, join, terminate, sentinel). They are the zygote's children,
not this process's: their exit status comes from the zygote, which reaps them and reports it over a socket pair, and
a pidfd (Linux >= 5.3) is the sentinel and the target of signals, so a pid reused after a worker's end is never
signalled. The zygote ends when this process closes its end of the socket (the pool's close, this process's exit or
death); a worker ends on its own when its pool's channel closes, as before.

Only the zygote is forked from this process while it runs threads (as every worker was before); the workers are forked
from the single-threaded zygote.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import multiprocessing.context
import os
import select
import signal
import socket
import struct
import threading
import time
import weakref
from multiprocessing import process as mp_process
from multiprocessing import util
from typing import Any

log = logging.getLogger(__name__)

_MESSAGE = struct.Struct("=cii")  # zygote -> daemon: b"p", pid, 0 (forked) | b"x", pid, exit code (ended)
_SPAWN = b"s"  # daemon -> zygote: fork a worker
# The exit code given for a worker whose zygote ended before reporting it (someone killed the zygote; its workers
# ran on, orphaned). Non-zero would make pebble count the pool broken when such a worker ends after its last task,
# as each does; a task it was running when it died ends at its deadline as a timeout instead of as a crash.
_EXIT_UNREPORTED = 0
PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1


@functools.cache
def available() -> bool:
    """pidfds (Linux 5.3, Python 3.9) and fork: what a zygote needs."""
    if not hasattr(os, "pidfd_open") or not hasattr(signal, "pidfd_send_signal") or not hasattr(os, "fork"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class Zygote:
    """The daemon's side of one zygote: `spawn(process)` forks `process` in it; `exitcode` reads what it reports."""

    def __init__(self, template: mp_process.BaseProcess) -> None:
        self._target, self._args, self._kwargs = template._target, template._args, template._kwargs  # type: ignore[attr-defined]
        self._lock = threading.Lock()  # one reader of the socket at a time, one request at a time
        self._exits: dict[int, int] = {}
        self.alive = True
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        main_thread = threading.current_thread() is threading.main_thread()
        util._flush_std_streams()
        pid = os.fork()
        if pid == 0:  # the zygote
            code = 1
            try:
                ours.close()
                code = _serve(theirs, template, die_with_parent=main_thread)
            finally:
                os._exit(code)
        theirs.close()
        self.pid = pid
        self._sock = ours
        _OPEN.add(self)

    def spawn(self, process_obj: mp_process.BaseProcess) -> tuple[int, int]:
        """The pid and a pidfd of a new worker running `process_obj`, the template's twin (same target, arguments).
        The zygote opens the pidfd before it can reap the worker, so it names that process even after its end."""
        if (process_obj._target is not self._target  # type: ignore[attr-defined]
                or len(process_obj._args) != len(self._args)  # type: ignore[attr-defined]
                or any(a is not b for a, b in zip(process_obj._args, self._args))  # type: ignore[attr-defined]
                or process_obj._kwargs != self._kwargs):  # type: ignore[attr-defined]
            raise ValueError("a zygote forks only processes like its first one (same target and arguments)")
        with self._lock:
            try:
                self._sock.sendall(_SPAWN)
                while True:
                    kind, pid, pidfd = self._read()
                    if kind == b"p":
                        return pid, pidfd
            except OSError:
                self.alive = False
                raise

    def exitcode(self, pid: int, pidfd: int, block: bool) -> int | None:
        """The exit code of worker `pid`, or None while it runs (`block`: wait for its end)."""
        if pid in self._exits:
            return self._exits.pop(pid)
        if not _readable([pidfd], None if block else 0):
            return None
        with self._lock:  # it has ended: the zygote reaps it and reports it in a moment
            while pid not in self._exits:
                try:
                    self._read()
                except OSError:
                    return _EXIT_UNREPORTED
            return self._exits.pop(pid)

    def close(self, timeout: float = 5.0) -> None:
        """End the zygote (it exits at the end of its socket) and reap it; its workers end with their pool."""
        self.alive = False
        self._sock.close()
        _OPEN.discard(self)
        deadline = time.monotonic() + timeout
        try:
            while os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    break
                time.sleep(0.01)
        except ChildProcessError:  # reaped already (a SIGCHLD handler elsewhere)
            pass

    def _read(self) -> tuple[bytes, int, int]:
        """One message from the zygote (under the lock): kind, pid, the pidfd of a new worker (else -1); OSError
        once the zygote is gone."""
        data, fds, _, _ = socket.recv_fds(self._sock, _MESSAGE.size, 1)
        if not data:
            self.alive = False
            raise OSError(f"worker zygote (pid {self.pid}) ended")
        kind, pid, code = _MESSAGE.unpack(data)
        if kind == b"x":
            self._exits[pid] = code
        return kind, pid, fds[0] if fds else -1


_OPEN: weakref.WeakSet[Zygote] = weakref.WeakSet()


def _close_inherited() -> None:
    """In any process forked from this one: close its copies of the zygotes' sockets (a send process holding one
    would keep a zygote alive past its pool's close, and past this process's death)."""
    for zygote in list(_OPEN):
        zygote._sock.close()
    _OPEN.clear()


os.register_at_fork(after_in_child=_close_inherited)


def _serve(sock: socket.socket, template: mp_process.BaseProcess, *, die_with_parent: bool) -> int:
    """The zygote's loop: fork a worker running `template` on each request, report each one's pid (with a pidfd)
    and exit code; it ends at the end of its socket. `die_with_parent`: forked by the daemon's main thread, so the
    kernel's parent-death signal (sent when the forking thread ends) also means the daemon's death. The zygote holds
    the workers' ends of the pool's channel: while it lives, a killed daemon's workers would wait on."""
    libc = _libc()
    if libc is not None:
        libc.prctl(PR_SET_NAME, b"monitor-zygote", 0, 0, 0)
        if die_with_parent:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != template._parent_pid:  # type: ignore[attr-defined]  # died before the prctl
        return 0
    inherited_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the daemon's to handle
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    while True:
        ready = _readable([sock.fileno(), wake_r], None)
        if wake_r in ready:
            while True:
                try:
                    if not os.read(wake_r, 512):
                        break
                except BlockingIOError:
                    break
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            sock.sendall(_MESSAGE.pack(b"x", pid, os.waitstatus_to_exitcode(status)))
        if sock.fileno() in ready:
            request = sock.recv(1)
            if not request:
                return 0
            pid = os.fork()
            if pid == 0:  # a worker: as multiprocessing's fork start would run it
                code = 1
                try:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    if inherited_int is not None:
                        signal.signal(signal.SIGINT, inherited_int)
                    for fd in (wake_r, wake_w):
                        os.close(fd)
                    sock.close()
                    code = template._bootstrap()  # type: ignore[attr-defined]
                finally:
                    os._exit(code)
            children.add(pid)
            pidfd = os.pidfd_open(pid)  # before any waitpid: it cannot name another process
            try:
                socket.send_fds(sock, [_MESSAGE.pack(b"p", pid, 0)], [pidfd])
            finally:
                os.close(pidfd)


def _readable(fds: list[int], timeout: float | None) -> list[int]:
    """Those of `fds` readable within `timeout` seconds (None: wait). poll, not select: the daemon runs with up to
    65,536 descriptors (LimitNOFILE), and select cannot wait on one numbered 1,024 or above."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(None if timeout is None else timeout * 1000)]


def _libc() -> Any:
    try:
        return ctypes.CDLL(None)  # the C library's symbols are loaded already (find_library would run ldconfig)
    except OSError:
        return None


class _Popen:
    """multiprocessing's Popen interface for a worker forked by the zygote."""

    method = "fork"

    def __init__(self, process_obj: mp_process.BaseProcess, zygote: Zygote) -> None:
        self.returncode: int | None = None
        self._zygote = zygote
        self.pid, self.sentinel = zygote.spawn(process_obj)
        self.finalizer = util.Finalize(self, os.close, (self.sentinel,))

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None:
            self.returncode = self._zygote.exitcode(self.pid, self.sentinel, block=not flag & os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None:
            if timeout is not None and not _readable([self.sentinel], timeout):
                return None
            return self.poll(os.WNOHANG if timeout == 0.0 else 0)
        return self.returncode

    def _send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                signal.pidfd_send_signal(self.sentinel, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self._send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self._send_signal(signal.SIGKILL)

    def close(self) -> None:
        self.finalizer()


class ZygoteContext(multiprocessing.context.ForkContext):
    """A fork context whose processes are forked by one zygote, itself forked at the first process's start. One
    context per pool: the zygote forks only processes like the first (pebble's workers of one pool all are)."""

    def __init__(self) -> None:
        super().__init__()
        self._zygote: Zygote | None = None
        self._lock = threading.Lock()

    def Process(self, *args: Any, **kwargs: Any) -> mp_process.BaseProcess:  # type: ignore[override]  # noqa: N802
        process = _ZygoteProcess(*args, **kwargs)
        process._zygote_context = self  # type: ignore[attr-defined]
        return process

    def zygote(self, process_obj: mp_process.BaseProcess) -> Zygote:
        with self._lock:
            if self._zygote is None or not self._zygote.alive:
                if self._zygote is not None:
                    log.warning("worker zygote (pid %d) ended: forking a new one", self._zygote.pid)
                    self._zygote.close(timeout=1.0)  # reap it
                self._zygote = Zygote(process_obj)
            return self._zygote

    @property
    def zygote_pid(self) -> int | None:
        return self._zygote.pid if self._zygote is not None and self._zygote.alive else None

    def close(self) -> None:
        with self._lock:
            if self._zygote is not None:
                self._zygote.close()


class _ZygoteProcess(multiprocessing.context.ForkProcess):
    def _Popen(self, process_obj: mp_process.BaseProcess) -> _Popen:  # type: ignore[override]  # noqa: N802
        context: ZygoteContext = self._zygote_context  # type: ignore[attr-defined]
        zygote = context.zygote(process_obj)
        try:
            return _Popen(process_obj, zygote)
        except OSError:  # the zygote ended since (killed): one new one, one more try
            return _Popen(process_obj, context.zygote(process_obj))
