"""Kubernetes CronJobs: valid against a current Kubernetes schema offline, with the fields the issue asks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from stratmancer_jobs.deploy import DeployJob
from stratmancer_jobs.deploy.kubernetes import (
    Resources,
    build_cronjobs,
    check_schedule,
    render_cronjobs,
    render_pvc,
    to_yaml,
)
from stratmancer_jobs.errors import ConfigError

# the newest Kubernetes release whose schemas kubernetes-validate ships (offline)
K8S_VERSION: str = kubernetes_validate.latest_version()

JOBS = (
    DeployJob("refresh_history_index", "Refresh History Index", "refresh-history", "0 * * * *", 300, 1800),
    DeployJob("refresh_model_registry", "Refresh Model Registry", "refresh-registry", "*/5 * * * *", 5, 240),
    DeployJob("refresh_patch_meta", "Refresh Patch Metadata", "refresh-patch", "0 3 * * *", 3600, 0),
)
OPTIONS: dict[str, Any] = {
    "namespace": "stratmancer",
    "image": "ghcr.io/example/stratmancer-jobs:0.9.0",
    "pvc": "stratmancer-data",
    "timezone": "Europe/Paris",
    "secret_name": "stratmancer-secrets",
}


def _docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def cronjobs() -> list[dict[str, Any]]:
    """The default three jobs rendered to YAML and parsed back."""
    return _docs(render_cronjobs(JOBS, **OPTIONS))


def test_kubernetes_version_is_current() -> None:
    """The schemas used are from a recent release (CronJob timeZone is GA from 1.27)."""
    major, minor = (int(part) for part in K8S_VERSION.split(".")[:2])
    assert (major, minor) >= (1, 30)


def test_every_document_validates_strictly(cronjobs: list[dict[str, Any]]) -> None:
    """Each CronJob passes kubernetes-validate in strict mode (no unknown fields) for the newest release."""
    assert len(cronjobs) == len(JOBS)
    for doc in cronjobs:
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION.rsplit(".", 1)[0]


def test_validator_rejects_a_broken_manifest(cronjobs: list[dict[str, Any]]) -> None:
    """The validation is real: an unknown field or a wrong type in a CronJob is reported."""
    bad = yaml.safe_load(yaml.safe_dump(cronjobs[0]))
    bad["spec"]["concurrencyPolicyy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
    bad = yaml.safe_load(yaml.safe_dump(cronjobs[0]))
    bad["spec"]["startingDeadlineSeconds"] = "300"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_yaml_parses_back_to_the_built_objects() -> None:
    """The hand-written YAML means exactly the objects built (no string read as a number or bool)."""
    assert _docs(render_cronjobs(JOBS, **OPTIONS)) == build_cronjobs(JOBS, **OPTIONS)


def test_yaml_quotes_tricky_strings() -> None:
    """Strings that YAML would read as bools, numbers, null or comments survive the round trip."""
    tricky = {"on": "yes", "a": ["no", "1.0", "null", "# x", "x: y", 'é\n"q"\\', "", "*/5 * * * *"], "b": {}}
    assert yaml.safe_load(to_yaml([tricky])) == tricky


def test_output_is_deterministic() -> None:
    """The same inputs give these bytes, in every process (whatever its hash seed): a change to the
    generated YAML shows up here as a diff to review (the file is written by render_cronjobs)."""
    golden = Path(__file__).parent / "golden" / "kubernetes_cronjobs.yaml"
    assert render_cronjobs(JOBS, **OPTIONS) == golden.read_text(encoding="utf-8")


def test_cronjob_schedule_fields(cronjobs: list[dict[str, Any]]) -> None:
    """Schedule, zone, Forbid, starting deadline = grace, history limits and Job deadlines follow the jobs."""
    by_name = {doc["metadata"]["name"]: doc for doc in cronjobs}
    assert list(by_name) == [
        "stratmancer-refresh-history",
        "stratmancer-refresh-registry",
        "stratmancer-refresh-patch",
    ]
    for job in JOBS:
        doc = by_name[f"stratmancer-{job.command}"]
        assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "CronJob"
        assert doc["metadata"]["namespace"] == "stratmancer"
        assert doc["metadata"]["annotations"]["stratmancer-jobs/job-id"] == job.id
        spec = doc["spec"]
        assert spec["schedule"] == job.schedule
        assert spec["timeZone"] == "Europe/Paris"
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["successfulJobsHistoryLimit"] == 3
        assert spec["failedJobsHistoryLimit"] == 5
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0
        assert _pod(doc)["restartPolicy"] == "Never"
    assert by_name["stratmancer-refresh-history"]["spec"]["startingDeadlineSeconds"] == 300
    # a grace under the controller's 10 s polling period is raised to 10 s
    assert by_name["stratmancer-refresh-registry"]["spec"]["startingDeadlineSeconds"] == 10
    history_job = by_name["stratmancer-refresh-history"]["spec"]["jobTemplate"]["spec"]
    assert history_job["activeDeadlineSeconds"] == 1800 + 60
    assert "activeDeadlineSeconds" not in by_name["stratmancer-refresh-patch"]["spec"]["jobTemplate"]["spec"]


def test_container_volume_and_security(cronjobs: list[dict[str, Any]]) -> None:
    """Args, the RWX claim at the mount path, STRATMANCER_HOME, non-root and read-only root filesystem."""
    for doc, job in zip(cronjobs, JOBS, strict=True):
        pod = _pod(doc)
        (container,) = pod["containers"]
        assert container["image"] == OPTIONS["image"]
        assert "command" not in container  # the image's ENTRYPOINT is stratmancer-jobs
        assert container["args"] == [job.command]
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env["STRATMANCER_HOME"] == "/srv/stratmancer"
        assert env["STRATMANCER_TZ"] == "Europe/Paris"
        assert container["envFrom"] == [{"secretRef": {"name": "stratmancer-secrets", "optional": True}}]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert mounts == {"data": "/srv/stratmancer", "tmp": "/tmp"}
        assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "stratmancer-data"}
        assert "emptyDir" in volumes["tmp"]
        pod_sc = pod["securityContext"]
        assert pod_sc["runAsNonRoot"] is True
        assert pod_sc["runAsUser"] == 10001 and pod_sc["runAsGroup"] == 10001 and pod_sc["fsGroup"] == 10001
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert pod["automountServiceAccountToken"] is False
        assert container["resources"] == {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        }


def test_secret_is_only_referenced() -> None:
    """Secret values never appear: only the Secret's name, and nothing at all without a secret name."""
    with_secret = render_cronjobs(JOBS, **OPTIONS)
    assert "stratmancer-secrets" in with_secret
    assert "RIOT_API_KEY" not in with_secret
    assert 'kind: "Secret"' not in with_secret
    without = _docs(render_cronjobs(JOBS, **{**OPTIONS, "secret_name": None}))
    assert all("envFrom" not in _pod(doc)["containers"][0] for doc in without)


