"""The status view: one row per job, built from the config and the state file (no lock needed)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratmancer_jobs.clock import parse_iso
from stratmancer_jobs.config import Settings
from stratmancer_jobs.errors import StateError
from stratmancer_jobs.health import CRITICAL, OK, WARNING, Health, compute_health, deadline
from stratmancer_jobs.jobtable import JOBS, JobSpec
from stratmancer_jobs.procs import marker_alive
from stratmancer_jobs.schedule import describe, next_run
from stratmancer_jobs.state import (
    JobRecord,
    RunMarker,
    State,
    StateStore,
    empty_state,
    encodable,
    first_recorded,
    in_the_future,
    load_state,
)

if TYPE_CHECKING:  # the jobs package (and its logging) is imported only when a progress file is read
    from stratmancer_jobs.hookspec import HookSpec
    from stratmancer_jobs.jobs import Progress


JSON_SCHEMA_VERSION = 2  # `status --json`: 2 added schema_version, deadline, grace/timeout, pending_change
LEVEL_NAMES = {OK: "ok", WARNING: "warning", CRITICAL: "critical"}


@dataclass(frozen=True)
class JobStatus:
    spec: JobSpec
    schedule: str
    next_run: datetime
    record: JobRecord
    health: Health
    progress: Progress | None = None  # a live run's last published progress
    hooks: tuple[HookSpec, ...] = ()  # the job's configured on_change hooks
    deadline: datetime | None = None  # after this the job is late (due time plus grace)
    grace_s: int = 0
    timeout_s: int = 0

    @property
    def hooks_owed(self) -> list[str]:
        """The hooks (described, never a header value) that still owe the pending change a success."""
        pending = self.record.pending_change
        if pending is None:
            return []
        from stratmancer_jobs.hookspec import describe as describe_hook  # only when a change is owed

        return [describe_hook(h) for h in self.hooks if h.key not in pending.succeeded]

    @property
    def schedule_text(self) -> str:
        """The schedule in English ("At 03:00"): for `status JOB` and --json only, so computed on demand
        (cronsim.explain costs start-up time the table does not need)."""
        return describe(self.schedule)

    def as_json(self) -> dict[str, Any]:
        """The ``status --json`` object; fields never set are null."""
        out: dict[str, Any] = {
            "id": self.spec.id,
            "name": self.spec.name,
            "command": self.spec.command,
            "schedule": self.schedule,
            "schedule_text": self.schedule_text,
            "next_run": self.next_run.isoformat(),
        }
        out["grace_seconds"] = self.grace_s
        out["timeout_seconds"] = self.timeout_s
        out["deadline"] = self.deadline.isoformat() if self.deadline else None
        out.update(self.record.fields())
        out["health"] = self.health.state
        out["health_level"] = LEVEL_NAMES[self.health.level]
        out["health_detail"] = self.health.detail  # the reason: "due 13:55 UTC, 3m late, grace 1m"
        out["consecutive_failures"] = self.record.consecutive_failures
        running = self.record.running if self.health.state == "running" else None
        # the marker's pid_starttime is internal (it tells a reused pid apart); the output is unchanged
        out["running"] = (
            {"pid": running.pid, "started": running.started, "host": running.host} if running else None
        )
        p = self.progress
        out["progress"] = (
            {"files_done": p.files_done, "files_total": p.files_total}
            | {"bytes_done": p.bytes_done, "bytes_total": p.bytes_total}
            if p is not None
            else None
        )
        out["pending_change"] = self.pending_json()
        out["recent_runs"] = [run.as_json() for run in self.record.runs]
        return out

    def pending_json(self) -> dict[str, Any] | None:
        """The change whose hooks are still owed (None: nothing owed): since when, attempts, the last
        error, the changed paths and the hooks that have not succeeded for it yet."""
        p = self.record.pending_change
        if p is None:
            return None
        return {
            "since": p.first_seen,
            "attempts": p.attempts,
            "last_error": p.last_error,
            "paths": list(p.paths),
            "hooks_owed": self.hooks_owed,
        }


@dataclass(frozen=True)
class StatusReport:
    jobs: list[JobStatus]
    state_error: str | None
    first_run: str | None = None  # the deployment's first recorded run

    @property
    def level(self) -> int:
        """Worst health level; an unreadable state file is critical (nothing can be trusted)."""
        worst = max((job.health.level for job in self.jobs), default=OK)
        return CRITICAL if self.state_error else worst

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": JSON_SCHEMA_VERSION, "total_jobs": len(self.jobs)}
        out["jobs"] = [job.as_json() for job in self.jobs]
        out["state_error"] = self.state_error
        out["first_run"] = self.first_run
        return out

    def check_line(self) -> str:
        """One line for a monitoring check, Nagios style."""
        word = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}[self.level]
        parts = [
            f"{job.spec.id}={job.health.state}" + (f" ({job.health.detail})" if job.health.level else "")
            for job in self.jobs
        ]
        if self.state_error:
            parts.insert(0, f"state unreadable: {self.state_error}")
        return f"STRATMANCER JOBS {word} - " + "; ".join(parts)


def build_report(
    settings: Settings,
    now: datetime,
    specs: tuple[JobSpec, ...] = JOBS,
    alive: Callable[[RunMarker], bool] = marker_alive,
    state: State | None = None,
) -> StatusReport:
    """Read the state once (unless given: the one a run just committed) and compute every job's row at
    ``now``."""
    lock_problem = StateStore(settings.layout.state_file).lock_problem()  # no run could record itself
    state_error = None if lock_problem is None else encodable(lock_problem)
    if state is None:
        try:
            state = load_state(settings.layout.state_file)
        except StateError as exc:
            state_error = encodable(str(exc))  # the path may hold bytes that are not UTF-8
            state = empty_state()
    first_run = state.first_run or first_recorded(state)
    since = parse_iso(first_run)
    zone = settings.timezone
    rows = []
    for spec in specs:
        schedule = settings.job(spec)
        record = state.job(spec.id)
        last_success = parse_iso(record.last_success)
        rows.append(
            JobStatus(
                spec=spec,
                schedule=schedule.schedule,
                next_run=next_run(schedule.schedule, zone, now),
                record=record,
                health=(health := compute_health(record, schedule, zone, now, alive, since)),
                progress=read_progress(settings, spec) if health.state == "running" else None,
                hooks=settings.job_hooks(spec),
                deadline=deadline(
                    None if in_the_future(last_success, now) else last_success, schedule, zone, now, since
                ),
                grace_s=schedule.grace_s,
                timeout_s=schedule.timeout_s,
            )
        )
    return StatusReport(rows, state_error, first_run)


MAX_PROGRESS_BYTES = 64 * 1024  # the runner writes ~120 bytes; anything larger is not its file
MAX_PROGRESS_BRACKETS = 4  # the runner's document is one flat object: no deep nesting to parse


def _read_small_file(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else None.

    Opened without following a symlink and without blocking (a FIFO there would hang ``status``); a
    device, a FIFO, a directory or a huge (even sparse) file is refused before anything is read.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        data = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def read_progress(settings: Settings, spec: JobSpec) -> Progress | None:
    """The running job's progress file, read without a lock (it is replaced atomically); None
    ("progress unknown") if absent or not what the runner writes: a link, a special or large file,
    nested or malformed JSON."""
    from stratmancer_jobs.jobs import Progress

    raw = _read_small_file(settings.layout.job_progress(spec.id), MAX_PROGRESS_BYTES)
    if raw is None or raw.count(b"{") + raw.count(b"[") > MAX_PROGRESS_BRACKETS:
        return None
    try:
        data = json.loads(raw)
        values = [data[k] for k in ("files_done", "files_total", "bytes_done", "bytes_total")]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if not all(type(v) is int and v >= 0 for v in values):
        return None
    return Progress(*values)
