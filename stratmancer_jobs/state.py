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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratmancer_jobs.atomicio import atomic_write_json, make_dirs
from stratmancer_jobs.clock import file_stamp, iso, parse_iso
from stratmancer_jobs.errors import StateError, StorageError
from stratmancer_jobs.layout import lock_beside
from stratmancer_jobs.procs import process_start_ticks

if TYPE_CHECKING:  # imported where used: `status` reads state without locking or hooks
    from stratmancer_jobs.hookspec import PendingChange

SCHEMA_VERSION = 1
MAX_ERROR_CHARS = 500
MAX_SUMMARY_CHARS = 500
MAX_HOST_CHARS = 255  # a host name (HOST_NAME_MAX is 64 on Linux; FQDNs up to 253)
RECENT_RUNS = 20
STATE_LOCK_TIMEOUT_S = 60.0
FILE_MODE = 0o644
MAX_CLOCK_SKEW_S = 300  # a recorded time later than now by more than this: the clock was ahead

Document = dict[str, Any]  # the state file as validated JSON; only this module sees it

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
    "last_warning",
)


# --- the typed state: what every other module reads (attributes, never string keys) -------------


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
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The FIELDS in their order (``status --json``)."""
        return {name: getattr(self, name) for name in FIELDS}


@dataclass(frozen=True)
class State:
    """The whole state file: a record per job id, and where a bad old file went (``recovered_from``)."""

    jobs: Mapping[str, JobRecord] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    recovered_from: Mapping[str, str] | None = None
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


@dataclass(frozen=True)
class Committed:
    """What ``StateStore.update`` wrote, and the notice when a bad file had to be moved aside first."""

    state: State
    notice: str | None


def in_the_future(moment: datetime | None, now: datetime) -> bool:
    """True when ``moment`` is later than ``now`` by more than MAX_CLOCK_SKEW_S: it was recorded while
    the clock was ahead, and must not count as a recent success (health, ``--if-due``)."""
    return moment is not None and (moment - now).total_seconds() > MAX_CLOCK_SKEW_S


def bounded(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    value["host"] = _host(value.get("host"))
    return value


def _host(value: object) -> str | None:
    """A recorded host name; anything else is dropped rather than failing the whole state file."""
    return _text(value, MAX_HOST_CHARS) if isinstance(value, str) and value else None


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
        if "host" in run:
            run["host"] = _host(run["host"])
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
    "last_warning": lambda v: _text(v, MAX_SUMMARY_CHARS),
    # any value is kept: PendingChange.from_json reads garbage as "rerun every hook", never as "none"
    "pending_change": lambda v: v,
    "last_duration_s": lambda v: None if v is None else _number(v),
    "running": _running,
    "runs": _runs,
    "last_metrics": _metrics,
}
_DEFAULTS: dict[str, object] = {**dict.fromkeys(COUNTERS, 0), "consecutive_failures": 0}


def _show(value: object) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer"
    return bounded(text, 80)


def _validate(data: Any, path: Path) -> Document:
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


def read_state(path: Path) -> Document:
    """The state file as a validated JSON document, without locking (an absent file is an empty one);
    a bad file raises StateError. Code outside this module uses ``load_state`` (typed)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {"schema_version": SCHEMA_VERSION, "jobs": {}}
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


def load_state(path: Path) -> State:
    """The state file as a typed ``State``, without locking; a bad file raises StateError."""
    return decode(read_state(path))


# --- decoding and encoding: the only place a record is read or written by key -------------------

_RECORD_KEYS = frozenset(
    (*FIELDS, "consecutive_failures", "running", "runs", "last_metrics", "pending_change")
)


def _decode_marker(value: Mapping[str, Any] | None) -> RunMarker | None:
    if value is None:
        return None
    extra = {k: v for k, v in value.items() if k not in ("pid", "started", "pid_starttime", "host")}
    return RunMarker(value["pid"], value["started"], value.get("pid_starttime"), value.get("host"), extra)


