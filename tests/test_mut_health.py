"""Health at its exact boundaries, asserted as whole ``Health`` values (mutation testing, issue 15).

Records are built by hand; the liveness fakes check the marker they are given (its pid and start), so
a check that passes the wrong marker, or none, fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stratmancer_jobs import health
from stratmancer_jobs.config import JobSchedule
from stratmancer_jobs.health import CRITICAL, OK, WARNING, Health, compute_health
from stratmancer_jobs.state import JobRecord, RunEntry, RunMarker

UTCZ = ZoneInfo("UTC")
HELSINKI = ZoneInfo("Europe/Helsinki")
HOURLY = JobSchedule("0 * * * *", 300, 1800)  # grace 5 min, limit 30 min
HOURLY_NO_LIMIT = JobSchedule("0 * * * *", 300, 0)
YEARLY_NO_LIMIT = JobSchedule("0 0 1 1 *", 300, 0)
PID = 4242


def at(hour: int, minute: int = 0, second: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 1, day, hour, minute, second, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def succeeded(moment: datetime, **extra: object) -> JobRecord:
    return JobRecord(
        success_count=1,
        last_status="success",
        last_started=iso(moment),
        last_finished=iso(moment),
        last_success=iso(moment),
        **extra,  # type: ignore[arg-type]
    )


def marker(started: datetime | str, pid: int = PID) -> RunMarker:
    return RunMarker(pid=pid, started=started if isinstance(started, str) else iso(started))


def liveness(expected: RunMarker, result: bool) -> Callable[[RunMarker], bool]:
    """A fake that answers only for the running marker of the record (pid and start checked)."""
    calls: list[RunMarker] = []

    def alive(given: RunMarker) -> bool:
        calls.append(given)
        assert given.pid == expected.pid and given.started == expected.started, given
        return result

    alive.calls = calls  # type: ignore[attr-defined]
    return alive


def never_called(given: RunMarker) -> bool:
    raise AssertionError(f"liveness checked without a running marker: {given}")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (119, "119s"),
        (120, "2m"),
        (179, "2m"),
        (7199, "119m"),
        (7200, "2h00m"),
        (7259, "2h00m"),
        (7260, "2h01m"),
        (3600 * 25 + 60 * 7 + 5, "25h07m"),
        (172799, "47h59m"),
        (172800, "2d"),
        (86400 * 5 - 1, "4d"),
        (86400 * 5, "5d"),
    ],
)
def test_age_text_at_every_unit_boundary(seconds: float, text: str) -> None:
    assert health._age(seconds) == text


def test_health_cell_is_the_short_text_or_the_state() -> None:
    assert Health("late", WARNING, "d", "late 3m").cell == "late 3m"
    assert Health("ok", OK, "ok").cell == "ok"
    assert Health("ok", OK, "ok").short == ""


def test_levels() -> None:
    assert (OK, WARNING, CRITICAL) == (0, 1, 2)


def test_never_run_without_a_marker_does_not_ask_liveness() -> None:
    assert compute_health(JobRecord(), HOURLY, UTCZ, at(12), never_called) == Health(
        "never run", WARNING, "no run recorded yet"
    )


def test_ok_up_to_the_due_time_plus_grace_and_late_from_it() -> None:
    """Success at 12:00:00: ok until 13:05 minus a second; at exactly 13:05 the 13:00 run is missed."""
    record = succeeded(at(12))
    assert compute_health(record, HOURLY, UTCZ, at(13, 4, 59), never_called) == Health("ok", OK, "ok")
    assert compute_health(record, HOURLY, UTCZ, at(13, 5), never_called) == Health(
        "late", WARNING, "due 13:00 UTC, 5m late, grace 5m", "late 5m"
    )
    assert compute_health(record, HOURLY, UTCZ, at(13, 5, 1), never_called) == Health(
        "late", WARNING, "due 13:00 UTC, 5m late, grace 5m", "late 5m"
    )


def test_a_success_exactly_at_the_due_time_counts() -> None:
    """last_success == the fire time is on time; a second earlier is late."""
    now = at(13, 30)
    assert compute_health(succeeded(at(13)), HOURLY, UTCZ, now, never_called) == Health("ok", OK, "ok")
    assert compute_health(succeeded(at(12, 59, 59)), HOURLY, UTCZ, now, never_called) == Health(
        "late", WARNING, "due 13:00 UTC, 30m late, grace 5m", "late 30m"
    )


def test_late_turns_critical_just_past_twice_the_interval() -> None:
    record = succeeded(at(12))
    assert compute_health(record, HOURLY, UTCZ, at(15, 5), never_called) == Health(
        "late", WARNING, "due 13:00 UTC, 2h05m late, grace 5m", "late 2h05m"
    )
    assert compute_health(record, HOURLY, UTCZ, at(15, 5, 1), never_called) == Health(
        "late", CRITICAL, "due 13:00 UTC, 2h05m late, grace 5m", "late 2h05m"
    )


def test_late_due_time_is_shown_in_the_schedule_zone() -> None:
    """The due text is local (Helsinki, EET = UTC+2) even when ``now`` is given in UTC."""
    record = succeeded(at(12))
    now = at(13, 5, 1)
    assert compute_health(record, HOURLY, HELSINKI, now, never_called) == Health(
        "late", WARNING, "due 15:00 EET, 5m late, grace 5m", "late 5m"
    )
    # the same instant given in another zone gives the same answer
    assert compute_health(record, HOURLY, HELSINKI, now.astimezone(HELSINKI), never_called) == Health(
        "late", WARNING, "due 15:00 EET, 5m late, grace 5m", "late 5m"
    )


def test_only_skipped_runs_count_as_never_run() -> None:
    """A run recorded (skipped) but none completed: never run, or new before its first due time."""
    record = JobRecord(skipped_count=1, last_status="skipped", last_finished=iso(at(12)))
    assert compute_health(record, HOURLY, UTCZ, at(13, 10), never_called) == Health(
        "never run", WARNING, "no run recorded yet"
    )
    assert compute_health(record, HOURLY, UTCZ, at(13, 4), never_called, at(12)) == Health(
        "new", OK, "not run yet; first due 13:00 UTC, grace 5m", "new"
    )
    assert compute_health(record, HOURLY, UTCZ, at(13, 5), never_called, at(12)) == Health(
        "never run", WARNING, "no run recorded yet; first due 13:00 UTC, grace 5m"
    )


@pytest.mark.parametrize(
    ("failures", "detail", "short"),
    [
        (0, "1 consecutive failure", "failing x1"),
        (1, "1 consecutive failure", "failing x1"),
        (2, "2 consecutive failures", "failing x2"),
        (7, "7 consecutive failures", "failing x7"),
    ],
)
def test_failing_counts_and_plural(failures: int, detail: str, short: str) -> None:
    record = JobRecord(
        error_count=1,
        last_status="error",
        last_finished=iso(at(12)),
        last_success=iso(at(12)),  # recent: only the failure decides
        consecutive_failures=failures,
    )
    assert compute_health(record, HOURLY, UTCZ, at(12, 1), never_called) == Health(
        "failing", CRITICAL, detail, short
    )


def test_the_newest_completed_run_decides_failing() -> None:
    runs = (
        RunEntry(status="error", started=iso(at(11))),
        RunEntry(status="success", started=iso(at(12))),
    )
    record = succeeded(at(12), runs=runs, consecutive_failures=0)
    assert compute_health(record, HOURLY, UTCZ, at(12, 1), never_called) == Health("ok", OK, "ok")


def test_a_warning_only_while_on_time() -> None:
    record = succeeded(at(12), last_warning="the app cannot serve the model")
    assert compute_health(record, HOURLY, UTCZ, at(12, 30), never_called) == Health(
        "warning", WARNING, "the app cannot serve the model", "warning"
    )
    assert compute_health(record, HOURLY, UTCZ, at(13, 6), never_called) == Health(
        "late",
        WARNING,
        "due 13:00 UTC, 6m late, grace 5m; warning: the app cannot serve the model",
        "late 6m +warning",
    )


def test_clock_skew_boundary_is_more_than_300_seconds() -> None:
    now = at(12)
    exactly = succeeded(now + timedelta(seconds=300))
    assert compute_health(exactly, HOURLY, UTCZ, now, never_called) == Health("ok", OK, "ok")
    ahead_text = iso(now + timedelta(seconds=301))
    ahead = succeeded(now + timedelta(seconds=301))
    assert compute_health(ahead, HOURLY, UTCZ, now, never_called) == Health(
        "late",
        WARNING,
        f"clock skew: last success {ahead_text} is in the future; due 11:00 UTC, 60m late, grace 5m",
        "late 60m (clock skew)",
    )


def test_clock_skew_keeps_a_critical_level() -> None:
    now = at(12)
    text = iso(now + timedelta(hours=1))
    record = JobRecord(
        error_count=2,
        last_status="error",
        last_finished=iso(now),
        last_success=text,
        consecutive_failures=2,
    )
    assert compute_health(record, HOURLY, UTCZ, now, never_called) == Health(
        "failing",
        CRITICAL,
        f"clock skew: last success {text} is in the future; 2 consecutive failures",
        "failing x2 (clock skew)",
    )


def test_a_killed_run_is_noted_and_at_least_a_warning() -> None:
    run = marker(at(12, 30))
    record = succeeded(at(12), running=run)
    alive = liveness(run, False)
    assert compute_health(record, HOURLY, UTCZ, at(12, 40), alive) == Health(
        "ok",
        WARNING,
        f"ok; the run started {iso(at(12, 30))} (pid {PID}) was killed",
        "ok (killed)",
    )
    assert alive.calls == [run]  # type: ignore[attr-defined]


def test_a_killed_run_keeps_a_critical_level() -> None:
    run = marker(at(12, 30), pid=77)
    record = JobRecord(
        error_count=1, last_status="error", last_finished=iso(at(12)), consecutive_failures=3, running=run
    )
    assert compute_health(record, HOURLY, UTCZ, at(12, 40), liveness(run, False)) == Health(
        "failing",
        CRITICAL,
        f"3 consecutive failures; the run started {iso(at(12, 30))} (pid 77) was killed",
        "failing x3 (killed)",
    )


def test_a_killed_run_while_late() -> None:
    run = marker(at(13))
    record = succeeded(at(12), running=run)
    assert compute_health(record, HOURLY, UTCZ, at(15, 5, 1), liveness(run, False)) == Health(
        "late",
        CRITICAL,
        f"due 13:00 UTC, 2h05m late, grace 5m; the run started {iso(at(13))} (pid {PID}) was killed",
        "late 2h05m (killed)",
    )


def running_health(record: JobRecord, schedule: JobSchedule, now: datetime, zone: ZoneInfo = UTCZ) -> Health:
    assert record.running is not None
    alive = liveness(record.running, True)
    result = compute_health(record, schedule, zone, now, alive)
    assert alive.calls == [record.running]  # type: ignore[attr-defined]
    return result


def test_running_within_limit_up_to_exactly_the_limit() -> None:
    record = succeeded(at(12), running=marker(at(13)))
    assert running_health(record, HOURLY, at(13, 10)) == Health(
        "running", OK, "running for 10m", "running 10m"
    )
    assert running_health(record, HOURLY, at(13, 30)) == Health(
        "running", OK, "running for 30m", "running 30m"
    )
    assert running_health(record, HOURLY, at(13, 30, 1)) == Health(
        "running", WARNING, "running for 30m, past its 1800s limit", "running 30m (over limit)"
    )


def test_running_stuck_just_past_twice_the_limit() -> None:
    record = succeeded(at(12), running=marker(at(13)))
    assert running_health(record, HOURLY, at(14)) == Health(
        "running", WARNING, "running for 60m, past its 1800s limit", "running 60m (over limit)"
    )
    assert running_health(record, HOURLY, at(14, 0, 1)) == Health(
        "running",
        CRITICAL,
        "running for 60m: more than twice its 1800s limit (stopped or hung?)",
        "running 60m (stuck)",
    )


def test_running_stuck_when_late_by_more_than_twice_the_interval() -> None:
    record = succeeded(at(12), running=marker(at(13)))
    assert running_health(record, HOURLY_NO_LIMIT, at(15, 5)) == Health(
        "running", OK, "running for 2h05m", "running 2h05m"
    )
    assert running_health(record, HOURLY_NO_LIMIT, at(15, 5, 1)) == Health(
        "running",
        CRITICAL,
        "running for 2h05m: late by 2h00m, more than twice the 60m interval (stopped or hung?)",
        "running 2h05m (stuck)",
    )


def test_running_stuck_for_both_reasons() -> None:
    record = succeeded(at(12), running=marker(at(13)))
    assert running_health(record, HOURLY, at(15, 5, 1)) == Health(
        "running",
        CRITICAL,
        "running for 2h05m: more than twice its 1800s limit; late by 2h00m, more than twice the 60m "
        "interval (stopped or hung?)",
        "running 2h05m (stuck)",
    )


def test_first_run_counts_lateness_from_its_start() -> None:
    """Never succeeded: the run that started at 13:00 is late from 14:05 on, stuck past 16:05."""
    record = JobRecord(running=marker(at(13)))
    assert running_health(record, HOURLY_NO_LIMIT, at(16, 5)) == Health(
        "running", OK, "running for 3h05m", "running 3h05m"
    )
    assert running_health(record, HOURLY_NO_LIMIT, at(16, 5, 1)) == Health(
        "running",
        CRITICAL,
        "running for 3h05m: late by 2h00m, more than twice the 60m interval (stopped or hung?)",
        "running 3h05m (stuck)",
    )


def test_running_with_an_unreadable_start_is_age_zero_and_never_late() -> None:
    record = JobRecord(running=marker("not a time"))
    assert running_health(record, HOURLY, at(20)) == Health("running", OK, "running for 0s", "running 0s")


def test_running_with_a_start_in_the_future_is_age_zero() -> None:
    record = succeeded(at(12), running=marker(at(12, 30)))
    assert running_health(record, HOURLY, at(12, 20)) == Health("running", OK, "running for 0s", "running 0s")


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(1, "60s"), (2, "2m"), (119, "119m"), (120, "2h00m"), (60 * 47 + 59, "47h59m"), (60 * 48, "2d")],
)
def test_running_age_text(minutes: int, text: str) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    record = succeeded(start, running=marker(start))
    now = start + timedelta(minutes=minutes)
    assert running_health(record, YEARLY_NO_LIMIT, now) == Health(
        "running", OK, f"running for {text}", f"running {text}"
    )


def test_running_with_clock_skew() -> None:
    now = at(13, 10)
    text = iso(now + timedelta(hours=2))
    record = JobRecord(
        success_count=1,
        last_status="success",
        last_finished=iso(at(12)),
        last_success=text,
        running=marker(at(13)),
    )
    assert running_health(record, HOURLY, now) == Health(
        "running",
        WARNING,
        f"clock skew: last success {text} is in the future; running for 10m",
        "running 10m (clock skew)",
    )


# --- the schedule's zone reaches every computation (a daily job at 03:00 Helsinki is 01:00 UTC) ---------

DAILY_HELSINKI = JobSchedule("0 3 * * *", 3600, 0)
DAY = datetime(2026, 1, 10, 1, 0, 5, tzinfo=UTC)  # 03:00:05 EET: just after the run due that day


def test_late_counts_from_the_fire_time_in_the_schedule_zone() -> None:
    record = succeeded(DAY)
    now = datetime(2026, 1, 11, 2, 0, 1, tzinfo=UTC)  # the 01-11 03:00 EET run + 1 h grace, and 1 s
    expected = Health("late", WARNING, "due 03:00 EET, 60m late, grace 1h", "late 60m")
    assert compute_health(record, DAILY_HELSINKI, HELSINKI, now, never_called) == expected
    run = marker(now - timedelta(hours=30))
    killed = compute_health(replace(record, running=run), DAILY_HELSINKI, HELSINKI, now, liveness(run, False))
    assert killed == Health(
        "late",
        WARNING,
        f"{expected.detail}; the run started {run.started} (pid {PID}) was killed",
        "late 60m (killed)",
    )


def test_running_stuck_boundary_in_the_schedule_zone() -> None:
    run = marker(DAY + timedelta(hours=1))
    record = succeeded(DAY, running=run)
    edge = datetime(2026, 1, 13, 2, 0, tzinfo=UTC)  # late by exactly twice the 24 h interval
    assert running_health(record, DAILY_HELSINKI, edge, HELSINKI) == Health(
        "running", OK, "running for 2d", "running 2d"
    )
    assert running_health(record, DAILY_HELSINKI, edge + timedelta(seconds=1), HELSINKI) == Health(
        "running",
        CRITICAL,
        "running for 2d: late by 2d, more than twice the 24h00m interval (stopped or hung?)",
        "running 2d (stuck)",
    )


def test_the_interval_on_a_23_hour_day() -> None:
    """2026-03-29 has 23 hours in Helsinki: late by 47.5 h is more than twice that interval."""
    last = datetime(2026, 3, 26, 1, 0, 5, tzinfo=UTC)
    now = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert compute_health(succeeded(last), DAILY_HELSINKI, HELSINKI, now, never_called) == Health(
        "late",
        CRITICAL,
        "due 2026-03-27 03:00 EET, 2d late, grace 1h",
        "late 2d",
    )
    record = succeeded(last, running=marker(now - timedelta(minutes=5)))
    assert running_health(record, DAILY_HELSINKI, now, HELSINKI) == Health(
        "running",
        CRITICAL,
        "running for 5m: late by 47h30m, more than twice the 23h00m interval (stopped or hung?)",
        "running 5m (stuck)",
    )
