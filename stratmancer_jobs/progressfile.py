"""The progress file of a running job: published for ``status --watch``, throttled, removed at the end.

The state file keeps the running marker; this file only says how far that run is. The runner wraps
the CLI's progress sink with ``progress_recorder`` and calls ``clear_progress`` when the job returns.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path

from stratmancer_jobs.atomicio import atomic_write_json
from stratmancer_jobs.errors import StratmancerError
from stratmancer_jobs.jobs import Progress, ProgressSink

PROGRESS_EVERY_S = 1.0  # the progress file is rewritten at most this often (monotonic time)


def progress_recorder(path: Path, draw: ProgressSink | None) -> ProgressSink:
    """Wrap the CLI's sink: also publish the progress to ``path`` for ``status --watch``, throttled.

    A write that fails (full disk, read-only state) is dropped: progress is a courtesy, never a reason
    to fail.
    """
    last = -math.inf

    def report(p: Progress) -> None:
        nonlocal last
        if draw is not None:
            draw(p)
        now = time.monotonic()
        if now - last < PROGRESS_EVERY_S:
            return
        last = now
        fields = {"files_done": p.files_done, "files_total": p.files_total}
        fields.update(bytes_done=p.bytes_done, bytes_total=p.bytes_total, pid=os.getpid())
        with contextlib.suppress(StratmancerError):
            atomic_write_json(path, fields)

    return report


def clear_progress(path: Path) -> None:
    """Remove the progress file; one that is already gone (or cannot be removed) is not an error."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
