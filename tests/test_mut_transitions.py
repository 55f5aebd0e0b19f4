"""The record transitions (``state/transitions.py``), compared whole: every field a transition must set,
and every field it must leave alone, for a record that already has a history (mutation testing, issue 25).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stratmancer_jobs.procs import process_start_ticks
from stratmancer_jobs.state import JobRecord, RunEntry, RunMarker
from stratmancer_jobs.state.records import MAX_COUNT, MAX_ERROR_CHARS, MAX_SUMMARY_CHARS, RECENT_RUNS
from stratmancer_jobs.state.transitions import (
    last_completed_status,
    mark_failed_unrun,
    mark_finished,
    mark_interrupted,
    mark_skipped,
    mark_started,
)

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=75)
PARIS = T1.astimezone(ZoneInfo("Europe/Paris"))  # another zone: every stored time is written in UTC
OLD_RUNS = tuple(
    RunEntry(f"2026-11-28T{h:02d}:00:00+00:00", "success", 1.0, f"run {h}", "old-host")
    for h in range(RECENT_RUNS)
)
MARKER = RunMarker(4242, "2026-11-29T09:59:00+00:00", 777, "node-b")


def busy() -> JobRecord:
    """A record with every field set to something no transition writes."""
    return JobRecord(
        success_count=7,
        error_count=4,
        skipped_count=2,
        interrupted_count=1,
        last_status="skipped",
        last_started="2026-11-28T08:00:00+00:00",
        last_finished="2026-11-28T08:01:00+00:00",
        last_success="2026-11-28T07:01:00+00:00",
        last_error="2026-11-28T08:01:00+00:00",
        last_error_message="old error",
        last_duration_s=60.0,
        last_summary="old summary",
        last_warning="old warning",
        consecutive_failures=3,
        running=MARKER,
        runs=OLD_RUNS,
        last_metrics={"old": 1},
        extra={"future_key": [1]},
    )


def test_mark_started_records_the_pid_its_start_time_and_the_host() -> None:
    """The marker names this process (with its start time from /proc) and the host; nothing else moves."""
    record = replace(busy(), running=None)
    started = mark_started(record, pid=os.getpid(), started=PARIS, host="node-a")
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None
    assert started == replace(
        record, running=RunMarker(os.getpid(), "2026-11-29T10:01:15+00:00", ticks, "node-a")
    )
    assert mark_started(record, pid=os.getpid(), started=T0).running == RunMarker(
        os.getpid(), "2026-11-29T10:00:00+00:00", ticks, None
    )


def test_a_success_resets_the_failures_and_keeps_the_last_error() -> None:
    """A success: counted, its times, duration (rounded to ms), summary, warning, metrics and run entry
    recorded, the running marker cleared, consecutive failures reset; the last error stays."""
    done = mark_finished(
        busy(),
        ok=True,
        started=T0,
        finished=PARIS,
        duration_s=75.00049,
        summary="done",
        error="ignored on success",
        metrics={"things": 3, "mode": "full"},
        warning="careful",
        host="node-a",
    )
    assert done == replace(
        busy(),
        success_count=8,
        last_status="success",
        last_started="2026-11-29T10:00:00+00:00",
        last_finished="2026-11-29T10:01:15+00:00",
        last_success="2026-11-29T10:01:15+00:00",
        last_duration_s=75.0,
        last_summary="done",
        last_warning="careful",
        consecutive_failures=0,
        running=None,
        last_metrics={"things": 3, "mode": "full"},
        runs=(*OLD_RUNS[1:], RunEntry("2026-11-29T10:00:00+00:00", "success", 75.0, "done", "node-a")),
    )


def test_a_clean_success_clears_the_warning_and_keeps_the_metrics_when_none_are_given() -> None:
    """No warning: the last one is cleared; no metrics: the last ones stay; no summary: none recorded."""
    done = mark_finished(busy(), ok=True, started=T0, finished=T1, duration_s=0.0005, summary="", error=None)
    assert done.last_warning is None
    assert done.last_metrics == {"old": 1}
    assert done.last_summary is None and done.runs[-1] == RunEntry(
        "2026-11-29T10:00:00+00:00", "success", 0.001, None, None
    )


def test_a_failure_counts_and_records_its_error_not_its_summary() -> None:
    """A failure: counted, its error (not its summary) in the record and in the run entry, consecutive
    failures one more, the last warning kept (the output it was about is still on disk), the last
    success untouched."""
    failed = mark_finished(
        busy(),
        ok=False,
        started=T0,
        finished=T1,
        duration_s=1.23456,
        summary="9 tiers refreshed",
        error="matches_GOLD.json: truncated",
        metrics={"things": 1},
        warning="a new warning is not taken from a failed run",
        host="node-a",
    )
    assert failed == replace(
        busy(),
        error_count=5,
        last_status="error",
        last_started="2026-11-29T10:00:00+00:00",
        last_finished="2026-11-29T10:01:15+00:00",
        last_error="2026-11-29T10:01:15+00:00",
        last_error_message="matches_GOLD.json: truncated",
        last_duration_s=1.235,
        last_summary="9 tiers refreshed",
        consecutive_failures=4,
        running=None,
        last_metrics={"things": 1},
        runs=(
            *OLD_RUNS[1:],
            RunEntry("2026-11-29T10:00:00+00:00", "error", 1.235, "matches_GOLD.json: truncated", "node-a"),
        ),
    )


def test_a_failure_without_a_message_and_long_texts() -> None:
    """No error text: "unknown error"; texts longer than their limit are cut (marked with an ellipsis)."""
    failed = mark_finished(busy(), ok=False, started=T0, finished=T1, duration_s=0, summary=None, error=None)
    assert failed.last_error_message == "unknown error" == failed.runs[-1].summary
    long_error, long_summary = "e" * (MAX_ERROR_CHARS + 9), "s" * (MAX_SUMMARY_CHARS + 9)
    failed = mark_finished(
        busy(), ok=False, started=T0, finished=T1, duration_s=0, summary=long_summary, error=long_error
    )
    assert failed.last_error_message == "e" * (MAX_ERROR_CHARS - 1) + "…"
    assert failed.last_summary == "s" * (MAX_SUMMARY_CHARS - 1) + "…"
    done = mark_finished(
        busy(), ok=True, started=T0, finished=T1, duration_s=0, summary=long_summary, error=None,
        warning="w" * (MAX_SUMMARY_CHARS + 1),
    )  # fmt: skip
    assert done.last_summary == "s" * (MAX_SUMMARY_CHARS - 1) + "…" == done.runs[-1].summary
    assert done.last_warning == "w" * (MAX_SUMMARY_CHARS - 1) + "…"


@pytest.mark.parametrize("ok", [True, False])
def test_counters_saturate_at_max_count(ok: bool) -> None:
    """A counter at MAX_COUNT stays there; one below it reaches it."""
    full = replace(busy(), success_count=MAX_COUNT, error_count=MAX_COUNT, consecutive_failures=MAX_COUNT)
    done = mark_finished(full, ok=ok, started=T0, finished=T1, duration_s=1, summary=None, error="x")
    assert (done.success_count, done.error_count) == (MAX_COUNT, MAX_COUNT)
    below = replace(busy(), success_count=MAX_COUNT - 1, error_count=MAX_COUNT - 1)
    done = mark_finished(below, ok=ok, started=T0, finished=T1, duration_s=1, summary=None, error="x")
    assert (done.success_count, done.error_count) == (
        (MAX_COUNT, MAX_COUNT - 1) if ok else (MAX_COUNT - 1, MAX_COUNT)
    )
    assert (
        mark_skipped(replace(busy(), skipped_count=MAX_COUNT), at=T1, reason="r").skipped_count == MAX_COUNT
    )


def test_recent_runs_keep_the_newest_and_start_from_none() -> None:
    """The run list keeps the RECENT_RUNS newest, the new one last; an empty record gets its first."""
    first = mark_finished(
        JobRecord(), ok=True, started=T0, finished=T1, duration_s=2, summary="s", error=None
    )
    assert first.runs == (RunEntry("2026-11-29T10:00:00+00:00", "success", 2, "s", None),)
    assert first.success_count == 1 and first.error_count == 0 and first.consecutive_failures == 0
    failed = mark_finished(first, ok=False, started=T1, finished=T1, duration_s=0, summary=None, error="x")
    assert failed.runs == (first.runs[0], RunEntry("2026-11-29T10:01:15+00:00", "error", 0, "x", None))
    assert failed.consecutive_failures == 1 and failed.last_success == first.last_success


def test_a_run_that_could_not_start_is_a_failure_that_keeps_the_marker() -> None:
    """The lock could not be opened: a failed run of no duration at ``at``, the other run's marker
    (if any) kept, since nothing is known about it without the lock."""
    failed = mark_failed_unrun(busy(), at=PARIS, error="cannot open job lock /x: Permission denied")
    message = "cannot open job lock /x: Permission denied"
    assert failed == replace(
        busy(),
        error_count=5,
        last_status="error",
        last_started="2026-11-29T10:01:15+00:00",
        last_finished="2026-11-29T10:01:15+00:00",
        last_error="2026-11-29T10:01:15+00:00",
        last_error_message=message,
        last_duration_s=0.0,
        last_summary=None,
        consecutive_failures=4,
        runs=(*OLD_RUNS[1:], RunEntry("2026-11-29T10:01:15+00:00", "error", 0.0, message, None)),
    )
    assert mark_failed_unrun(replace(busy(), running=None), at=T1, error="e").running is None


def test_a_skipped_run_is_counted_with_its_reason_and_host() -> None:
    """Skipped: counted, its reason and host in a run entry of no duration, last status "skipped"; the
    other run's marker and every outcome field stay."""
    record = replace(busy(), last_status="success")
    skipped = mark_skipped(record, at=PARIS, reason="skipped: another run is in progress", host="node-a")
    assert skipped == replace(
        record,
        skipped_count=3,
        last_status="skipped",
        runs=(
            *OLD_RUNS[1:],
            RunEntry(
                "2026-11-29T10:01:15+00:00", "skipped", 0.0, "skipped: another run is in progress", "node-a"
            ),
        ),
    )
    assert mark_skipped(record, at=T0, reason="r").runs[-1].host is None


