"""The state file's JSON document: validation (every field's type and range, by hand), reading, and
decoding to / encoding from the typed records: the only place a record is read or written by key."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratmancer_jobs.clock import parse_iso
from stratmancer_jobs.errors import StateError
from stratmancer_jobs.state.records import (
    COUNTERS,
    FIELDS,
    MAX_COUNT,
    MAX_ERROR_CHARS,
    MAX_HOST_CHARS,
    MAX_SUMMARY_CHARS,
    RECENT_RUNS,
    SCHEMA_VERSION,
    JobRecord,
    RunEntry,
    RunMarker,
    State,
    bounded,
)

if TYPE_CHECKING:  # imported where used: `status` reads state without locking or hooks
    from stratmancer_jobs.freshness import Observed
    from stratmancer_jobs.hookspec import PendingChange

Document = dict[str, Any]  # the state file as validated JSON; only the state package sees it


class _Invalid(Exception):
    """One field of a record has the wrong type or range (internal to validation)."""


MAX_PID = 2**31 - 1
MAX_NESTING = 32  # a valid state is 4 levels deep; deeper is damage (and recursion must stay bounded)
STATUSES = ("success", "error", "skipped", "interrupted")
# any other text (a key written by a newer version, a pending change's paths, a metric's string):
# cut on load, so that a planted or damaged file cannot make every rewrite and `status --json` huge
MAX_TEXT_CHARS = 4096
MAX_STATE_BYTES = 64 * 1024 * 1024  # a real state file is a few KB (3 jobs x 20 runs of cut texts)
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


def _cut_texts(value: Any, _depth: int = 0) -> Any:
    """``value`` with every string, keys too, cut to MAX_TEXT_CHARS (``encodable`` bounds the depth)."""
    if isinstance(value, str):
        return bounded(value, MAX_TEXT_CHARS) if len(value) > MAX_TEXT_CHARS else value
    if isinstance(value, dict):
        return {_cut_texts(k): _cut_texts(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_texts(item, _depth + 1) for item in value]
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
    # any value is kept: Observed.from_json leaves out what it cannot read
    "inputs": lambda v: v,
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
    try:
        _timestamp(data.get("first_run"))
    except _Invalid as exc:
        raise StateError(f"state file {path}: first_run {exc}") from None
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


def _read_regular(path: Path) -> bytes:
    """The file's bytes when it is a regular file of at most MAX_STATE_BYTES, opened without blocking:
    a FIFO planted there must not hang every command, nor a link to /dev/zero fill the memory."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or socket)", str(path))
        raw = handle.read(MAX_STATE_BYTES + 1)
    if len(raw) > MAX_STATE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_STATE_BYTES // (1024 * 1024)} MiB", str(path))
    return raw


def read_state(path: Path) -> Document:
    """The state file as a validated JSON document, without locking (an absent file is an empty one);
    a bad file raises StateError. Code outside the state package uses ``load_state`` (typed)."""
    try:
        raw = _read_regular(path)
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
        data = _cut_texts(encodable(data))
    except ValueError as exc:
        raise StateError(f"state file {path} is {exc}") from None
    return _validate(data, path)


def load_state(path: Path) -> State:
    """The state file as a typed ``State``, without locking; a bad file raises StateError."""
    return decode(read_state(path))


# --- decoding and encoding: the only place a record is read or written by key -------------------

_RECORD_KEYS = frozenset(
    (*FIELDS, "consecutive_failures", "running", "runs", "last_metrics", "pending_change", "inputs")
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
        inputs=_decode_inputs(value.get("inputs")),
        extra={k: v for k, v in value.items() if k not in _RECORD_KEYS},
    )


def _decode_inputs(value: object) -> Observed | None:
    if value is None:
        return None
    from stratmancer_jobs.freshness import Observed

    return Observed.from_json(value)


def decode(document: Document) -> State:
    """A validated document (``read_state``) as a typed State; unknown keys go to ``extra``."""
    known = ("schema_version", "jobs", "recovered_from", "first_run")
    return State(
        jobs={job_id: _decode_record(record, job_id) for job_id, record in document.get("jobs", {}).items()},
        schema_version=document.get("schema_version", SCHEMA_VERSION),
        recovered_from=document.get("recovered_from"),
        first_run=document.get("first_run"),
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
    if record.inputs is not None:
        out["inputs"] = record.inputs.to_json()
    return out


def encode(state: State) -> Document:
    """The JSON document for a State (the inverse of ``decode``, unknown keys included)."""
    out: Document = {**state.extra, "schema_version": state.schema_version}
    out["jobs"] = {job_id: _encode_record(record) for job_id, record in state.jobs.items()}
    if state.recovered_from is not None:
        out["recovered_from"] = dict(state.recovered_from)
    if state.first_run is not None:
        out["first_run"] = state.first_run
    return out
