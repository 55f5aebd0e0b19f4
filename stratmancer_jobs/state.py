"""The job state file: one JSON document, read-modify-written only under a sibling FileLock.

Writes go through atomicio, so readers (``status``) never need the lock. A corrupt, unreadable or
unknown-schema file is never overwritten silently: it is moved aside under a new name, the problem is
reported naming both paths, and counting starts again from an empty state that says where the old
one went (``recovered_from``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from stratmancer_jobs.atomicio import atomic_write_json, make_dirs
from stratmancer_jobs.errors import StateError, StorageError
from stratmancer_jobs.layout import lock_beside
from stratmancer_jobs.procs import process_start_ticks

SCHEMA_VERSION = 1
MAX_ERROR_CHARS = 500
MAX_SUMMARY_CHARS = 500
RECENT_RUNS = 20
STATE_LOCK_TIMEOUT_S = 60.0
FILE_MODE = 0o644
MIN_YEAR, MAX_YEAR = 1970, 9000
MAX_CLOCK_SKEW_S = 300  # a recorded time later than now by more than this: the clock was ahead

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
        if moment.utcoffset() is None:
            return None
        in_utc = moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: e.g. 9999-12-31T23:00-12:00 is past year 9999
        return None
    # far outside any real run, and too close to datetime's limits for schedule arithmetic
    return moment if MIN_YEAR <= in_utc.year <= MAX_YEAR else None


def in_the_future(moment: datetime | None, now: datetime) -> bool:
    """True when ``moment`` is later than ``now`` by more than MAX_CLOCK_SKEW_S: it was recorded while
    the clock was ahead, and must not count as a recent success (health, ``--if-due``)."""
    return moment is not None and (moment - now).total_seconds() > MAX_CLOCK_SKEW_S


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


class _Invalid(Exception):
    """One field of a record has the wrong type or range (internal to validation)."""


MAX_COUNT = 2**53  # counters stay exact as floats (Prometheus) and as JSON numbers everywhere
MAX_PID = 2**31 - 1
MAX_NESTING = 32  # a valid state is 4 levels deep; deeper is damage (and recursion must stay bounded)
STATUSES = ("success", "error", "skipped")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    # 0xDC80..0xDCFF is how Python spells an undecodable byte of a path (surrogateescape): show the byte
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"


def encodable(value: Any, _depth: int = 0) -> Any:
    """``value`` with every string (keys too) made UTF-8 encodable: a path byte that is not UTF-8
    (``/srv/caf\\xe9``) becomes the text ``\\xe9``, any other lone surrogate U+FFFD.

    Raises ValueError for containers nested deeper than MAX_NESTING (no valid state comes close).
    """
    if _depth > MAX_NESTING:
        raise ValueError(f"nested more than {MAX_NESTING} levels deep")
    if isinstance(value, str):
        return _SURROGATE.sub(_escape_surrogate, value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {encodable(k): encodable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [encodable(item, _depth + 1) for item in value]
    return value


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise _Invalid(f"is not a count: {_show(value)}")
    return value


def _number(value: object) -> float | int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, int) and abs(value) > MAX_COUNT)
        or not math.isfinite(value)
        or value < 0
    ):
        raise _Invalid(f"is not a duration in seconds: {_show(value)}")
    return value


def _text(value: object, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"is not a string: {_show(value)}")
    return bounded(value, limit)


def _timestamp(value: object, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or parse_iso(value) is None:
        raise _Invalid(f"is not a timestamp with a UTC offset: {_show(value)}")
    return value


def _status(value: object) -> str | None:
    if value is not None and value not in STATUSES:
        raise _Invalid(f"is not one of {', '.join(STATUSES)}: {_show(value)}")
    return value


def _running(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Invalid(f"is not a running marker object: {_show(value)}")
    pid = value.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= MAX_PID:
        raise _Invalid(f"has no valid pid: {_show(value)}")
    _timestamp(value.get("started"), optional=False)
    if "pid_starttime" in value and value["pid_starttime"] is not None:
        _count(value["pid_starttime"])
    return value


def _metrics(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(f"is not an object: {_show(value)}")
    for key, item in value.items():
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, str):
            continue
        if (
            not isinstance(item, int | float)
            or (isinstance(item, int) and abs(item) > MAX_COUNT)
            or (isinstance(item, float) and not math.isfinite(item))
        ):
            raise _Invalid(f"has a value that is not a finite number or a string at {key!r}: {_show(item)}")
    return value


def _runs(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(f"is not a list: {_show(value)}")
    kept = value[-RECENT_RUNS:]  # a damaged file can hold any number; only the recent ones matter
    for run in kept:
        if not isinstance(run, dict):
            raise _Invalid(f"has a run that is not an object: {_show(run)}")
        _timestamp(run.get("started"), optional=False)
        _status(run.get("status"))
        if run.get("duration_s") is not None:
            _number(run["duration_s"])
        run["summary"] = _text(run.get("summary"), max(MAX_ERROR_CHARS, MAX_SUMMARY_CHARS))
    return kept


_CHECKS: dict[str, Callable[[object], Any]] = {
    **{name: _count for name in (*COUNTERS, "consecutive_failures")},
    "last_status": _status,
    "last_started": _timestamp,
    "last_finished": _timestamp,
    "last_success": _timestamp,
    "last_error": _timestamp,
    "last_error_message": lambda v: _text(v, MAX_ERROR_CHARS),
    "last_summary": lambda v: _text(v, MAX_SUMMARY_CHARS),
    "last_duration_s": lambda v: None if v is None else _number(v),
    "running": _running,
    "runs": _runs,
    "last_metrics": _metrics,
}
_DEFAULTS: dict[str, object] = {**dict.fromkeys(COUNTERS, 0), "consecutive_failures": 0}


def _show(value: object) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer"
    return bounded(text, 80)


def _validate(data: Any, path: Path) -> State:
    """Check every field's type and range (the whole document is rejected on the first bad one); long
    texts are cut and the run history is bounded to the recent runs, in place."""
    if not isinstance(data, dict):
        raise StateError(f"state file {path} is not a JSON object")
    version = data.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise StateError(
            f"state file {path} has schema_version {_show(version)}; this version of stratmancer-jobs "
            f"reads {SCHEMA_VERSION}"
        )
    jobs = data.get("jobs")
    if not isinstance(jobs, dict) or not all(isinstance(v, dict) for v in jobs.values()):
        raise StateError(f"state file {path} has no valid 'jobs' object")
    recovered = data.get("recovered_from")
    if recovered is not None and (
        not isinstance(recovered, dict) or not all(isinstance(v, str) for v in recovered.values())
    ):
        raise StateError(f"state file {path}: recovered_from is not an object of strings: {_show(recovered)}")
    for job_id, record in jobs.items():
        for name, check in _CHECKS.items():
            if name not in record:
                continue
            try:
                record[name] = check(record[name])
            except _Invalid as exc:
                raise StateError(f"state file {path}: jobs.{job_id}.{name} {exc}") from None
        for name, default in _DEFAULTS.items():
            record.setdefault(name, default)
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
    except (ValueError, RecursionError) as exc:  # also: too deep, an integer of over 4300 digits
        reason = "nested too deeply" if isinstance(exc, RecursionError) else bounded(str(exc), 200)
        raise StateError(f"state file {path} is not valid JSON ({reason})") from None
    try:
        data = encodable(data)
    except ValueError as exc:
        raise StateError(f"state file {path} is {exc}") from None
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
        return lock_beside(self.path)

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
            atomic_write_json(self.path, encodable(state))
        return notice


# --- record transitions (pure: they only change the dict they are given) -----------------------


def mark_started(record: JobRecord, *, pid: int, started: datetime) -> None:
    """Note that a run holds the job's lock now (status shows it as running while the pid lives and
    still has the start time recorded here, so that a reused pid is not taken for the run)."""
    record["running"] = {"pid": pid, "started": iso(started), "pid_starttime": process_start_ticks(pid)}


def _bump(record: JobRecord, name: str) -> None:
    """Add one to a counter, saturating at MAX_COUNT (the most a valid state file may hold)."""
    record[name] = min(int(record.get(name) or 0) + 1, MAX_COUNT)


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
        _bump(record, "success_count")
        record["last_status"] = "success"
        record["last_success"] = iso(finished)
        record["consecutive_failures"] = 0
    else:
        _bump(record, "error_count")
        record["last_status"] = "error"
        record["last_error"] = iso(finished)
        record["last_error_message"] = bounded(error or "unknown error", MAX_ERROR_CHARS)
        _bump(record, "consecutive_failures")
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
    _bump(record, "skipped_count")
    record["last_status"] = "skipped"
    _push_run(record, {"started": iso(at), "duration_s": 0.0, "status": "skipped", "summary": reason})


def last_completed_status(record: JobRecord) -> str | None:
    """'success' or 'error' for the newest run that actually ran (skips do not count)."""
    for run in reversed(record.get("runs") or []):
        if isinstance(run, dict) and run.get("status") in ("success", "error"):
            return str(run["status"])
    status = record.get("last_status")
    return str(status) if status in ("success", "error") else None
