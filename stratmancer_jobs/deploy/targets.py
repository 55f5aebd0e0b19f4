"""The one bridge from the resolved configuration to the generators: Settings + job table -> DeployJob.

``crontab``, ``systemd`` and ``kubernetes`` all read the same job table and the same resolved
schedules, so a schedule changed in ``config/jobs.toml`` reaches every form of deployment.
"""

from __future__ import annotations

from pathlib import Path

from stratmancer_jobs.config import Settings
from stratmancer_jobs.deploy import DeployJob, DeployTarget
from stratmancer_jobs.jobtable import JOBS


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
    from stratmancer_jobs.deploy.systemd import render_units

    target = DeployTarget(settings.layout.root, executable, timezone=settings.timezone.key)
    delay = settings.deploy.randomized_delay_s or None
    return render_units(
        deploy_jobs(settings),
        target,
        user=user,
        randomized_delay_s=delay,
        accuracy_s=settings.deploy.accuracy_s,
    )


def kubernetes_manifests(
    settings: Settings, *, namespace: str | None, image: str | None, pvc: str | None, with_pvc: bool
) -> str:
    """CronJob documents for every job (flags override ``[deploy]`` in config/jobs.toml); the claim too."""
    from stratmancer_jobs.deploy.kubernetes import render_cronjobs, render_pvc

    deploy = settings.deploy
    ns, claim = namespace or deploy.namespace, pvc or deploy.pvc
    text = render_cronjobs(
        deploy_jobs(settings),
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
