"""Using the second core for the CPU-bound tail of a refresh (building and rendering entries).

``split_map`` runs part of the items in a one-process ``concurrent.futures.ProcessPoolExecutor`` with
the ``fork`` context and the rest here. The work is handed over by ``fork`` itself (a module global set
just before the pool starts its process), so the function may be a closure and only the results are
pickled. A worker that fails, or a platform without ``fork``, only costs time: its items are then
computed here. An interrupted call (the job's time limit) kills the worker instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# (func, items) of the call in progress: inherited by the forked worker, never pickled.
_work: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def _run_share(cut: int) -> list[Any]:  # pragma: no cover - runs in the worker, not traced by coverage
    assert _work is not None
    func, items = _work
    return [func(x) for x in items[:cut]]


def split_map(
    func: Callable[[T], R], items: Sequence[T], *, parallel: bool = True, child_share: float = 0.4
) -> list[R]:
    """``[func(x) for x in items]``, the first ``child_share`` of the items computed in a forked worker.

    The worker gets less than half: after ``fork`` it pays a copy-on-write fault for every page whose
    reference counts it touches.
    """
    global _work
    if not parallel or len(items) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [func(x) for x in items]
    cut = max(1, round(len(items) * child_share))
    _work = (func, items)
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    done = False
    try:
        future = pool.submit(_run_share, cut)  # forks the worker now, with ``_work`` set
        _work = None
        mine = [func(x) for x in items[cut:]]
        try:
            theirs: list[R] = future.result()
        except Exception:  # a failed worker only costs time: compute its share here
            theirs = [func(x) for x in items[:cut]]
        done = True
    finally:
        _work = None
        if not done:  # interrupted (e.g. the job timed out): do not wait for, or leave, the worker
            for process in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(OSError):
                    process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
    return [*theirs, *mine]
