"""crontab, systemd and Kubernetes output all follow the one job table and config/jobs.toml."""

from __future__ import annotations

from pathlib import Path

import yaml

from stratmancer_jobs.config import load_settings
from stratmancer_jobs.crontab import render_crontab
from stratmancer_jobs.deploy import DeployTarget
from stratmancer_jobs.deploy.kubernetes import render_cronjobs
from stratmancer_jobs.deploy.systemd import render_units
from stratmancer_jobs.deploy.targets import deploy_jobs


def test_all_three_follow_a_changed_schedule(root: Path) -> None:
    """A schedule, grace and timeout changed in config/jobs.toml reach crontab, timer and CronJob."""
    (root / "config/jobs.toml").write_text(
        'timezone = "Europe/Paris"\n'
        "[jobs.refresh_patch_meta]\n"
        'schedule = "30 4 * * MON-FRI"\ngrace_seconds = 900\ntimeout_seconds = 120\n'
    )
    settings = load_settings(root, {})
    crontab = render_crontab(settings, executable="/x/stratmancer-jobs", path_env="/usr/bin")
    assert any(
        line.startswith("30 4 * * MON-FRI ")
        and line.endswith(
            "/x/stratmancer-jobs --log-file logs/x.log refresh-patch >> logs/x.log 2>&1".replace(
                "x.log", "stratmancer-jobs.log"
            )
        )
        for line in crontab.splitlines()
    )

    jobs = deploy_jobs(settings)
    target = DeployTarget(settings.layout.root, "/x/stratmancer-jobs", timezone=settings.timezone.key)
    units = render_units(jobs, target, user=False)
    timer = units["stratmancer-refresh-patch.timer"].splitlines()
    assert "OnCalendar=Mon..Fri *-*-* 04:30:00 Europe/Paris" in timer
    assert "TimeoutStartSec=150s" in units["stratmancer-refresh-patch.service"].splitlines()
    assert "OnCalendar=*-*-* *:00:00 Europe/Paris" in units["stratmancer-refresh-history.timer"].splitlines()

    docs = list(
        yaml.safe_load_all(
            render_cronjobs(jobs, namespace="s", image="i:1", pvc="p", timezone=settings.timezone.key)
        )
    )
    patch = next(d for d in docs if d["metadata"]["name"] == "stratmancer-refresh-patch")
    assert patch["spec"]["schedule"] == "30 4 * * MON-FRI"
    assert patch["spec"]["timeZone"] == "Europe/Paris"
    assert patch["spec"]["startingDeadlineSeconds"] == 900
    assert patch["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 120 + 60