def test_options_without_zone_and_with_custom_settings() -> None:
    """No timeZone when none is given; mount path, history limits, ids and resources follow the arguments."""
    docs = _docs(
        render_cronjobs(
            JOBS[:1],
            **{**OPTIONS, "timezone": None},
            mount_path="/data/strat",
            successful_history=1,
            failed_history=0,
            run_as_user=2000,
            run_as_group=3000,
            resources=Resources(
                cpu_request="50m", memory_request="128Mi", cpu_limit=None, memory_limit="512Mi"
            ),
        )
    )
    (doc,) = docs
    assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert "timeZone" not in doc["spec"]
    assert (doc["spec"]["successfulJobsHistoryLimit"], doc["spec"]["failedJobsHistoryLimit"]) == (1, 0)
    pod = _pod(doc)
    container = pod["containers"][0]
    assert {e["name"]: e["value"] for e in container["env"]}.get("STRATMANCER_TZ") is None
    assert container["volumeMounts"][0]["mountPath"] == "/data/strat"
    assert {e["name"]: e["value"] for e in container["env"]}["STRATMANCER_HOME"] == "/data/strat"
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["fsGroup"]) == (2000, 3000)
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }


def test_pvc_is_read_write_many_and_valid() -> None:
    """The claim is ReadWriteMany, sized and classed as asked, and valid for the same release."""
    (pvc,) = _docs(
        render_pvc(namespace="stratmancer", name="stratmancer-data", storage="20Gi", storage_class="nfs")
    )
    assert kubernetes_validate.validate(pvc, K8S_VERSION, strict=True)
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["spec"]["storageClassName"] == "nfs"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("@reboot", "no Kubernetes CronJob form"),
        ("0 0 L * *", "'L' is not supported"),
        ("0 0 * * 5#2", "'5#2' is not supported"),
        ("0 0 * * 5-7", "7 for Sunday"),
        ("0 0 */2 * MON", "either does"),
        ("61 * * * *", "Bad minute"),
    ],
)
def test_schedule_kubernetes_cannot_run_as_cron_does_is_refused(expr: str, message: str) -> None:
    """A schedule Kubernetes would reject or run at other times than cron is a ConfigError naming it."""
    with pytest.raises(ConfigError) as info:
        check_schedule(expr)
    assert repr(expr) in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "expr", ["0 0 1 * MON", "15,45 9-17 * * mon-fri", "0 0 1 jan,JUL *", "@daily", "*/5 * * * *"]
)
def test_schedules_kubernetes_runs_like_cron_pass(expr: str) -> None:
    """Lists, ranges, names, macros and cron's day OR (both fields restricted) pass through unchanged."""
    assert check_schedule(expr) == expr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"namespace": "Strat_Mancer"}, "namespace"),
        ({"pvc": "data volume"}, "volume claim name"),
        ({"secret_name": "Secrets!"}, "secret name"),
        ({"image": "two words"}, "image"),
        ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
        ({"mount_path": "relative/path"}, "mount path"),
        ({"mount_path": "/tmp"}, "mount path"),
        ({"run_as_user": 0}, "non-root"),
        ({"resources": Resources(cpu_request="lots")}, "quantity"),
    ],
)
def test_bad_options_are_config_errors(override: dict[str, Any], message: str) -> None:
    """Values Kubernetes would refuse (or that would run as root) are a ConfigError naming the value."""
    with pytest.raises(ConfigError, match=message):
        render_cronjobs(JOBS, **{**OPTIONS, **override})


def test_overlong_command_name_is_refused() -> None:
    """A CronJob name over 52 characters (the Job suffix would break the label limit) is refused."""
    job = DeployJob("x", "X", "a" * 45, "0 * * * *", 0, 0)
    with pytest.raises(ConfigError, match="CronJob name"):
        render_cronjobs([job], **OPTIONS)