def test_an_interrupted_run_is_counted_apart() -> None:
    """Ctrl-C: counted apart, its times and duration recorded, marker cleared; successes, errors and
    consecutive failures stay what they were."""
    stopped = mark_interrupted(busy(), started=T0, finished=PARIS, duration_s=3.14159, host="node-a")
    assert stopped == replace(
        busy(),
        interrupted_count=2,
        last_status="interrupted",
        last_started="2026-11-29T10:00:00+00:00",
        last_finished="2026-11-29T10:01:15+00:00",
        last_duration_s=3.142,
        running=None,
        runs=(
            *OLD_RUNS[1:],
            RunEntry("2026-11-29T10:00:00+00:00", "interrupted", 3.142, "interrupted (Ctrl-C)", "node-a"),
        ),
    )
    assert mark_interrupted(busy(), started=T0, finished=T1, duration_s=0).runs[-1].host is None
    full = replace(busy(), interrupted_count=MAX_COUNT)
    assert mark_interrupted(full, started=T0, finished=T1, duration_s=0).interrupted_count == MAX_COUNT


def _runs(*statuses: str) -> tuple[RunEntry, ...]:
    return tuple(RunEntry(f"2026-11-28T{i:02d}:00:00+00:00", s) for i, s in enumerate(statuses))


