"""Schedules as data: cron expression + timezone. Next/previous fire times and "late" are computed.

Arithmetic and comparisons are done in UTC: Python compares and subtracts two datetimes that share a
tzinfo by wall clock, which is wrong across a DST change (a 25-hour day would count as 24).

cronsim (healthchecks.io's evaluator) is used rather than croniter: it follows Debian cron's DST rules
(a time skipped by spring-forward fires once right after the gap, a repeated hour fires once), it has
no dependencies, and it is actively maintained; croniter's DST handling has a long bug history.
"""

from __future__ import annotations

from collections.abc import Iterator
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


# How far before a given moment forward iteration starts: the first window is enough for a schedule
# that fires at least hourly; rarer ones (daily, monthly, 29 February) widen it.
_WINDOWS = (
    timedelta(hours=1),
    timedelta(days=2),
    timedelta(days=62),
    timedelta(days=800),
    timedelta(days=36600),
)


def _safe_start(moment: datetime, zone: ZoneInfo) -> datetime:
    """``moment`` in ``zone``, moved back out of any repeated (ambiguous) wall-clock period.

    cronsim iterates schedules with a fixed time (``30 2 * * *``) by wall clock, so a start inside a
    repeated hour loses which of the two occurrences it was in and yields times before it; a start
    whose wall time is unambiguous gives the same fire times as one a year earlier.
    """
    local = moment.astimezone(zone)
    for _ in range(72):
        if local.replace(fold=1 - local.fold).utcoffset() == local.utcoffset():
            return local
        local = (local.astimezone(UTC) - timedelta(hours=1)).astimezone(zone)
    return local


def _forward(expr: str, zone: ZoneInfo, start: datetime) -> Iterator[datetime]:
    """The fire times after ``start`` by forward iteration, in ``zone``, strictly increasing."""
    last: datetime | None = None
    try:
        for fire in CronSim(expr, _safe_start(start, zone)):
            if last is None or fire.astimezone(UTC) > last.astimezone(UTC):
                last = fire
                yield fire
    except StopIteration:  # no fire time within cronsim's 50-year horizon
        return


def next_run(expr: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (aware), in ``zone``.

    Found by forward iteration from a moment safely before ``after``, the one definition of the
    schedule's fire times (see ``previous_run``).
    """
    limit = after.astimezone(UTC)
    for fire in _forward(expr, zone, after - _WINDOWS[0]):
        if fire.astimezone(UTC) > limit:
            return fire
    raise ConfigError(f"cron expression {expr!r} never fires after {after.isoformat()}")


def previous_run(expr: str, zone: ZoneInfo, at: datetime) -> datetime:
    """The last fire time at or before ``at`` (aware), in ``zone``.

    Forward iteration only, from a moment safely before ``at`` (widened until a fire time is found):
    iterating backwards disagrees with forward iteration in a repeated DST hour, so ``previous_run``
    and ``next_run`` would name different fire times there (a missed run taken for not due).
    """
    limit = at.astimezone(UTC)
    for window in _WINDOWS:
        found: datetime | None = None
        for fire in _forward(expr, zone, at - window):
            if fire.astimezone(UTC) > limit:
                break
            found = fire
        if found is not None:
            return found
    raise ConfigError(f"cron expression {expr!r} never fired before {at.isoformat()}")


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
