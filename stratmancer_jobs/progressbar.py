"""The CLI's progress bar: a ``ProgressSink`` that draws files and bytes on stderr (rich, imported lazily).

Jobs only call ``ctx.progress(Progress(...))``; whether and how that is drawn is decided here, on the
CLI side: on a terminal and without ``--quiet`` (under cron nothing is drawn and rich is never imported).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from stratmancer_jobs.jobs import Progress, ProgressSink


@contextlib.contextmanager
def progress_sink(*, enabled: bool, label: str = "history") -> Iterator[ProgressSink | None]:
    """Yield a sink drawing a transient bar on stderr (None when disabled); the bar is removed on exit.

    The bar appears at the first report, sized by that report's totals, so a run with nothing to read
    draws nothing.
    """
    if not enabled:
        yield None
        return
    bar: Any = None
    task: Any = None

    def draw(p: Progress) -> None:
        nonlocal bar, task
        if bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
            bar = RichProgress(*columns, console=Console(stderr=True), transient=True)
            bar.start()
            task = bar.add_task(f"{label}: 0/{p.files_total} files", total=p.bytes_total)
        bar.update(
            task,
            completed=p.bytes_done,
            total=p.bytes_total,
            description=f"{label}: {p.files_done}/{p.files_total} files",
        )

    try:
        yield draw
    finally:
        if bar is not None:
            bar.stop()
