"""Using the second core: part of a list of work items runs in a forked worker, the rest here.

``split_map`` runs the first ``cut`` items in a one-process ``concurrent.futures.ProcessPoolExecutor``
with the ``fork`` context and the rest in this process. The work is handed over by ``fork`` itself (a
module global set just before the pool starts its process), so the function may be a closure and only
the results are pickled (their large ``bytes`` through an unnamed file). The function also gets a
``send`` callable: what the worker sends (progress) travels through a pipe and reaches ``relay`` here,
in order, while this process works on its own share and until the worker is done; in this process
``send`` is ``relay`` itself.

A worker that fails, or a platform without ``fork``, only costs time: its items are then computed
here (what it had sent stays sent). An interrupted call (the job's time limit) kills the worker
instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import pickle
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.connection import Connection
from typing import Any, Final, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Send = Callable[[Any], None]

# (func, items, pipe end, blob file) of the call in progress: inherited by the forked worker.
_work: tuple[Callable[[Any, Send], Any], Sequence[Any], Connection, int] | None = None
BLOB_MIN: Final = 64 * 1024  # a result's ``bytes`` of this size or more travel through the blob file


class _BlobPickler(pickle.Pickler):
    """Pickles the worker's results with each large ``bytes`` written to the blob file instead: a few
    MB of rendered entries then cross in ~5 ms, against ~20 ms through the pool's pipe (64 KB at a
    time, and every buffer on the way freshly allocated)."""

    def __init__(self, file: io.BytesIO, fd: int) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.fd, self.end = fd, 0

    def persistent_id(self, obj: Any) -> tuple[int, int] | None:
        if type(obj) is not bytes or len(obj) < BLOB_MIN:
            return None
        offset, view = self.end, memoryview(obj)
        while view:
            written = os.pwrite(self.fd, view, self.end)
            self.end += written
            view = view[written:]
        return offset, len(obj)


class _BlobUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, fd: int) -> None:
        super().__init__(io.BytesIO(data))
        self.fd = fd

    def persistent_load(self, pid: Any) -> bytes:
        offset, size = pid
        parts: list[bytes] = []
        while size:
            chunk = os.pread(self.fd, size, offset)
            if not chunk:
                raise EOFError("the worker's blob file is shorter than what it wrote")
            parts.append(chunk)
            offset, size = offset + len(chunk), size - len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)  # one read: no copy


@dataclass(frozen=True)
class _Packed:
    """The worker's results, pickled by ``_BlobPickler``."""

    data: bytes


def _run_share(cut: int) -> _Packed:  # pragma: no cover - runs in the worker, not traced by coverage
    assert _work is not None
    func, items, sender, blobs = _work
    out = io.BytesIO()
    _BlobPickler(out, blobs).dump([func(x, sender.send) for x in items[:cut]])
    return _Packed(out.getvalue())


def _blob_file() -> int:
    """An unnamed file, for the worker's large results (in memory where the system has memfd)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("stratmancer-results", os.MFD_CLOEXEC)
    with tempfile.TemporaryFile() as handle:
        return os.dup(handle.fileno())


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _cpus() -> int:
    """The processors this process may run on (one: a second process would only add its start-up)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _ignore(message: Any) -> None:
    """The default ``relay``: messages are dropped."""


def split_map(
    func: Callable[[T, Send], R],
    items: Sequence[T],
    *,
    parallel: bool = True,
    cut: int | None = None,
    relay: Send = _ignore,
) -> list[R]:
    """``[func(x, send) for x in items]``, ``items[:cut]`` computed in a forked worker.

    ``cut`` defaults to 40% of the items: after ``fork`` the worker pays a copy-on-write fault for
    every page whose reference counts it touches, so with equal items it should get less than half.
    """
    if not parallel or len(items) < 2 or not _can_fork() or _cpus() < 2:
        return [func(x, relay) for x in items]
    cut = max(1, min(len(items) - 1, round(len(items) * 0.4) if cut is None else cut))
    try:
        channel = _Channel.open()
    except OSError:  # no descriptor to spare, or a sandbox without pipes: everything here
        return [func(x, relay) for x in items]
    try:
        return _split(func, items, cut, relay, channel)
    finally:
        channel.close()


@dataclass(frozen=True)
class _Channel:
    """What the worker and this process share: the message pipe, the wake-up pipe, the blob file."""

    receiver: Connection
    sender: Connection
    wake_r: int
    wake_w: int
    blobs: int

    @classmethod
    def open(cls) -> _Channel:
        """OSError (nothing left open) when a pipe or the blob file cannot be had."""
        receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
        fds: list[int] = []
        try:
            fds += os.pipe()
            fds.append(_blob_file())
        except OSError:
            for fd in fds:
                os.close(fd)
            receiver.close()
            sender.close()
            raise
        return cls(receiver, sender, *fds)

    def close(self) -> None:
        self.receiver.close()
        self.sender.close()
        for fd in (self.wake_r, self.wake_w, self.blobs):
            os.close(fd)


def _split(
    func: Callable[[T, Send], R], items: Sequence[T], cut: int, relay: Send, channel: _Channel
) -> list[R]:
    """``split_map`` once its channel is open."""
    global _work

    receiver, blobs = channel.receiver, channel.blobs

    def drain() -> None:
        while receiver.poll():
            relay(receiver.recv())

    def send(message: Any) -> None:  # this process's messages, after the worker's so far
        drain()
        relay(message)

    _work = (func, items, channel.sender, blobs)
    pool: ProcessPoolExecutor | None = None
    try:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
        future = pool.submit(_run_share, cut)  # forks the worker now, with ``_work`` set
    except OSError:  # no semaphore or process to spare (a sandbox, a process limit): everything here
        _work = None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        return [func(x, relay) for x in items]
    _work = None
    done = False
    try:
        future.add_done_callback(lambda _: os.write(channel.wake_w, b"."))  # from the pool's thread
        mine = [func(x, send) for x in items[cut:]]
        while not future.done():  # relay what the worker sends until it is done
            connection.wait([receiver, channel.wake_r])
            drain()
        drain()
        try:
            theirs: list[R] = _BlobUnpickler(future.result().data, blobs).load()
        except Exception:  # a failed worker only costs time: compute its share here
            theirs = [func(x, relay) for x in items[:cut]]
        done = True
    finally:
        if not done:  # interrupted (e.g. the job timed out): do not wait for, or leave, the worker
            for process in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(OSError):
                    process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
    return [*theirs, *mine]
