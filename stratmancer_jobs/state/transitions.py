"""The record transitions: pure functions, each returning a new record (the runner's bookkeeping)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from stratmancer_jobs.clock import iso, parse_iso
from stratmancer_jobs.procs import process_start_ticks
from stratmancer_jobs.state.records import (
    CLOCK_JUMP_S,
    MAX_COUNT,
    MAX_ERROR_CHARS,
    MAX_SUMMARY_CHARS,
    RECENT_RUNS,
    JobRecord,
    RunEntry,
    RunMarker,
    bounded,
)

if TYPE_CHECKING:
    from stratmancer_jobs.freshness import Observed


def mark_started(record: JobRecord, *, pid: int, started: datetime, host: str | None = None) -> JobRecord:
    """Note that a run holds the job's lock now (status shows it as running while the pid lives and
    still has the start time recorded here, so that a reused pid is not taken for the run)."""
    return replace(record, running=RunMarker(pid, iso(started), process_start_ticks(pid), host))


def _bumped(count: int) -> int:
    """One more, saturating at MAX_COUNT (the most a valid state file may hold)."""
    return min(count + 1, MAX_COUNT)


def _pushed(record: JobRecord, entry: RunEntry) -> tuple[RunEntry, ...]:
    return (*record.runs, entry)[-RECENT_RUNS:]


def mark_finished(
    record: JobRecord,
    *,
    ok: bool,
    started: datetime,
    finished: datetime,
    duration_s: float,
    summary: str | None,
    error: str | None,
    metrics: Mapping[str, float | str] | None = None,
    warning: str | None = None,
    host: str | None = None,
    inputs: Observed | None = None,
) -> JobRecord:
    """Record a completed run (success or error) and clear the running marker.

    ``warning`` is the successful run's warning (kept until the next successful run); an error keeps
    the last warning, as the output it was about is still the one on disk. ``duration_s`` comes from
    the monotonic clock; ``started`` and ``finished`` are wall times, which a clock jump can make
    disagree with it (``status JOB`` says so). ``last_success`` never moves backwards: a clock set
    back during the run counts the success at its start plus its duration, and a success finished
    before the recorded one (the clock set back for the whole run) keeps the newer.
    """
    last_summary = bounded(summary, MAX_SUMMARY_CHARS) if summary else None
    if ok:
        record = replace(record, last_warning=bounded(warning, MAX_SUMMARY_CHARS) if warning else None)
    record = replace(
        record,
        running=None,
        last_started=iso(started),
        last_finished=iso(finished),
        last_duration_s=round(duration_s, 3),
        last_summary=last_summary,
    )
    if ok:
        record = replace(
            record,
            success_count=_bumped(record.success_count),
            last_status="success",
            last_success=_newer(record.last_success, _done(started, finished, duration_s)),
            consecutive_failures=0,
        )
    else:
        record = replace(
            record,
            error_count=_bumped(record.error_count),
            last_status="error",
            last_error=iso(finished),
            last_error_message=bounded(error or "unknown error", MAX_ERROR_CHARS),
            consecutive_failures=_bumped(record.consecutive_failures),
        )
    if metrics is not None:
        record = replace(record, last_metrics=dict(metrics))
    if inputs is not None:  # a run that did not look at its inputs keeps what the last one saw
        record = replace(record, inputs=inputs)
    entry = RunEntry(
        started=iso(started),
        status="success" if ok else "error",
        duration_s=round(duration_s, 3),
        summary=record.last_summary if ok else record.last_error_message,
        host=host,
    )
    return replace(record, runs=_pushed(record, entry))


def _done(started: datetime, finished: datetime, duration_s: float) -> datetime:
    """When the run finished: the wall clock's reading, or the start plus the monotonic duration when
    that is later by more than CLOCK_JUMP_S (the clock went back during the run)."""
    by_start = started + timedelta(seconds=duration_s)
    return by_start if (by_start - finished).total_seconds() > CLOCK_JUMP_S else finished


def _newer(recorded: str | None, finished: datetime) -> str:
    """The later of a recorded last success and this run's finish."""
    before = parse_iso(recorded)
    return recorded if recorded is not None and before is not None and before > finished else iso(finished)


def mark_failed_unrun(record: JobRecord, *, at: datetime, error: str) -> JobRecord:
    """Record a run that failed before it could start (its lock could not be opened); the running
    marker is kept: without the lock nothing is known about another run."""
    failed = mark_finished(
        record, ok=False, started=at, finished=at, duration_s=0.0, summary=None, error=error
    )
    return replace(failed, running=record.running)


def mark_skipped(record: JobRecord, *, at: datetime, reason: str, host: str | None = None) -> JobRecord:
    """Record a run that did not start because another one held the job's lock."""
    entry = RunEntry(started=iso(at), status="skipped", duration_s=0.0, summary=reason, host=host)
    skipped = _bumped(record.skipped_count)
    return replace(record, skipped_count=skipped, last_status="skipped", runs=_pushed(record, entry))


def mark_interrupted(
    record: JobRecord,
    *,
    started: datetime,
    finished: datetime,
    duration_s: float,
    host: str | None = None,
) -> JobRecord:
    """Record a run stopped by Ctrl-C (a person at a terminal): counted apart, neither a success nor a
    failure (the job's health stays what its last completed run made it); the running marker is cleared."""
    entry = RunEntry(
        started=iso(started),
        status="interrupted",
        duration_s=round(duration_s, 3),
        summary="interrupted (Ctrl-C)",
        host=host,
    )
    record = replace(
        record,
        running=None,
        interrupted_count=_bumped(record.interrupted_count),
        last_status="interrupted",
        last_started=iso(started),
        last_finished=iso(finished),
        last_duration_s=round(duration_s, 3),
    )
    return replace(record, runs=_pushed(record, entry))


def last_completed_status(record: JobRecord) -> str | None:
    """'success' or 'error' for the newest run that actually ran (skips and interruptions do not count)."""
    for run in reversed(record.runs):
        if run.status in ("success", "error"):
            return run.status
    if record.last_status in ("success", "error"):
        return record.last_status
    # the recent runs hold only skips or interruptions: the newer of the last success and the last error
    success, error = parse_iso(record.last_success), parse_iso(record.last_error)
    if success is None or error is None:
        return "success" if success else ("error" if error else None)
    return "success" if success >= error else "error"