@pytest.mark.parametrize(
    ("runs", "fields", "expected"),
    [
        (_runs("error", "success", "skipped", "interrupted"), {}, "success"),
        (_runs("success", "error", "skipped"), {}, "error"),
        (_runs("skipped"), {"last_status": "error"}, "error"),
        (_runs("skipped"), {"last_status": "success"}, "success"),
        ((), {}, None),
        # only skips and interruptions recorded: the newer of the last success and the last error
        (_runs("skipped"), {"last_success": "2026-11-28T10:00:00+00:00"}, "success"),
        (_runs("skipped"), {"last_error": "2026-11-28T10:00:00+00:00"}, "error"),
        (
            _runs("interrupted"),
            {"last_success": "2026-11-28T10:00:00+00:00", "last_error": "2026-11-28T09:59:59+00:00"},
            "success",
        ),
        (
            _runs("interrupted"),
            {"last_success": "2026-11-28T10:00:00+00:00", "last_error": "2026-11-28T10:00:01+00:00"},
            "error",
        ),
        (
            _runs("skipped"),
            {"last_success": "2026-11-28T10:00:00+00:00", "last_error": "2026-11-28T10:00:00+00:00"},
            "success",
        ),
        (_runs("skipped"), {"last_status": "skipped", "last_success": "not a time"}, None),
    ],
)
def test_last_completed_status(
    runs: tuple[RunEntry, ...], fields: dict[str, str], expected: str | None
) -> None:
    """The newest run that ran decides; without one, the last status if it is an outcome, else the
    newer of the last success and the last error (a tie goes to the success)."""
    assert last_completed_status(JobRecord(runs=runs, **fields)) == expected  # type: ignore[arg-type]


def test_last_success_never_moves_backwards() -> None:
    """A success that finished before the recorded one (the clock set back for the whole run) keeps the
    recorded one; a clock set back during the run counts the success at its start plus its duration."""
    from stratmancer_jobs.state.records import CLOCK_JUMP_S

    later = replace(busy(), last_success="2026-11-30T00:00:00+00:00")
    done = mark_finished(later, ok=True, started=T0, finished=T1, duration_s=75, summary=None, error=None)
    assert done.last_success == "2026-11-30T00:00:00+00:00"
    earlier = replace(busy(), last_success="2026-11-29T10:01:14+00:00")
    done = mark_finished(earlier, ok=True, started=T0, finished=T1, duration_s=75, summary=None, error=None)
    assert done.last_success == "2026-11-29T10:01:15+00:00"
    back = CLOCK_JUMP_S + 100  # the run took this long by the monotonic clock, 75 s by the wall clock
    done = mark_finished(busy(), ok=True, started=T0, finished=T1, duration_s=back, summary=None, error=None)
    assert done.last_success == (T0 + timedelta(seconds=back)).isoformat()
    near = CLOCK_JUMP_S + 75  # within the allowed disagreement: the wall clock's finish
    done = mark_finished(busy(), ok=True, started=T0, finished=T1, duration_s=near, summary=None, error=None)
    assert done.last_success == "2026-11-29T10:01:15+00:00"
