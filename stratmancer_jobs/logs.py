"""Diagnostics on stderr (or appended to a log file): human-readable lines by default, one JSON object
per line for log shippers. Every line of a job run carries the run's short id, so the lines of runs
of the same minute can be told apart.

Every line passes through a redacting filter, so a secret (``RIOT_API_KEY`` and the like) can never
reach the log even if some message or traceback contains it.

A log file (``--log-file``) is opened, appended to with one ``write`` and closed for every line, so
logrotate may rename (``create``) or truncate (``copytruncate``) it at any time: the next line goes to
the file then at that path, and a line is never split by another process's line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets as _random
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

LOGGER_NAME = "stratmancer_jobs"
SECRET_NAME_RE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
MIN_SECRET_LEN = 6
REDACTED = "[REDACTED]"
LOG_FILE_MODE = 0o640
_RUN_ID: ContextVar[str | None] = ContextVar("stratmancer_run_id", default=None)


def new_run_id() -> str:
    """A short random id for one run (6 hex digits), on each of its log lines."""
    return _random.token_hex(3)


def set_run_id(run_id: str | None) -> None:
    """The id the following log lines carry (None: none, outside a run)."""
    _RUN_ID.set(run_id)


def secret_values(env: Mapping[str, str]) -> tuple[str, ...]:
    """Values of environment variables whose names look secret, longest first."""
    values = {v for k, v in env.items() if SECRET_NAME_RE.search(k) and len(v) >= MIN_SECRET_LEN}
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of every secret in ``text``."""
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class _RedactFilter(logging.Filter):
    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = redact(record.getMessage(), self.secrets)
            record.args = None
            if record.exc_info:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
                record.exc_info = None
        return True


def _now_iso(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).astimezone().isoformat(timespec="seconds")


def _job(record: logging.LogRecord) -> str | None:
    """The job a line belongs to: an explicit ``job`` field, or the runner's per-job child logger."""
    job = getattr(record, "job", None)
    if job is None and record.name.startswith(LOGGER_NAME + "."):
        job = record.name[len(LOGGER_NAME) + 1 :]
    return str(job) if job is not None else None


class HumanFormatter(logging.Formatter):
    """``2026-11-28T12:00:00+00:00 INFO    refresh_model_registry [3fa2c1]: message``."""

    def format(self, record: logging.LogRecord) -> str:
        job = _job(record)
        run = _RUN_ID.get()
        prefix = f"{_now_iso(record)} {record.levelname:<7} "
        where = " ".join(part for part in (job, f"[{run}]" if run else None) if part)
        line = prefix + (f"{where}: " if where else "") + record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, job, event, duration, summary, message."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": _now_iso(record),
            "level": record.levelname.lower(),
            "job": _job(record),
            "run": _RUN_ID.get(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        for key in ("duration", "summary", "status", "next_run", "host"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["traceback"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False, default=str)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged: a progress bar on a terminal redirects
    it while drawing, so log lines print above the bar instead of leaving pieces of it on screen."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class RepeatedWarnings(logging.Filter):
    """On a job's logger: drops a warning its previous run logged too, so an unchanged warning is
    logged once when it appears (and again when it changes), not on every run; status keeps showing
    it. ``seen`` collects this run's warnings (as short hashes) for the next run to compare with."""

    def __init__(self, previous: Iterable[str]) -> None:
        super().__init__()
        self.previous = frozenset(previous)
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        import hashlib

        key = hashlib.sha256(record.getMessage().encode("utf-8", "replace")).hexdigest()[:16]
        self.seen.add(key)
        return key not in self.previous


class AppendPerLine(logging.Handler):
    """Appends each line to ``path``: open (O_APPEND), one write, close. Should the file be unwritable,
    the line goes to stderr with the reason, so it is not lost."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        data = (self.format(record) + "\n").encode("utf-8", "replace")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_FILE_MODE)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:
            sys.stderr.write(f"log file {self.path} not writable ({exc.strerror}): {data.decode()}")


class DropEvents(logging.Filter):
    """Leaves out the records of the given ``event``s with the given ``status`` (e.g. the success
    line on a terminal, where the CLI prints the summary itself)."""

    def __init__(self, event: str, status: str) -> None:
        super().__init__()
        self.event, self.status = event, status

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            getattr(record, "event", None) == self.event and getattr(record, "status", None) == self.status
        )


def setup_logging(
    *,
    verbose: bool,
    quiet: bool,
    fmt: str,
    secrets: tuple[str, ...],
    stream: TextIO | None = None,
    log_file: Path | None = None,
    drop: DropEvents | None = None,
) -> logging.Logger:
    """Configure the tool's logger once per process (replacing earlier handlers, e.g. between tests).

    ``log_file``: append there (one open per line) instead of writing to stderr.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler: logging.Handler
    if log_file is not None:
        handler = AppendPerLine(log_file)
    else:
        handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    handler.addFilter(_RedactFilter(secrets))
    if drop is not None:
        handler.addFilter(drop)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    return logger
