"""Using the second core for the CPU-bound tail of a refresh (building and rendering entries).

``split_map`` runs about half of the items in a forked child and the rest here, and gets the child's
results back through a pipe. A child that fails, or a platform without ``fork``, only costs time:
its items are then computed here. The child never returns into the caller's code (``os._exit``), so
it cannot write files or run exit handlers; no alarm is inherited across ``fork``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def split_map(
    func: Callable[[T], R], items: Sequence[T], *, parallel: bool = True, child_share: float = 0.4
) -> list[R]:
    """``[func(x) for x in items]``, the first ``child_share`` of the items computed in a forked child.

    The child gets less than half: after ``fork`` it pays a copy-on-write fault for every page whose
    reference counts it touches.
    """
    if not parallel or len(items) < 2 or not hasattr(os, "fork"):
        return [func(x) for x in items]
    cut = max(1, round(len(items) * child_share))
    theirs, mine = items[:cut], items[cut:]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's lines are not traced by coverage
        code = 1
        try:
            os.close(read_fd)
            payload = pickle.dumps([func(x) for x in theirs], protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as out:
                out.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    done = False
    try:
        my_results = [func(x) for x in mine]
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        done = True
    finally:
        if not done:  # interrupted (e.g. the job timed out): do not leave the child behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
    ok = status == 0 and bool(payload)
    # Unpickling our own child's output; on failure the child's share is computed here.
    their_results: list[R] = pickle.loads(payload) if ok else [func(x) for x in theirs]  # noqa: S301
    return [*their_results, *my_results]
