"""The job table: every job's id, command, default schedule and limits, and where its code lives.

Imports nothing of the project but ``errors``, so that config, status and the schedule generators can
all read it without importing any job.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratmancer_jobs.errors import ConfigError


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


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        id="refresh_history_index",
        name="Refresh History Index",
        command="refresh-history",
        default_schedule="0 * * * *",
        default_grace_s=300,
        default_timeout_s=1800,
        module="stratmancer_jobs.jobs.history.job",
    ),
    JobSpec(
        id="refresh_model_registry",
        name="Refresh Model Registry",
        command="refresh-registry",
        default_schedule="*/5 * * * *",
        default_grace_s=60,
        default_timeout_s=240,
        module="stratmancer_jobs.jobs.registry.job",
    ),
    JobSpec(
        id="refresh_patch_meta",
        name="Refresh Patch Metadata",
        command="refresh-patch",
        default_schedule="0 3 * * *",
        default_grace_s=3600,
        default_timeout_s=600,
        module="stratmancer_jobs.jobs.patch.job",
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
