"""Each job's health, computed from its schedule and its state record at a given ``now``.

* ``running``  -- a live process holds the job (its pid is alive with the recorded start time); a warning
  past the max run time, critical past twice that or with no success for over twice the interval
* ``failing``  -- the last completed run failed (with the count of consecutive failures)
* ``late``     -- no success since the last scheduled time plus the job's grace
* ``never run``-- no completed run recorded
* ``warning``  -- the last run succeeded with a warning (e.g. the app cannot serve the active model)
* ``ok``       -- otherwise

``status --check`` maps these to monitoring codes: 0 ok, 1 warning (late, never run, running past its
limit, a run's warning), 2 critical (failing, late by more than twice the schedule's interval, or
running but stuck).
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
from stratmancer_jobs.state import JobRecord, RunMarker, in_the_future, last_completed_status

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
) -> Health:
    """Pure apart from ``alive`` (given the running marker; injected in tests): the job's health at ``now``.

    A running marker whose process is gone (or whose pid now belongs to another process) means the
    last run was killed (SIGKILL, OOM, reboot) before it could record anything: the health says so
    and is at least a warning.
    """
    now = now.astimezone(UTC)  # compare and subtract in UTC, never by wall clock
    running = record.running
    if running is not None and not alive(running):
        base = _health(record, schedule, zone, now, running=None)
        note = f"the run started {running.started} (pid {running.pid}) was killed"
        return Health(base.state, max(base.level, WARNING), f"{base.detail}; {note}", f"{base.cell} (killed)")
    return _health(record, schedule, zone, now, running=running)


def _lateness(
    last_success: datetime | None, schedule: JobSchedule, zone: ZoneInfo, now: datetime
) -> tuple[float, datetime] | None:
    """Seconds late and the first missed fire time; None when the last success is recent enough."""
    due = previous_run(schedule.schedule, zone, now - timedelta(seconds=schedule.grace_s)).astimezone(UTC)
    if last_success is not None and last_success >= due:
        return None
    # the first scheduled run after the last success (plus grace) is when it became late
    first_missed = next_run(schedule.schedule, zone, last_success) if last_success else due
    since = first_missed.astimezone(UTC) + timedelta(seconds=schedule.grace_s)
    return (now - since).total_seconds(), first_missed


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
    if late is not None and late[0] > 2 * period:
        stuck.append(f"late by {_age(late[0])}, more than twice the {_age(period)} interval")
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
    record: JobRecord, schedule: JobSchedule, zone: ZoneInfo, now: datetime, running: RunMarker | None
) -> Health:
    last_success = parse_iso(record.last_success)
    skew = ""
    if in_the_future(last_success, now):
        skew = f"clock skew: last success {record.last_success} is in the future"
        last_success = None  # recorded while the clock was ahead: not a recent success
    if running is not None:
        health = _running(schedule, zone, now, running, last_success)
    elif record.last_finished is None:
        health = Health("never run", WARNING, "no run recorded yet")
    elif last_completed_status(record) == "error":
        n = record.consecutive_failures or 1
        health = Health(
            "failing", CRITICAL, f"{n} consecutive failure{'s' if n != 1 else ''}", f"failing x{n}"
        )
    else:
        late = _lateness(last_success, schedule, zone, now)
        if late is None and record.last_warning:
            health = Health("warning", WARNING, record.last_warning, "warning")
        elif late is None:
            health = Health("ok", OK, "ok")
        else:
            lateness, first_missed = late
            level = CRITICAL if lateness > 2 * interval_s(schedule.schedule, zone, now) else WARNING
            due_text = f"{first_missed.astimezone(zone):%Y-%m-%d %H:%M %Z}"
            health = Health(
                "late",
                level,
                f"late by {_age(lateness)} (no success since the run due {due_text})",
                f"late {_age(lateness)}",
            )
    if not skew:
        return health
    return Health(
        health.state, max(health.level, WARNING), f"{skew}; {health.detail}", f"{health.cell} (clock skew)"
    )
