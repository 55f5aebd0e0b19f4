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

from stratmancer_jobs.errors import ConfigError

if TYPE_CHECKING:
    from stratmancer_jobs.config import Settings


@dataclass(frozen=True)
class JobSpec:
    """Static facts about one job; schedules and limits come from Settings (config may override)."""

    id: str
    name: str
    command: str
    default_schedule: str
    default_grace_s: int
    default_timeout_s: int
    module: str


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

JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        id="refresh_history_index",
        name="Refresh History Index",
        command="refresh-history",
        default_schedule="0 * * * *",
        default_grace_s=300,
        default_timeout_s=1800,
        module="stratmancer_jobs.jobs.history",
    ),
    JobSpec(
        id="refresh_model_registry",
        name="Refresh Model Registry",
        command="refresh-registry",
        default_schedule="*/5 * * * *",
        default_grace_s=60,
        default_timeout_s=240,
        module="stratmancer_jobs.jobs.registry",
    ),
    JobSpec(
        id="refresh_patch_meta",
        name="Refresh Patch Metadata",
        command="refresh-patch",
        default_schedule="0 3 * * *",
        default_grace_s=3600,
        default_timeout_s=600,
        module="stratmancer_jobs.jobs.patch",
    ),
)

JOB_IDS: tuple[str, ...] = tuple(spec.id for spec in JOBS)


def find_job(name: str) -> JobSpec:
    """Look a job up by id or command name; ConfigError (exit 2) lists the valid names otherwise."""
    for spec in JOBS:
        if name in (spec.id, spec.command):
            return spec
    valid = ", ".join(f"{spec.id} ({spec.command})" for spec in JOBS)
    raise ConfigError(f"unknown job {name!r}; valid jobs: {valid}")


def load_job(spec: JobSpec) -> JobFunc:
    """Import the job's module on demand and return its ``run`` function (``module:func`` also works)."""
    module_name, _, attr = spec.module.partition(":")
    module = importlib.import_module(module_name)
    func: JobFunc = getattr(module, attr or "run")
    return func
