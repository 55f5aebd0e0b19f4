"""Small jobs used by runner tests (loaded through ``JobSpec.module = 'tests.fake_jobs:NAME'``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from stratmancer_jobs.errors import InputError, PartialFailure
from stratmancer_jobs.jobs import JobContext, JobResult


def ok(ctx: JobContext) -> JobResult:
    """Succeed at once."""
    return JobResult(summary="fake job done", metrics={"things": 3})


def sleepy(ctx: JobContext) -> JobResult:
    """Sleep for ``options['seconds']`` (default 30), create the file ``options['marker']`` if given (a
    test sees whether the sleep was cut short), and then succeed."""
    time.sleep(float(ctx.options.get("seconds", 30)))
    if "marker" in ctx.options:
        Path(str(ctx.options["marker"])).touch()
    return JobResult(summary="slept")


def boom(ctx: JobContext) -> JobResult:
    """Raise an unexpected exception whose message carries the environment's API key."""
    raise RuntimeError(f"exploded while using key {os.environ.get('RIOT_API_KEY', '')}")


def bad_input(ctx: JobContext) -> JobResult:
    """Raise the tool's own error, as a job does for bad input."""
    raise InputError("data/processed/matches_GOLD.json is not valid JSON")


def partial(ctx: JobContext) -> JobResult:
    """Finish its work but report a failure, as history does for one corrupt tier."""
    raise PartialFailure("matches_GOLD.json: truncated JSON", summary="9 tiers refreshed")


class _SlowFinalizer:
    """An object whose finalizer outlasts the time limit: Python prints an exception raised there."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __del__(self) -> None:
        time.sleep(self.seconds)


def swallowed(ctx: JobContext) -> JobResult:
    """Spend the time limit inside a finalizer, where Python swallows the timeout, then succeed."""
    _SlowFinalizer(float(ctx.options.get("seconds", 2)))  # dropped at once: __del__ runs here
    return JobResult(summary="finished as if nothing happened")


def progressing(ctx: JobContext) -> JobResult:
    """Report progress every 0.2 s for ``options['seconds']`` (default 30), as refresh-history does."""
    from stratmancer_jobs.jobs import Progress

    steps = int(float(ctx.options.get("seconds", 30)) / 0.2)
    for i in range(steps + 1):
        if ctx.progress is not None:
            ctx.progress(Progress(i, steps, i * 100, steps * 100))
        time.sleep(0.2)
    return JobResult(summary="progressed")


def wrapping(ctx: JobContext) -> JobResult:
    """Turn whatever interrupts its sleep into another exception, as an import's __set_name__ does."""
    try:
        time.sleep(float(ctx.options.get("seconds", 2)))
    except Exception as exc:
        raise RuntimeError(f"Error calling __set_name__: {exc}") from exc
    return JobResult(summary="slept")