def _decode_run(value: Mapping[str, Any]) -> RunEntry:
    known = ("started", "status", "duration_s", "summary", "host")
    extra = {k: v for k, v in value.items() if k not in known}
    status, duration_s, summary = value.get("status"), value.get("duration_s"), value.get("summary")
    return RunEntry(value["started"], status, duration_s, summary, value.get("host"), extra)


def _decode_record(value: Mapping[str, Any], job_id: str) -> JobRecord:
    raw_pending = value.get("pending_change")
    pending: PendingChange | None = None
    if raw_pending is not None:  # hookspec only when a change is pending (from_json(None) is None)
        from stratmancer_jobs.hookspec import PendingChange

        pending = PendingChange.from_json(raw_pending, job_id)
    fields: dict[str, Any] = {name: value.get(name, 0 if name in COUNTERS else None) for name in FIELDS}
    return JobRecord(
        **fields,
        consecutive_failures=value.get("consecutive_failures", 0),
        running=_decode_marker(value.get("running")),
        runs=tuple(_decode_run(run) for run in value.get("runs") or ()),
        last_metrics=dict(value.get("last_metrics") or {}),
        pending_change=pending,
        extra={k: v for k, v in value.items() if k not in _RECORD_KEYS},
    )


def decode(document: Document) -> State:
    """A validated document (``read_state``) as a typed State; unknown keys go to ``extra``."""
    known = ("schema_version", "jobs", "recovered_from")
    return State(
        jobs={job_id: _decode_record(record, job_id) for job_id, record in document.get("jobs", {}).items()},
        schema_version=document.get("schema_version", SCHEMA_VERSION),
        recovered_from=document.get("recovered_from"),
        extra={k: v for k, v in document.items() if k not in known},
    )


def _encode_record(record: JobRecord) -> Document:
    out: Document = {**record.extra, **record.fields(), "consecutive_failures": record.consecutive_failures}
    marker = record.running
    out["running"] = None
    if marker is not None:
        out["running"] = {**marker.extra, "pid": marker.pid, "started": marker.started}
        out["running"]["pid_starttime"] = marker.pid_starttime
        if marker.host is not None:
            out["running"]["host"] = marker.host
    out["runs"] = [run.as_json() for run in record.runs]
    out["last_metrics"] = dict(record.last_metrics)
    pending = record.pending_change
    out["pending_change"] = pending.to_json() if pending is not None else None
    return out


def encode(state: State) -> Document:
    """The JSON document for a State (the inverse of ``decode``, unknown keys included)."""
    out: Document = {**state.extra, "schema_version": state.schema_version}
    out["jobs"] = {job_id: _encode_record(record) for job_id, record in state.jobs.items()}
    if state.recovered_from is not None:
        out["recovered_from"] = dict(state.recovered_from)
    return out


