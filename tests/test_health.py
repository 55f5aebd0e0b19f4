"""Health computed from schedule + state at controlled clock times, including DST transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stratmancer_jobs.config import JobSchedule
from stratmancer_jobs.health import CRITICAL, OK, WARNING, compute_health
from stratmancer_jobs.schedule import interval_s, is_due, next_run, previous_run
from stratmancer_jobs.state import JobRecord, empty_record, mark_finished, mark_started

UTCZ = ZoneInfo("UTC")
HELSINKI = ZoneInfo("Europe/Helsinki")  # EET/EEST: 03:00 is skipped in March and repeated in October
HOURLY = JobSchedule("0 * * * *", 300, 1800)
DAILY = JobSchedule("0 3 * * *", 3600, 600)


def _record(*outcomes: tuple[datetime, bool]) -> JobRecord:
    record = empty_record()
    for at, ok in outcomes:
        record = mark_finished(record, ok=ok, started=at, finished=at, duration_s=1.0, summary="s", error="e")
    return record


def _dead(pid: object) -> bool:
    return False


def _alive(pid: object) -> bool:
    return True


def test_never_run_is_a_warning() -> None:
    """A job with no recorded run is 'never run'."""
    h = compute_health(empty_record(), HOURLY, UTCZ, datetime(2026, 1, 1, tzinfo=UTC), _dead)
    assert (h.state, h.level) == ("never run", WARNING)


def test_ok_within_grace_and_late_after_it() -> None:
    """An hourly job succeeded at 12:00:30 is ok until 13:05, late (warning) just after."""
    record = _record((datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), True))
    assert (
        compute_health(record, HOURLY, UTCZ, datetime(2026, 1, 1, 13, 4, 59, tzinfo=UTC), _dead).state == "ok"
    )
    late = compute_health(record, HOURLY, UTCZ, datetime(2026, 1, 1, 13, 5, 1, tzinfo=UTC), _dead)
    assert (late.state, late.level) == ("late", WARNING)
    assert late.detail == "due 13:00 UTC, 5m late, grace 5m"


def test_late_by_more_than_twice_the_interval_is_critical() -> None:
    """Late by more than two schedule intervals escalates to critical."""
    record = _record((datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), True))
    at = datetime(2026, 1, 1, 13, 5, tzinfo=UTC) + timedelta(hours=2, seconds=1)
    h = compute_health(record, HOURLY, UTCZ, at, _dead)
    assert (h.state, h.level) == ("late", CRITICAL)


def test_failing_counts_consecutive_failures_and_skips_do_not_hide_it() -> None:
    """After two failures the job is failing (critical) with the count; a skip does not reset it."""
    t = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    record = _record((t, True), (t + timedelta(hours=1), False), (t + timedelta(hours=2), False))
    from stratmancer_jobs.state import mark_skipped

    record = mark_skipped(record, at=t + timedelta(hours=2, minutes=1), reason="busy")
    h = compute_health(record, HOURLY, UTCZ, t + timedelta(hours=2, minutes=2), _dead)
    assert (h.state, h.level, h.detail) == ("failing", CRITICAL, "2 consecutive failures")


def test_running_shows_age_and_warns_past_limit() -> None:
    """A live running marker is 'running for N'; past the timeout it is a warning."""
    record = _record((datetime(2026, 1, 1, 12, 0, tzinfo=UTC), True))
    record = mark_started(record, pid=12345, started=datetime(2026, 1, 1, 13, 0, tzinfo=UTC))
    h = compute_health(record, HOURLY, UTCZ, datetime(2026, 1, 1, 13, 10, tzinfo=UTC), _alive)
    assert (h.state, h.level, h.detail) == ("running", OK, "running for 10m")
    over = compute_health(record, HOURLY, UTCZ, datetime(2026, 1, 1, 13, 40, tzinfo=UTC), _alive)
    assert (over.state, over.level) == ("running", WARNING) and "past its 1800s limit" in over.detail
    dead = compute_health(record, HOURLY, UTCZ, datetime(2026, 1, 1, 13, 10, tzinfo=UTC), _dead)
    assert (dead.state, dead.cell) == ("late", "late 10m (killed)")  # the 13:00 run died


def test_spring_forward_03_00_fires_right_after_the_gap() -> None:
    """In Helsinki on 2026-03-29, 03:00 does not exist: the daily job is due at 04:00 EEST (01:00 UTC)."""
    before = datetime(2026, 3, 29, 0, 0, tzinfo=HELSINKI)
    fire = next_run(DAILY.schedule, HELSINKI, before)
    assert fire.astimezone(UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert interval_s(DAILY.schedule, HELSINKI, datetime(2026, 3, 29, 12, 0, tzinfo=HELSINKI)) == 23 * 3600


def test_fall_back_03_00_fires_once_and_the_day_has_25_hours() -> None:
    """On 2026-10-25 03:00 happens twice in Helsinki; the job fires once and the interval is 25 h."""
    first = next_run(DAILY.schedule, HELSINKI, datetime(2026, 10, 25, 2, 59, tzinfo=HELSINKI))
    assert first.astimezone(UTC) == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    after = next_run(DAILY.schedule, HELSINKI, first)
    assert after.astimezone(UTC) == datetime(2026, 10, 26, 1, 0, tzinfo=UTC)
    assert interval_s(DAILY.schedule, HELSINKI, datetime(2026, 10, 25, 12, 0, tzinfo=HELSINKI)) == 25 * 3600


@pytest.mark.parametrize(
    ("success_utc", "now_utc", "state"),
    [
        # spring forward: ran at 04:00:05 EEST (01:00:05 UTC); grace 1 h
        (datetime(2026, 3, 29, 1, 0, 5), datetime(2026, 3, 30, 0, 59), "ok"),  # next: 00:00 UTC + 1h
        (datetime(2026, 3, 28, 1, 0, 5), datetime(2026, 3, 29, 1, 59), "ok"),  # due 01:00 UTC + 1h
        (datetime(2026, 3, 28, 1, 0, 5), datetime(2026, 3, 29, 2, 0, 1), "late"),
        # fall back: the 03:00 EEST run (00:00 UTC) succeeded; the repeated 03:00 EET must not make it late
        (datetime(2026, 10, 25, 0, 0, 5), datetime(2026, 10, 25, 2, 30), "ok"),
        (datetime(2026, 10, 25, 0, 0, 5), datetime(2026, 10, 26, 1, 59), "ok"),
        (datetime(2026, 10, 25, 0, 0, 5), datetime(2026, 10, 26, 2, 0, 1), "late"),
    ],
)
def test_daily_job_health_across_dst(success_utc: datetime, now_utc: datetime, state: str) -> None:
    """Late is computed against the real fire times around both DST changes, not wall-clock guesses."""
    record = _record((success_utc.replace(tzinfo=UTC), True))
    now = now_utc.replace(tzinfo=UTC).astimezone(HELSINKI)  # status passes now in the schedule's zone
    assert compute_health(record, DAILY, HELSINKI, now, _dead).state == state


def test_is_due_and_previous_run() -> None:
    """is_due is true exactly when a fire time passed after the last success."""
    last = datetime(2026, 1, 1, 3, 0, 10, tzinfo=UTC)
    assert not is_due(DAILY.schedule, UTCZ, last, datetime(2026, 1, 2, 2, 59, tzinfo=UTC))
    assert is_due(DAILY.schedule, UTCZ, last, datetime(2026, 1, 2, 3, 0, tzinfo=UTC))
    assert is_due(DAILY.schedule, UTCZ, None, datetime(2026, 1, 2, 3, 0, tzinfo=UTC))
    assert previous_run("*/5 * * * *", UTCZ, datetime(2026, 1, 1, 12, 7, tzinfo=UTC)).minute == 5
    assert OK == 0


def test_killed_run_is_reported_and_at_least_a_warning() -> None:
    """A running marker whose pid is dead says the run was killed and raises the level to warning."""
    t = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    record = _record((t, True))
    record = mark_started(record, pid=4242, started=t + timedelta(minutes=59, seconds=45))
    h = compute_health(record, HOURLY, UTCZ, t + timedelta(hours=1), _dead)
    assert (h.state, h.level) == ("ok", WARNING)
    assert "(pid 4242) was killed" in h.detail and h.cell == "ok (killed)"
