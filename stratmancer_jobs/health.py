"""Each job's health, computed from its schedule and its state record at a given ``now``.

* ``running``  -- a live process holds the job (its pid is alive); ``over_limit`` past the max run time
* ``failing``  -- the last completed run failed (with the count of consecutive failures)
* ``late``     -- no success since the last scheduled time plus the job's grace
* ``never run``-- no completed run recorded
* ``ok``       -- otherwise

``status --check`` maps these to monitoring codes: 0 ok, 1 warning (late, never run, running past its
limit), 2 critical (failing, or late by more than twice the schedule's interval).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from stratmancer_jobs.config import JobSchedule
from stratmancer_jobs.procs import pid_alive
from stratmancer_jobs.schedule import interval_s, next_run, previous_run
from stratmancer_jobs.state import last_completed_status, parse_iso

OK, WARNING, CRITICAL = 0, 1, 2


@dataclass(frozen=True)
class Health:
    state: str
    level: int
    detail: str
    short: str = ""  # a compact cell for the status table, e.g. "late 3m", "failing x2"

    @property
    def cell(self) -> str:
        return self.short or self.state


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"


def compute_health(
    record: dict[str, Any],
    schedule: JobSchedule,
    zone: ZoneInfo,
    now: datetime,
    alive: Callable[[object], bool] = pid_alive,
) -> Health:
    """Pure apart from ``alive`` (injected in tests): the job's health at ``now``.

    A running marker whose process is gone means the last run was killed (SIGKILL, OOM, reboot)
    before it could record anything: the health says so and is at least a warning.
    """
    now = now.astimezone(UTC)  # compare and subtract in UTC, never by wall clock
    running = record.get("running")
    if isinstance(running, dict) and not alive(running.get("pid")):
        base = _health(record, schedule, zone, now, running=None)
        note = f"the run started {running.get('started')} (pid {running.get('pid')}) was killed"
        return Health(base.state, max(base.level, WARNING), f"{base.detail}; {note}", f"{base.cell} (killed)")
    return _health(record, schedule, zone, now, running=running)


def _health(
    record: dict[str, Any], schedule: JobSchedule, zone: ZoneInfo, now: datetime, running: object
) -> Health:
    if isinstance(running, dict):
        started = parse_iso(running.get("started"))
        age = (now - started).total_seconds() if started else 0.0
        if schedule.timeout_s and age > schedule.timeout_s:
            return Health(
                "running",
                WARNING,
                f"running for {_age(age)}, past its {schedule.timeout_s}s limit",
                f"running {_age(age)} (over limit)",
            )
        return Health("running", OK, f"running for {_age(age)}", f"running {_age(age)}")
    if record.get("last_finished") is None:
        return Health("never run", WARNING, "no run recorded yet")
    if last_completed_status(record) == "error":
        n = int(record.get("consecutive_failures") or 1)
        return Health("failing", CRITICAL, f"{n} consecutive failure{'s' if n != 1 else ''}", f"failing x{n}")
    last_success = parse_iso(record.get("last_success"))
    due = previous_run(schedule.schedule, zone, now - timedelta(seconds=schedule.grace_s)).astimezone(UTC)
    if last_success is None or last_success < due:
        # the first scheduled run after the last success (plus grace) is when it became late
        first_missed = next_run(schedule.schedule, zone, last_success) if last_success else due
        since = first_missed.astimezone(UTC) + timedelta(seconds=schedule.grace_s)
        lateness = (now - since).total_seconds()
        period = interval_s(schedule.schedule, zone, now)
        level = CRITICAL if lateness > 2 * period else WARNING
        due_text = f"{first_missed.astimezone(zone):%Y-%m-%d %H:%M %Z}"
        return Health(
            "late",
            level,
            f"late by {_age(lateness)} (no success since the run due {due_text})",
            f"late {_age(lateness)}",
        )
    return Health("ok", OK, "ok")
