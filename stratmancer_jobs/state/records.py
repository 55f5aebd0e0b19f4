"""The typed state: the records every other module reads (attributes, never string keys), their limits,
and the one empty value that serves every fallback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stratmancer_jobs.clock import parse_iso

if TYPE_CHECKING:  # annotations only: `status` reads state without importing hooks
    from stratmancer_jobs.freshness import Observed
    from stratmancer_jobs.hookspec import PendingChange

SCHEMA_VERSION = 1
MAX_ERROR_CHARS = 500
MAX_SUMMARY_CHARS = 500
MAX_HOST_CHARS = 255  # a host name (HOST_NAME_MAX is 64 on Linux; FQDNs up to 253)
RECENT_RUNS = 20
MAX_COUNT = 2**53  # counters stay exact as floats (Prometheus) and as JSON numbers everywhere
MAX_CLOCK_SKEW_S = 300  # a recorded time later than now by more than this: the clock was ahead
CLOCK_JUMP_S = 60  # a run's wall times disagreeing with its monotonic duration by more: the clock jumped

COUNTERS = ("success_count", "error_count", "skipped_count", "interrupted_count")
FIELDS: tuple[str, ...] = (
    *COUNTERS,
    "last_status",
    "last_started",
    "last_finished",
    "last_success",
    "last_error",
    "last_error_message",
    "last_duration_s",
    "last_summary",
    "last_warning",
)


@dataclass(frozen=True)
class RunMarker:
    """A run holding the job's lock: its pid, when it started, and the process's start time (which
    tells a reused pid apart); ``extra`` keeps keys written by a newer version."""

    pid: int
    started: str
    pid_starttime: int | None = None
    host: str | None = None  # the machine running it: on a shared volume, the pid means nothing elsewhere
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunEntry:
    """One of the recent runs: start time, result (success, error, skipped), duration and summary."""

    started: str
    status: str | None = None
    duration_s: float | None = None
    summary: str | None = None
    host: str | None = None  # the machine that ran it (several nodes may share one state file)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The stored object (keys sorted, as in the file); ``host`` only when known."""
        out = {**self.extra, "started": self.started, "status": self.status, "duration_s": self.duration_s}
        out["summary"] = self.summary
        if self.host is not None:
            out["host"] = self.host
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class JobRecord:
    """One job's record; timestamps are the stored ISO 8601 texts (``parse_iso`` turns them into
    datetimes). ``extra`` keeps keys written by a newer version, so a rewrite never drops them."""

    success_count: int = 0
    error_count: int = 0
    skipped_count: int = 0
    interrupted_count: int = 0  # manual runs stopped by Ctrl-C: counted apart, neither success nor failure
    last_status: str | None = None
    last_started: str | None = None
    last_finished: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_message: str | None = None
    last_duration_s: float | None = None
    last_summary: str | None = None
    # the last successful run's warning (e.g. the app cannot serve the active model); None when clean
    last_warning: str | None = None
    consecutive_failures: int = 0
    running: RunMarker | None = None
    runs: tuple[RunEntry, ...] = ()
    last_metrics: Mapping[str, Any] = field(default_factory=dict)
    # a change of the job's output whose on_change hooks have not all succeeded yet (retried next run)
    pending_change: PendingChange | None = None
    # what the job last saw of its inputs (freshness checks); kept by a run that did not look
    inputs: Observed | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The FIELDS in their order (``status --json``)."""
        return {name: getattr(self, name) for name in FIELDS}


@dataclass(frozen=True)
class State:
    """The whole state file: a record per job id, where a bad old file went (``recovered_from``), and
    when the deployment recorded its first run (``first_run``)."""

    jobs: Mapping[str, JobRecord] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    recovered_from: Mapping[str, str] | None = None
    # when this deployment recorded its first run (a job never run is "new" until its first due time)
    first_run: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def job(self, job_id: str) -> JobRecord:
        """The job's record; an empty one (every field unset, counts zero) for a job never recorded."""
        return self.jobs.get(job_id) or EMPTY_RECORD


EMPTY_RECORD = JobRecord()


def empty_record() -> JobRecord:
    return EMPTY_RECORD


def empty_state() -> State:
    """The state of a fresh deployment, and the one fallback for a state that cannot be read."""
    return State()


def in_the_future(moment: datetime | None, now: datetime) -> bool:
    """True when ``moment`` is later than ``now`` by more than MAX_CLOCK_SKEW_S: it was recorded while
    the clock was ahead, and must not count as a recent success (health, ``--if-due``)."""
    return moment is not None and (moment - now).total_seconds() > MAX_CLOCK_SKEW_S


def counted_success(record: JobRecord, now: datetime) -> datetime | None:
    """The last success that counts at ``now`` (health, ``--if-due``).

    ``last_success`` never moves backwards, so one recorded while the clock was ahead (or read while
    the clock is behind) can lie in the future: it does not count. The last run's finish counts
    instead when that run succeeded and its finish is not in the future too.
    """
    success = parse_iso(record.last_success)
    if not in_the_future(success, now):
        return success
    finished = parse_iso(record.last_finished)
    completed = [run.status for run in record.runs if run.status in ("success", "error")]
    last = completed[-1] if completed else record.last_status
    return finished if last == "success" and not in_the_future(finished, now) else None


def wall_clock_note(record: JobRecord) -> str | None:
    """Why the record's wall times cannot all be right (the clock jumped during or between runs), or
    None: a finish before its start, a wall duration unlike the monotonic one, or a last success
    later than the last finish (kept because it was newer)."""
    started, finished = parse_iso(record.last_started), parse_iso(record.last_finished)
    success = parse_iso(record.last_success)
    notes: list[str] = []
    if started is not None and finished is not None:
        wall = (finished - started).total_seconds()
        took = record.last_duration_s if record.last_duration_s is not None else wall
        if wall < 0:
            notes.append(f"the last run finished {-wall:.0f}s before it started by the wall clock")
        elif abs(wall - took) > CLOCK_JUMP_S:
            notes.append(f"the last run took {took:.0f}s but its wall times are {wall:.0f}s apart")
    if success is not None and finished is not None and success > finished:
        notes.append(f"the last success {record.last_success} is later than the last run's finish (kept)")
    if not notes:
        return None
    return "wall clock jumped: " + "; ".join(notes)


def bounded(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_recorded(state: State) -> str | None:
    """The earliest time any record holds (a run's start, a finish, a success or an error), as stored;
    the deployment's first run for a state written before ``first_run`` existed."""
    from stratmancer_jobs.clock import parse_iso

    found: list[tuple[datetime, str]] = []
    for record in state.jobs.values():
        texts = [record.last_started, record.last_finished, record.last_success, record.last_error]
        for text in (*texts, *(run.started for run in record.runs)):
            moment = parse_iso(text)
            if moment is not None and text is not None:
                found.append((moment, text))
    return min(found)[1] if found else None
