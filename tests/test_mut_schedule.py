"""schedule.py's exact values: validation messages, descriptions, fire times and the due boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.schedule import describe, interval_s, is_due, next_run, previous_run, validate_cron

UTCZ = ZoneInfo("UTC")
HELSINKI = ZoneInfo("Europe/Helsinki")
DAILY = "0 3 * * *"


@pytest.mark.parametrize("expr", ["0 * * * *", "*/15 2-4 1,15 1-12 1-5", "0 0 1 1 *"])
def test_validate_cron_accepts_five_valid_fields(expr: str) -> None:
    """A valid 5-field expression passes validation without an error."""
    assert validate_cron(expr, "jobs.x.schedule") is None


@pytest.mark.parametrize("expr", ["0 * * *", "0 * * * * *", "", "   "])
def test_validate_cron_names_where_for_a_wrong_field_count(expr: str) -> None:
    """Anything but five fields is refused with the location, the expression and an example."""
    with pytest.raises(ConfigError) as caught:
        validate_cron(expr, "jobs.x.schedule")
    expected = f"jobs.x.schedule: {expr!r} is not a 5-field cron expression (e.g. '0 * * * *')"
    assert str(caught.value) == expected


def test_validate_cron_reports_cronsim_reason() -> None:
    """Five fields that cronsim rejects give the location, the expression and cronsim's reason."""
    with pytest.raises(ConfigError) as caught:
        validate_cron("61 * * * *", "where")
    assert str(caught.value) == "where: invalid cron expression '61 * * * *': Bad minute"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("0 * * * *", "At the start of every hour"),
        (DAILY, "At 03:00 every day"),
        ("*/15 * * * *", "Every 15th minute of every hour"),
        ("30 2 * * 1-5", "At 02:30 on Monday through Friday"),
        ("0 0 1 1 *", "At 00:00 on January 1"),
    ],
)
def test_describe_gives_the_english_text(expr: str, text: str) -> None:
    """The description is cronsim's English explanation of the expression."""
    assert describe(expr) == text


@pytest.mark.parametrize("expr", ["bogus", "61 * * * *", ""])
def test_describe_falls_back_to_the_expression(expr: str) -> None:
    """An expression cronsim cannot explain is shown as written."""
    assert describe(expr) == expr


def test_next_run_is_strictly_after_in_the_zone() -> None:
    """At a fire time the next one is a day later, in the schedule's zone (03:00 Helsinki = 01:00 UTC)."""
    at = datetime(2026, 1, 2, 1, 0, tzinfo=UTC)
    got = next_run(DAILY, HELSINKI, at)
    assert got == datetime(2026, 1, 3, 3, 0, tzinfo=HELSINKI)
    assert got.tzinfo is HELSINKI


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 1, 2, 1, 0, 0, tzinfo=UTC), datetime(2026, 1, 2, 3, 0, tzinfo=HELSINKI)),
        (datetime(2026, 1, 2, 0, 59, 59, tzinfo=UTC), datetime(2026, 1, 1, 3, 0, tzinfo=HELSINKI)),
        (datetime(2026, 1, 2, 1, 0, 1, tzinfo=UTC), datetime(2026, 1, 2, 3, 0, tzinfo=HELSINKI)),
        (datetime(2026, 1, 2, 1, 0, 0, 999999, tzinfo=UTC), datetime(2026, 1, 2, 3, 0, tzinfo=HELSINKI)),
    ],
)
def test_previous_run_is_at_or_before(at: datetime, expected: datetime) -> None:
    """The previous fire time includes ``at`` itself and excludes a fire time one second later."""
    got = previous_run(DAILY, HELSINKI, at)
    assert got == expected
    assert got.tzinfo is HELSINKI


def test_previous_run_one_second_before_a_minute_schedule() -> None:
    """Every minute: one second before 10:05 the previous fire is 10:04, at 10:05 it is 10:05."""
    assert previous_run("* * * * *", UTCZ, datetime(2026, 1, 2, 10, 4, 59, tzinfo=UTC)) == datetime(
        2026, 1, 2, 10, 4, tzinfo=UTC
    )
    assert previous_run("* * * * *", UTCZ, datetime(2026, 1, 2, 10, 5, tzinfo=UTC)) == datetime(
        2026, 1, 2, 10, 5, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expr", "at", "seconds"),
    [
        ("*/15 * * * *", datetime(2026, 6, 1, 12, 7, tzinfo=UTC), 900.0),
        (DAILY, datetime(2026, 6, 1, 12, 0, tzinfo=UTC), 86400.0),
        ("0 3 * * 1", datetime(2026, 6, 3, 12, 0, tzinfo=UTC), 7 * 86400.0),
        (DAILY, datetime(2026, 3, 29, 12, 0, tzinfo=HELSINKI), 23 * 3600.0),
    ],
)
def test_interval_s_is_the_period_around_at(expr: str, at: datetime, seconds: float) -> None:
    """The period is measured in real seconds between the fire times around ``at``."""
    assert interval_s(expr, HELSINKI, at) == seconds


def test_is_due_without_a_success() -> None:
    """A job that never succeeded is due."""
    assert is_due(DAILY, HELSINKI, None, datetime(2026, 1, 2, 0, 0, tzinfo=UTC)) is True


def test_is_due_boundary_at_the_fire_time() -> None:
    """A success exactly at the last fire time is not due; one second earlier it is."""
    fire = datetime(2026, 1, 2, 3, 0, tzinfo=HELSINKI)
    now = fire + timedelta(hours=5)
    assert is_due(DAILY, HELSINKI, fire, now) is False
    assert is_due(DAILY, HELSINKI, fire - timedelta(seconds=1), now) is True
    assert is_due(DAILY, HELSINKI, fire.astimezone(UTC), now.astimezone(UTC)) is False


def test_is_due_uses_the_schedule_zone() -> None:
    """03:00 in Helsinki is 01:00 UTC: at 02:00 UTC a success from yesterday is due there, not in UTC."""
    last = datetime(2026, 1, 1, 4, 0, tzinfo=UTC)
    now = datetime(2026, 1, 2, 2, 0, tzinfo=UTC)
    assert is_due(DAILY, HELSINKI, last, now) is True
    assert is_due(DAILY, UTCZ, last, now) is False
