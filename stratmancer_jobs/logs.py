"""Diagnostics on stderr: human-readable lines by default, one JSON object per line for log shippers.

Every line passes through a redacting filter, so a secret (``RIOT_API_KEY`` and the like) can never
reach the log even if some message or traceback contains it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TextIO

LOGGER_NAME = "stratmancer_jobs"
SECRET_NAME_RE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
MIN_SECRET_LEN = 6
REDACTED = "[REDACTED]"


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
    """``2026-11-28T12:00:00+00:00 INFO  refresh_model_registry: message``."""

    def format(self, record: logging.LogRecord) -> str:
        job = _job(record)
        prefix = f"{_now_iso(record)} {record.levelname:<7} "
        line = prefix + (f"{job}: " if job else "") + record.getMessage()
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


def setup_logging(
    *, verbose: bool, quiet: bool, fmt: str, secrets: tuple[str, ...], stream: TextIO | None = None
) -> logging.Logger:
    """Configure the tool's logger once per process (replacing earlier handlers, e.g. between tests)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    handler.addFilter(_RedactFilter(secrets))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    return logger