@dataclass(frozen=True)
class StateStore:
    """The state file and its lock; ``update`` is the only way to change it."""

    path: Path

    @property
    def lock_path(self) -> Path:
        return lock_beside(self.path)

    def read(self) -> State:
        return load_state(self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            make_dirs(self.path.parent)
        except OSError as exc:
            raise StorageError(f"cannot create state directory {self.path.parent}: {exc.strerror}") from None
        from filelock import FileLock, Timeout  # here, not at the top: `status` never locks

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
        target = self.path.with_name(f"{self.path.name}.corrupt-{file_stamp(now)}-{os.getpid()}")
        try:
            os.replace(self.path, target)
        except OSError as exc:
            raise StorageError(f"{error}; could not move it aside to {target}: {exc.strerror}") from None
        state = State(recovered_from={"path": str(target), "reason": str(error), "at": iso(now)})
        notice = f"{error}; preserved it as {target} and started a new state (counts restart at zero)"
        return state, notice

    def update(self, job_id: str, change: Callable[[JobRecord], JobRecord], now: datetime) -> Committed:
        """Replace the job's record by ``change(record)`` under the lock and write atomically.

        Returns the state written (for the metrics file) and a notice when a bad state file had to
        be moved aside (the caller logs it).
        """
        notice: str | None = None
        with self._locked():
            try:
                state = load_state(self.path)
            except StateError as exc:
                if self.path.is_dir():
                    raise
                state, notice = self._quarantine(exc, now)
            state = replace(state, jobs={**state.jobs, job_id: change(state.job(job_id))})
            document = encodable(encode(state))
            atomic_write_json(self.path, document)
        return Committed(decode(document), notice)


# --- record transitions (pure: each returns a new record) ------------------------------------


def mark_started(record: JobRecord, *, pid: int, started: datetime, host: str | None = None) -> JobRecord:
    """Note that a run holds the job's lock now (status shows it as running while the pid lives and
    still has the start time recorded here, so that a reused pid is not taken for the run)."""
    return replace(record, running=RunMarker(pid, iso(started), process_start_ticks(pid), host))


def _bumped(count: int) -> int:
    """One more, saturating at MAX_COUNT (the most a valid state file may hold)."""
    return min(count + 1, MAX_COUNT)


def _pushed(record: JobRecord, entry: RunEntry) -> tuple[RunEntry, ...]:
    return (*record.runs, entry)[-RECENT_RUNS:]


def mark_finished(
    record: JobRecord,
    *,
    ok: bool,
    started: datetime,
    finished: datetime,
    duration_s: float,
    summary: str | None,
    error: str | None,
    metrics: Mapping[str, float | str] | None = None,
    warning: str | None = None,
    host: str | None = None,
) -> JobRecord:
    """Record a completed run (success or error) and clear the running marker.

    ``warning`` is the successful run's warning (kept until the next successful run); an error keeps
    the last warning, as the output it was about is still the one on disk.
    """
    last_summary = bounded(summary, MAX_SUMMARY_CHARS) if summary else None
    if ok:
        record = replace(record, last_warning=bounded(warning, MAX_SUMMARY_CHARS) if warning else None)
    record = replace(
        record,
        running=None,
        last_started=iso(started),
        last_finished=iso(finished),
        last_duration_s=round(duration_s, 3),
        last_summary=last_summary,
    )
    if ok:
        record = replace(
            record,
            success_count=_bumped(record.success_count),
            last_status="success",
            last_success=iso(finished),
            consecutive_failures=0,
        )
    else:
        record = replace(
            record,
            error_count=_bumped(record.error_count),
            last_status="error",
            last_error=iso(finished),
            last_error_message=bounded(error or "unknown error", MAX_ERROR_CHARS),
            consecutive_failures=_bumped(record.consecutive_failures),
        )
    if metrics is not None:
        record = replace(record, last_metrics=dict(metrics))
    entry = RunEntry(
        started=iso(started),
        status="success" if ok else "error",
        duration_s=round(duration_s, 3),
        summary=record.last_summary if ok else record.last_error_message,
        host=host,
    )
    return replace(record, runs=_pushed(record, entry))


def mark_failed_unrun(record: JobRecord, *, at: datetime, error: str) -> JobRecord:
    """Record a run that failed before it could start (its lock could not be opened); the running
    marker is kept: without the lock nothing is known about another run."""
    failed = mark_finished(
        record, ok=False, started=at, finished=at, duration_s=0.0, summary=None, error=error
    )
    return replace(failed, running=record.running)


def mark_skipped(record: JobRecord, *, at: datetime, reason: str, host: str | None = None) -> JobRecord:
    """Record a run that did not start because another one held the job's lock."""
    entry = RunEntry(started=iso(at), status="skipped", duration_s=0.0, summary=reason, host=host)
    skipped = _bumped(record.skipped_count)
    return replace(record, skipped_count=skipped, last_status="skipped", runs=_pushed(record, entry))


def last_completed_status(record: JobRecord) -> str | None:
    """'success' or 'error' for the newest run that actually ran (skips do not count)."""
    for run in reversed(record.runs):
        if run.status in ("success", "error"):
            return run.status
    return record.last_status if record.last_status in ("success", "error") else None
