"""The job table and the contract between the runner and the jobs.

Each job lives in its own module exposing ``run(ctx: JobContext) -> JobResult``. Modules are imported
lazily (``load_job``) so that ``status`` and ``crontab`` never import what only one job needs.
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


@dataclass(frozen=True)
class JobContext:
    """What the runner hands a job: resolved settings, the clock, a logger and the command's options."""

    settings: Settings
    now: datetime
    log: logging.Logger
    options: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = False


@dataclass(frozen=True)
class JobResult:
    """A job's outcome: a one-line summary, job-specific gauges, and an error when it only half-worked.

    ``error`` is set when the job kept going (e.g. other tiers updated) but the run must still be
    recorded as failed so that monitoring sees it.
    """

    summary: str
    metrics: Mapping[str, float | str] = field(default_factory=dict)
    error: str | None = None


JobFunc = Callable[[JobContext], JobResult]

def load_job(spec: JobSpec) -> JobFunc:
    """Import the job's module on demand and return its ``run`` function (``module:func`` also works)."""
    module_name, _, attr = spec.module.partition(":")
    module = importlib.import_module(module_name)
    func: JobFunc = getattr(module, attr or "run")
    return func
