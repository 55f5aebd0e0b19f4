"""Each job's health, computed from its schedule and its state record at a given ``now``.

* ``running``  -- a live process holds the job (its pid is alive with the recorded start time); a warning
  past the max run time, critical past twice that or with no success for over twice the interval
* ``failing``  -- the last completed run failed (with the count of consecutive failures)
* ``late``     -- the deadline passed: the first scheduled time after the last success (the due time)
  plus the job's grace; the lateness is counted from the due time, and a run's warning is kept beside it
* ``new``      -- no completed run yet, and the first scheduled time after the deployment's first
  recorded run, plus grace, has not passed (like Healthchecks' "new": nothing is owed yet)
* ``never run``-- no completed run recorded, and that first due time has passed (or nothing was ever run)
* ``warning``  -- the last run succeeded with a warning (e.g. the app cannot serve the active model)
* ``ok``       -- otherwise

A run stopped by Ctrl-C (``interrupted``) is neither a success nor a failure: the health is what the
last completed run made it, with a note. ``status --check`` maps these to monitoring codes: 0 ok (ok,
new, running), 1 warning (late, never run, running past its limit, a run's warning), 2 critical
(failing, late by more than twice the schedule's interval, or running but stuck).
A last success more than MAX_CLOCK_SKEW_S in the future is reported and does not count as a success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from stratmancer_jobs.clock import parse_iso
from stratmancer_jobs.config import JobSchedule
from stratmancer_jobs.procs import marker_alive
from stratmancer_jobs.schedule import interval_s, next_run, previous_run
from stratmancer_jobs.state import JobRecord, RunMarker, counted_success, in_the_future, last_completed_status

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
    record: JobRecord,
    schedule: JobSchedule,
    zone: ZoneInfo,
    now: datetime,
    alive: Callable[[RunMarker], bool] = marker_alive,
    since: datetime | None = None,
) -> Health:
    """Pure apart from ``alive`` (given the running marker; injected in tests): the job's health at ``now``.

    A running marker whose process is gone (or whose pid now belongs to another process) means the
    last run was killed (SIGKILL, OOM, reboot) before it could record anything: the health says so
    and is at least a warning. ``since`` is the deployment's first recorded run (a job never run is
    ``new`` until its first scheduled time after it, plus grace).
    """
    now = now.astimezone(UTC)  # compare and subtract in UTC, never by wall clock
    running = record.running
    if running is not None and not alive(running):
        base = _health(record, schedule, zone, now, None, since)
        note = f"the run started {running.started} (pid {running.pid}) was killed"
        return Health(base.state, max(base.level, WARNING), f"{base.detail}; {note}", f"{base.cell} (killed)")
    return _health(record, schedule, zone, now, running, since)


def due_time(
    last_success: datetime | None,
    schedule: JobSchedule,
    zone: ZoneInfo,
    now: datetime,
    since: datetime | None = None,
) -> datetime:
    """The scheduled time the job owes its next success for: the first fire time after the last success
    (or, never succeeded, after ``since``: the deployment's first recorded run); with neither, the last
    fire time whose grace has run out by ``now`` (nothing vouches for it). The job is late once this
    plus its grace has passed."""
    base = last_success or since
    if base is not None:
        return next_run(schedule.schedule, zone, base)
    return previous_run(schedule.schedule, zone, now - timedelta(seconds=schedule.grace_s))


def deadline(
    last_success: datetime | None,
    schedule: JobSchedule,
    zone: ZoneInfo,
    now: datetime,
    since: datetime | None = None,
) -> datetime:
    """The moment after which the job is late: ``due_time`` plus the job's grace (``time() > deadline``
    is the alert)."""
    due = due_time(last_success, schedule, zone, now, since)
    return due.astimezone(UTC) + timedelta(seconds=schedule.grace_s)


def _lateness(
    last_success: datetime | None, schedule: JobSchedule, zone: ZoneInfo, now: datetime
) -> tuple[float, datetime] | None:
    """Seconds since the missed due time, and that due time; None while the deadline (due time plus
    grace) has not passed."""
    due = due_time(last_success, schedule, zone, now)
    if now < due.astimezone(UTC) + timedelta(seconds=schedule.grace_s):
        return None
    return (now - due.astimezone(UTC)).total_seconds(), due


def _span(seconds: float) -> str:
    """A grace or a limit, short: 60s -> 1m, 3600s -> 1h, 90s -> 90s."""
    s = int(seconds)
    if s and s % 3600 == 0:
        return f"{s // 3600}h"
    if s and s % 60 == 0:
        return f"{s // 60}m"
    return f"{s}s"


def when(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    """A time as people read it next to ``now``, always with its zone: "13:55 UTC" today, else with
    the date ("2026-11-29 03:00 EET")."""
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return f"{local:%H:%M %Z}"
    return f"{local:%Y-%m-%d %H:%M %Z}"


def _running(
    schedule: JobSchedule,
    zone: ZoneInfo,
    now: datetime,
    running: RunMarker,
    last_success: datetime | None,
) -> Health:
    """A live process holds the job: ok, a warning past its limit, critical when it looks stuck.

    Stuck means past twice its time limit, or no success for more than twice the schedule's interval
    (however long this run has been going): a stopped (SIGSTOP) or hung run would otherwise hide
    the job's lateness for ever while every cron run is skipped.
    """
    started = parse_iso(running.started)
    age = max(0.0, (now - started).total_seconds()) if started else 0.0
    period = interval_s(schedule.schedule, zone, now)
    limit = schedule.timeout_s
    stuck: list[str] = []
    if limit and age > 2 * limit:
        stuck.append(f"more than twice its {limit}s limit")
    # a job that never succeeded counts from this run's start (it was not late before it)
    late = _lateness(last_success or started or now, schedule, zone, now)
    overdue = late[0] - schedule.grace_s if late is not None else 0.0
    if late is not None and overdue > 2 * period:
        stuck.append(f"late by {_age(overdue)}, more than twice the {_age(period)} interval")
    if stuck:
        return Health(
            "running",
            CRITICAL,
            f"running for {_age(age)}: {'; '.join(stuck)} (stopped or hung?)",
            f"running {_age(age)} (stuck)",
        )
    if limit and age > limit:
        return Health(
            "running",
            WARNING,
            f"running for {_age(age)}, past its {limit}s limit",
            f"running {_age(age)} (over limit)",
        )
    return Health("running", OK, f"running for {_age(age)}", f"running {_age(age)}")


def _health(
    record: JobRecord,
    schedule: JobSchedule,
    zone: ZoneInfo,
    now: datetime,
    running: RunMarker | None,
    since: datetime | None = None,
) -> Health:
    last_success = parse_iso(record.last_success)
    skew = ""
    if in_the_future(last_success, now):
        skew = f"clock skew: last success {record.last_success} is in the future"
        last_success = counted_success(record, now)  # not a recent success; the last run may be one
    completed = last_completed_status(record)
    if running is not None:
        health = _running(schedule, zone, now, running, last_success)
    elif completed is None:
        health = _not_run(schedule, zone, now, since)
    elif completed == "error":
        n = record.consecutive_failures or 1
        health = Health(
            "failing", CRITICAL, f"{n} consecutive failure{'s' if n != 1 else ''}", f"failing x{n}"
        )
    else:
        health = _succeeded(record, schedule, zone, now, last_success)
    if record.last_status == "interrupted" and running is None:
        note = f"the last run (started {record.last_started}) was interrupted (Ctrl-C)"
        health = Health(health.state, health.level, f"{health.detail}; {note}", health.short)
    if not skew:
        return health
    return Health(
        health.state, max(health.level, WARNING), f"{skew}; {health.detail}", f"{health.cell} (clock skew)"
    )


def _not_run(schedule: JobSchedule, zone: ZoneInfo, now: datetime, since: datetime | None) -> Health:
    """No completed run: ``new`` (ok) until the first scheduled time after the deployment's first
    recorded run, plus grace, has passed; ``never run`` (a warning) after it, or when nothing at all
    was ever recorded (no reference time: cron may never have run anything)."""
    grace = f"grace {_span(schedule.grace_s)}"
    if since is not None:
        due = due_time(None, schedule, zone, now, since)
        if now < due.astimezone(UTC) + timedelta(seconds=schedule.grace_s):
            return Health("new", OK, f"not run yet; first due {when(due, zone, now)}, {grace}", "new")
        return Health("never run", WARNING, f"no run recorded yet; first due {when(due, zone, now)}, {grace}")
    return Health("never run", WARNING, "no run recorded yet")


def _succeeded(
    record: JobRecord, schedule: JobSchedule, zone: ZoneInfo, now: datetime, last_success: datetime | None
) -> Health:
    """The last completed run succeeded: ok, its warning, late, or late with its warning (both shown)."""
    late = _lateness(last_success, schedule, zone, now)
    warning = record.last_warning
    if late is None and warning:
        return Health("warning", WARNING, warning, "warning")
    if late is None:
        return Health("ok", OK, "ok")
    lateness, due = late
    overdue = lateness - schedule.grace_s  # counted from the deadline, as before, for the escalation
    level = CRITICAL if overdue > 2 * interval_s(schedule.schedule, zone, now) else WARNING
    detail = f"due {when(due, zone, now)}, {_age(lateness)} late, grace {_span(schedule.grace_s)}"
    if warning:
        return Health("late", level, f"{detail}; warning: {warning}", f"late {_age(lateness)} +warning")
    return Health("late", level, detail, f"late {_age(lateness)}")
