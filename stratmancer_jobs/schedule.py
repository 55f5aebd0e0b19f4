"""Schedules as data: cron expression + timezone. Next/previous fire times and "late" are computed.

Arithmetic and comparisons are done in UTC: Python compares and subtracts two datetimes that share a
tzinfo by wall clock, which is wrong across a DST change (a 25-hour day would count as 24).

cronsim (healthchecks.io's evaluator) is used rather than croniter: it follows Debian cron's DST rules
(a time skipped by spring-forward fires once right after the gap, a repeated hour fires once), it has
no dependencies, and it is actively maintained; croniter's DST handling has a long bug history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from stratmancer_jobs.errors import ConfigError


def validate_cron(expr: str, where: str) -> None:
    """Raise ConfigError naming ``where`` unless ``expr`` is a valid 5-field cron expression."""
    if len(expr.split()) != 5:
        raise ConfigError(f"{where}: {expr!r} is not a 5-field cron expression (e.g. '0 * * * *')")
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")))
    except CronSimError as exc:
        raise ConfigError(f"{where}: invalid cron expression {expr!r}: {exc}") from None


def next_run(expr: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (aware), in ``zone``."""
    return next(CronSim(expr, after.astimezone(zone)))


def previous_run(expr: str, zone: ZoneInfo, at: datetime) -> datetime:
    """The last fire time at or before ``at`` (aware), in ``zone``."""
    start = at.astimezone(zone) + timedelta(seconds=1)
    return next(CronSim(expr, start, reverse=True))


def interval_s(expr: str, zone: ZoneInfo, at: datetime) -> float:
    """Seconds between the fire time before ``at`` and the one after it (the schedule's period there)."""
    prev = previous_run(expr, zone, at)
    return (next_run(expr, zone, prev).astimezone(UTC) - prev.astimezone(UTC)).total_seconds()


def describe(expr: str) -> str:
    """A human-readable form, e.g. ``Every hour`` or ``At 03:00``."""
    try:
        text: str = CronSim(expr, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))).explain()
    except Exception:  # explain() is best-effort; never let wording break status
        return expr
    return text


def is_due(expr: str, zone: ZoneInfo, last_success: datetime | None, now: datetime) -> bool:
    """True when a scheduled time has passed since the last success (or there never was one)."""
    if last_success is None:
        return True
    return previous_run(expr, zone, now).astimezone(UTC) > last_success.astimezone(UTC)
