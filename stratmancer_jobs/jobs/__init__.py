"""The contract between the runner and the jobs.

Every job is a folder under ``jobs/`` with the same shape: pure modules (no I/O, tested without mocks)
and one I/O edge, ``job.py``, exposing ``run(ctx: JobContext) -> JobResult``. The runner imports it
lazily (``load_job``) so that ``status`` and ``crontab`` never import what only one job needs, and it
does the timing, locking and bookkeeping; a job never does. Jobs import only core modules and this
module, never each other.

One way to fail:

* success: return ``JobResult(summary, metrics)``;
* failure: raise. ``errors.StratmancerError`` subclasses carry their exit code and message (one clear
  line); anything else is recorded as an unexpected error with its traceback in the log;
* partial success (a bad tier file while the other tiers were updated; the patch fallback written but
  Data Dragon failed): raise ``errors.PartialFailure(message, summary=..., metrics=...)``.
  The run is recorded as failed (exit 1) with the summary and metrics of what was done beside the
  error; the change hooks still run for an output it committed.

One way to change an output (write-ahead): right before a job commits (renames into place) an output
whose change the app must hear of, it calls ``ctx.before_commit(Change(...))``. The runner stores the
change as owed to the job's on_change hooks first, so that a kill, SIGTERM or timeout at any later
moment leaves it owed to the next run; when it cannot be stored (state disk full) the call raises
``StorageError`` and the job must not commit (the old output stays). The hooks run after the job.

Progress: a job that can tell how far it is calls ``ctx.progress(Progress(...))`` when it is not None
(refresh-history: at the start and after each file read). Jobs never draw anything themselves.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stratmancer_jobs.jobtable import JobSpec

if TYPE_CHECKING:
    from stratmancer_jobs.config import Settings
    from stratmancer_jobs.freshness import Observed


@dataclass(frozen=True)
class Progress:
    """How far a running job is, for a progress bar or ``status --watch``: files and bytes done of total."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


ProgressSink = Callable[[Progress], None]


@dataclass(frozen=True)
class Change:
    """The job is about to change its output: which files, and for the patch job the
    ``patch``/``previous_patch`` fields (the runner hands them to the change hooks)."""

    paths: tuple[str, ...]
    fields: Mapping[str, str] = field(default_factory=dict)


BeforeCommit = Callable[[Change], None]


def nothing_to_record(change: Change) -> None:
    """A job called directly (tests, scripts): nobody owes hooks, nothing to record."""


@dataclass(frozen=True)
class JobContext:
    """What the runner hands a job: resolved settings, the clock, a logger and the command's options."""

    settings: Settings
    now: datetime
    log: logging.Logger
    options: Mapping[str, Any] = field(default_factory=dict)
    # called as the job advances (refresh-history: after each file read); None when nobody watches
    progress: ProgressSink | None = None
    # write-ahead: called right before the job commits a changed output (see the module docstring)
    before_commit: BeforeCommit = nothing_to_record


@dataclass(frozen=True)
class JobResult:
    """A successful job's outcome: a one-line summary and job-specific gauges (failures raise).

    ``warning`` (one line) makes a successful run a warning in ``status`` (e.g. the app cannot serve
    the registry's active model).
    """

    summary: str
    metrics: Mapping[str, float | str] = field(default_factory=dict)
    warning: str | None = None
    inputs: Observed | None = None  # what the job saw of its inputs (freshness); None: not looked at


JobFunc = Callable[[JobContext], JobResult]


def load_job(spec: JobSpec) -> JobFunc:
    """Import the job's module on demand and return its ``run`` function (``module:func`` also works)."""
    module_name, _, attr = spec.module.partition(":")
    module = importlib.import_module(module_name)
    func: JobFunc = getattr(module, attr or "run")
    return func
