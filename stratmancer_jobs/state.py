"""The job state file: one JSON document, read-modify-written only under a sibling FileLock.

Writes go through atomicio, so readers (``status``) never need the lock. A corrupt, unreadable or
unknown-schema file is never overwritten silently: it is moved aside under a new name, the problem is
reported naming both paths, and counting starts again from an empty state that says where the old
one went (``recovered_from``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from stratmancer_jobs.atomicio import atomic_write_json, make_dirs
from stratmancer_jobs.errors import StateError, StorageError

SCHEMA_VERSION = 1
MAX_ERROR_CHARS = 500
MAX_SUMMARY_CHARS = 500
RECENT_RUNS = 20
STATE_LOCK_TIMEOUT_S = 60.0
FILE_MODE = 0o644

JobRecord = dict[str, Any]
State = dict[str, Any]

COUNTERS = ("success_count", "error_count", "skipped_count")
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
)


def iso(moment: datetime) -> str:
    """ISO 8601 with a UTC offset; naive datetimes are refused rather than guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime in state")
    return moment.isoformat(timespec="seconds")


def parse_iso(text: object) -> datetime | None:
    """Parse a stored timestamp; None when absent or malformed (status must keep working)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def bounded(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def empty_record() -> JobRecord:
    record: JobRecord = dict.fromkeys(FIELDS)
    record.update({name: 0 for name in COUNTERS})
    record.update({"consecutive_failures": 0, "running": None, "runs": [], "last_metrics": {}})
    return record


def empty_state() -> State:
    return {"schema_version": SCHEMA_VERSION, "jobs": {}}


def _validate(data: Any, path: Path) -> State:
    if not isinstance(data, dict):
        raise StateError(f"state file {path} is not a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StateError(
            f"state file {path} has schema_version {version!r}; this version of stratmancer-jobs "
            f"reads {SCHEMA_VERSION}"
        )
    jobs = data.get("jobs")
    if not isinstance(jobs, dict) or not all(isinstance(v, dict) for v in jobs.values()):
        raise StateError(f"state file {path} has no valid 'jobs' object")
    for job_id, record in jobs.items():
        for name in COUNTERS:
            value = record.get(name, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise StateError(f"state file {path}: jobs.{job_id}.{name} is not a count: {value!r}")
    return data


def read_state(path: Path) -> State:
    """Read the state without locking; an absent file is an empty state, a bad one raises StateError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return empty_state()
    except IsADirectoryError:
        raise StateError(f"state file {path} is a directory, not a file") from None
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from None
    if not raw.strip():
        raise StateError(f"state file {path} is empty")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateError(f"state file {path} is not valid JSON ({exc})") from None
    return _validate(data, path)


def job_record(state: State, job_id: str) -> JobRecord:
    """The job's record with every field present (never-set fields are None)."""
    record = empty_record()
    stored = state.get("jobs", {}).get(job_id)
    if isinstance(stored, dict):
        record.update(stored)
    return record


@dataclass(frozen=True)
class StateStore:
    """The state file and its lock; ``update`` is the only way to change it."""

    path: Path

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def read(self) -> State:
        return read_state(self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            make_dirs(self.path.parent)
        except OSError as exc:
            raise StorageError(f"cannot create state directory {self.path.parent}: {exc.strerror}") from None
        lock = FileLock(self.lock_path, timeout=STATE_LOCK_TIMEOUT_S, mode=FILE_MODE)
        try:
            with lock:
                yield
        except Timeout:
            raise StorageError(
                f"state lock {self.lock_path} still held after {STATE_LOCK_TIMEOUT_S:.0f} s"
            ) from None
        except PermissionError as exc:
            raise StorageError(f"cannot lock {self.lock_path}: {exc.strerror}") from None

    def _quarantine(self, error: StateError, now: datetime) -> tuple[State, str]:
        stamp = now.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        try:
            os.replace(self.path, target)
        except OSError as exc:
            raise StorageError(f"{error}; could not move it aside to {target}: {exc.strerror}") from None
        state = empty_state()
        state["recovered_from"] = {"path": str(target), "reason": str(error), "at": iso(now)}
        notice = f"{error}; preserved it as {target} and started a new state (counts restart at zero)"
        return state, notice

    def update(self, job_id: str, change: Callable[[JobRecord], None], now: datetime) -> str | None:
        """Apply ``change`` to the job's record under the lock and write atomically.

        Returns a notice when a bad state file had to be moved aside (the caller logs it).
        """
        notice: str | None = None
        with self._locked():
            try:
                state = read_state(self.path)
            except StateError as exc:
                if self.path.is_dir():
                    raise
                state, notice = self._quarantine(exc, now)
            record = job_record(state, job_id)
            change(record)
            state["jobs"][job_id] = record
            atomic_write_json(self.path, state)
        return notice


# --- record transitions (pure: they only change the dict they are given) -----------------------


def mark_started(record: JobRecord, *, pid: int, started: datetime) -> None:
    """Note that a run holds the job's lock now (status shows it as running while the pid lives)."""
    record["running"] = {"pid": pid, "started": iso(started)}


def _push_run(record: JobRecord, entry: dict[str, Any]) -> None:
    runs = [run for run in record.get("runs") or [] if isinstance(run, dict)]
    runs.append(entry)
    record["runs"] = runs[-RECENT_RUNS:]


def mark_finished(
    record: JobRecord,
    *,
    ok: bool,
    started: datetime,
    finished: datetime,
    duration_s: float,
    summary: str | None,
    error: str | None,
    metrics: dict[str, float | str] | None = None,
) -> None:
    """Record a completed run (success or error) and clear the running marker."""
    record["running"] = None
    record["last_started"] = iso(started)
    record["last_finished"] = iso(finished)
    record["last_duration_s"] = round(duration_s, 3)
    record["last_summary"] = bounded(summary, MAX_SUMMARY_CHARS) if summary else None
    if ok:
        record["success_count"] += 1
        record["last_status"] = "success"
        record["last_success"] = iso(finished)
        record["consecutive_failures"] = 0
    else:
        record["error_count"] += 1
        record["last_status"] = "error"
        record["last_error"] = iso(finished)
        record["last_error_message"] = bounded(error or "unknown error", MAX_ERROR_CHARS)
        record["consecutive_failures"] = int(record.get("consecutive_failures") or 0) + 1
    if metrics is not None:
        record["last_metrics"] = dict(metrics)
    _push_run(
        record,
        {
            "started": iso(started),
            "duration_s": round(duration_s, 3),
            "status": "success" if ok else "error",
            "summary": record["last_summary"] if ok else record["last_error_message"],
        },
    )


def mark_skipped(record: JobRecord, *, at: datetime, reason: str) -> None:
    """Record a run that did not start because another one held the job's lock."""
    record["skipped_count"] += 1
    record["last_status"] = "skipped"
    _push_run(record, {"started": iso(at), "duration_s": 0.0, "status": "skipped", "summary": reason})


def last_completed_status(record: JobRecord) -> str | None:
    """'success' or 'error' for the newest run that actually ran (skips do not count)."""
    for run in reversed(record.get("runs") or []):
        if isinstance(run, dict) and run.get("status") in ("success", "error"):
            return str(run["status"])
    status = record.get("last_status")
    return str(status) if status in ("success", "error") else None
