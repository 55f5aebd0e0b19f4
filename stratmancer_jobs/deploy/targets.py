"""The one bridge from the resolved configuration to the generators: Settings + job table -> DeployJob.

``crontab``, ``systemd`` and ``kubernetes`` all read the same job table and the same resolved
schedules, so a schedule changed in ``config/jobs.toml`` reaches every form of deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stratmancer_jobs.config import Settings
from stratmancer_jobs.deploy import DeployJob, DeployTarget
from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.jobtable import JOBS


def _check_schedules(jobs: list[DeployJob], check: Callable[[str], object]) -> None:
    """Run a generator's schedule check on each job, naming the config key it refuses."""
    for job in jobs:
        try:
            check(job.schedule)
        except ConfigError as exc:
            raise ConfigError(f"config key jobs.{job.id}.schedule: {exc}") from None


def deploy_jobs(settings: Settings) -> list[DeployJob]:
    """Every job with its resolved schedule, grace and time limit."""
    jobs = []
    for spec in JOBS:
        schedule = settings.job(spec)
        jobs.append(
            DeployJob(
                id=spec.id,
                name=spec.name,
                command=spec.command,
                schedule=schedule.schedule,
                grace_s=schedule.grace_s,
                timeout_s=schedule.timeout_s,
            )
        )
    return jobs


def systemd_units(settings: Settings, *, executable: str, user: bool) -> dict[str, str]:
    """Unit file name -> text for every job (a oneshot service and its timer)."""
    from stratmancer_jobs.deploy.systemd import cron_to_oncalendar, render_units

    target = DeployTarget(
        settings.layout.root,
        executable,
        timezone=settings.timezone.key,
        env_file=settings.env_file or settings.layout.env_file,
    )
    delay = settings.deploy.randomized_delay_s or None
    jobs = deploy_jobs(settings)
    _check_schedules(jobs, lambda expr: cron_to_oncalendar(expr, target.timezone))
    return render_units(
        jobs,
        target,
        user=user,
        randomized_delay_s=delay,
        accuracy_s=settings.deploy.accuracy_s,
    )


def kubernetes_manifests(
    settings: Settings, *, namespace: str | None, image: str | None, pvc: str | None, with_pvc: bool
) -> str:
    """CronJob documents for every job (flags override ``[deploy]`` in config/jobs.toml); the claim too."""
    from stratmancer_jobs.deploy.kubernetes import check_schedule, render_cronjobs, render_pvc

    deploy = settings.deploy
    ns, claim = namespace or deploy.namespace, pvc or deploy.pvc
    jobs = deploy_jobs(settings)
    _check_schedules(jobs, check_schedule)
    text = render_cronjobs(
        jobs,
        namespace=ns,
        image=image or deploy.image,
        pvc=claim,
        timezone=settings.timezone.key,
        secret_name=deploy.secret_name,
    )
    if with_pvc:
        text = render_pvc(namespace=ns, name=claim) + text
    return text


def write_units(units: dict[str, str], directory: Path) -> list[Path]:
    """Write each unit into ``directory`` atomically; the paths written, in order."""
    from stratmancer_jobs.atomicio import atomic_write_bytes, make_dirs

    make_dirs(directory)
    written = []
    for name, text in units.items():
        path = directory / name
        atomic_write_bytes(path, text.encode())
        written.append(path)
    return written
