"""The bridge from Settings to the generators, compared with the generators called by hand
(mutation testing, issue 15)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from stratmancer_jobs.config import DeploySettings, JobSchedule, Settings, load_settings
from stratmancer_jobs.deploy import DeployJob, DeployTarget
from stratmancer_jobs.deploy.kubernetes import render_cronjobs, render_pvc
from stratmancer_jobs.deploy.systemd import render_units
from stratmancer_jobs.deploy.targets import deploy_jobs, kubernetes_manifests, systemd_units, write_units
from stratmancer_jobs.jobtable import JOBS

DEPLOY = DeploySettings(
    randomized_delay_s=120,
    accuracy_s=7,
    namespace="ns-conf",
    image="img:conf",
    pvc="claim-conf",
    secret_name="sec-conf",
)


def configured(root: Path) -> Settings:
    (root / "config/jobs.toml").write_text(
        'timezone = "Europe/Paris"\n'
        "[jobs.refresh_patch_meta]\n"
        'schedule = "30 4 * * MON-FRI"\ngrace_seconds = 900\ntimeout_seconds = 120\n'
    )
    return replace(load_settings(root, {}), deploy=DEPLOY)


def test_deploy_jobs_is_every_job_with_its_resolved_schedule(root: Path) -> None:
    settings = configured(root)
    expected = []
    for spec in JOBS:
        schedule: JobSchedule = settings.job(spec)
        expected.append(
            DeployJob(
                spec.id, spec.name, spec.command, schedule.schedule, schedule.grace_s, schedule.timeout_s
            )
        )
    assert deploy_jobs(settings) == expected
    patch = next(job for job in deploy_jobs(settings) if job.id == "refresh_patch_meta")
    assert (patch.schedule, patch.grace_s, patch.timeout_s) == ("30 4 * * MON-FRI", 900, 120)
    assert len(expected) == len(JOBS) > 1


def test_systemd_units_pass_the_deploy_defaults(root: Path) -> None:
    settings = configured(root)
    for user in (False, True):
        target = DeployTarget(
            settings.layout.root,
            "/x/bin/stratmancer-jobs",
            timezone="Europe/Paris",
            env_file=root / "config/stratmancer.env",
        )
        expected = render_units(
            deploy_jobs(settings), target, user=user, randomized_delay_s=120, accuracy_s=7
        )
        assert systemd_units(settings, executable="/x/bin/stratmancer-jobs", user=user) == expected
    timer = systemd_units(settings, executable="/x/e", user=True)["stratmancer-refresh-patch.timer"]
    assert "RandomizedDelaySec=120s" in timer and "AccuracySec=7s" in timer
    assert "OnCalendar=Mon..Fri *-*-* 04:30:00 Europe/Paris" in timer.splitlines()


def test_systemd_units_without_a_randomized_delay(root: Path) -> None:
    settings = replace(configured(root), deploy=replace(DEPLOY, randomized_delay_s=0, accuracy_s=1))
    target = DeployTarget(
        settings.layout.root, "/x/e", timezone="Europe/Paris", env_file=root / "config/stratmancer.env"
    )
    expected = render_units(deploy_jobs(settings), target, user=False, randomized_delay_s=None, accuracy_s=1)
    units = systemd_units(settings, executable="/x/e", user=False)
    assert units == expected
    assert not any("RandomizedDelaySec" in text for text in units.values())


def test_kubernetes_manifests_from_the_deploy_defaults(root: Path) -> None:
    settings = configured(root)
    jobs = deploy_jobs(settings)
    expected = render_cronjobs(
        jobs,
        namespace="ns-conf",
        image="img:conf",
        pvc="claim-conf",
        timezone="Europe/Paris",
        secret_name="sec-conf",
    )
    assert kubernetes_manifests(settings, namespace=None, image=None, pvc=None, with_pvc=False) == expected
    with_claim = kubernetes_manifests(settings, namespace=None, image=None, pvc=None, with_pvc=True)
    assert with_claim == render_pvc(namespace="ns-conf", name="claim-conf") + expected


def test_kubernetes_flags_override_the_deploy_defaults(root: Path) -> None:
    settings = configured(root)
    jobs = deploy_jobs(settings)
    expected = render_cronjobs(
        jobs,
        namespace="ns-flag",
        image="img:flag",
        pvc="claim-flag",
        timezone="Europe/Paris",
        secret_name="sec-conf",
    )
    got = kubernetes_manifests(
        settings, namespace="ns-flag", image="img:flag", pvc="claim-flag", with_pvc=True
    )
    assert got == render_pvc(namespace="ns-flag", name="claim-flag") + expected
    assert "ns-conf" not in got and "img:conf" not in got and "claim-conf" not in got


def test_kubernetes_without_a_secret(root: Path) -> None:
    settings = replace(configured(root), deploy=replace(DEPLOY, secret_name=None))
    got = kubernetes_manifests(settings, namespace=None, image=None, pvc=None, with_pvc=False)
    assert got == render_cronjobs(
        deploy_jobs(settings),
        namespace="ns-conf",
        image="img:conf",
        pvc="claim-conf",
        timezone="Europe/Paris",
    )
    assert "sec-conf" not in got


def test_write_units_writes_each_file_in_order(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "units"
    units = {"b.service": "B\n", "a.timer": "A é\n", "c.service": ""}
    written = write_units(units, directory)
    assert written == [directory / "b.service", directory / "a.timer", directory / "c.service"]
    assert {p.name: p.read_bytes() for p in written} == {
        "b.service": b"B\n",
        "a.timer": "A é\n".encode(),
        "c.service": b"",
    }
    assert sorted(os.listdir(directory)) == ["a.timer", "b.service", "c.service"]
    assert write_units({}, directory) == []
    assert write_units({"b.service": "new"}, directory) == [directory / "b.service"]
    assert (directory / "b.service").read_text() == "new"
