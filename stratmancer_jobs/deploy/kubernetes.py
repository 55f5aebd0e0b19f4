"""Kubernetes ``batch/v1`` CronJobs for each job (``stratmancer-jobs kubernetes``), emitted as YAML.

One CronJob per job, single-flight by ``concurrencyPolicy: Forbid``; every job shares the deployment
root on one ReadWriteMany PersistentVolumeClaim (state file, locks, outputs). The YAML is written by a
small deterministic emitter (every string double-quoted), so the runtime needs no YAML library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from stratmancer_jobs.deploy import DeployJob, check_timezone
from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.schedule import validate_cron

NAME_PREFIX = "stratmancer-"
CONTAINER_NAME = "stratmancer-jobs"
DATA_VOLUME = "data"
TMP_VOLUME = "tmp"
# an emptyDir per pod: the only writable place besides the volume (the root filesystem is read-only)
TMP_MOUNT = "/tmp"  # noqa: S108
# the CronJob controller appends an 11-character suffix to name its Jobs, within a 63-character label
MAX_CRONJOB_NAME = 52
# the controller checks schedules about every 10 s: a shorter starting deadline can miss every run
MIN_STARTING_DEADLINE_S = 10
# the macros Kubernetes' cron parser (robfig/cron) accepts besides five fields
K8S_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


@dataclass(frozen=True)
class Resources:
    """Container resource requests and limits as Kubernetes quantities (``None`` leaves one out)."""

    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    cpu_limit: str | None = "1"
    memory_limit: str | None = "1Gi"


# --- YAML -------------------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # a JSON string is a valid YAML double-quoted scalar: nothing in it is read as a number/bool/null
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML11_WORDS else json.dumps(key)


def _emit(node: Any, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(value, Mapping | list) and value:
                lines.append(f"{pad}{_key(key)}:")
                _emit(value, indent + 1, lines)
            elif isinstance(value, Mapping | list):
                lines.append(f"{pad}{_key(key)}: {'{}' if isinstance(value, Mapping) else '[]'}")
            else:
                lines.append(f"{pad}{_key(key)}: {_scalar(value)}")
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, Mapping | list) and item:
                sub: list[str] = []
                _emit(item, 0, sub)
                lines.append(f"{pad}- {sub[0]}")
                lines.extend(f"{pad}  {line}" for line in sub[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(node)}")


def to_yaml(documents: Sequence[Mapping[str, Any]]) -> str:
    """Block-style YAML, one ``---`` document per mapping, keys in insertion order, strings quoted."""
    lines: list[str] = []
    for document in documents:
        lines.append("---")
        _emit(document, 0, lines)
    return "\n".join(lines) + "\n"


# --- validation -------------------------------------------------------------------------------------


def _dns_label(value: str, what: str, max_len: int = 63) -> str:
    if len(value) > max_len or not _DNS_LABEL.fullmatch(value):
        raise ConfigError(
            f"{what} {value!r} must be a DNS label: lowercase letters, digits and '-', at most {max_len}"
        )
    return value


def _dns_subdomain(value: str, what: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ConfigError(f"{what} {value!r} must be a DNS name: lowercase letters, digits, '-' and '.'")
    return value


def _quantity(value: str, what: str) -> str:
    if not _QUANTITY.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is not a Kubernetes quantity (like 250m, 512Mi, 2)")
    return value


def _non_negative(value: int, what: str) -> int:
    if value < 0:
        raise ConfigError(f"{what} must be >= 0, got {value}")
    return value


def check_schedule(expr: str) -> str:
    """Return ``expr`` if a Kubernetes CronJob fires it when cron (and status) say; ConfigError if not.

    Kubernetes parses schedules with robfig/cron: no ``@reboot``, ``L``/``W``/``#``, or 7 for Sunday;
    and it treats a day field such as ``*/2`` as restricted, so such a field next to a restricted other
    day field would be ORed there but ANDed by cron.
    """
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() in K8S_MACROS:
            return text
        raise ConfigError(
            f"schedule {expr!r} has no Kubernetes CronJob form (allowed: {', '.join(K8S_MACROS)})"
        )
    validate_cron(text, "schedule")
    fields = text.upper().split()
    for index, part in enumerate(fields):
        for piece in re.split(r"[,/-]", part):
            if piece == "*" or piece.isdigit() or (index == 3 and piece in MONTH_NAMES):
                if index == 4 and piece == "7":
                    raise ConfigError(
                        f"schedule {expr!r}: Kubernetes does not accept 7 for Sunday; use 0 or SUN"
                    )
                continue
            if index == 4 and piece in DAY_NAMES:
                continue
            raise ConfigError(f"schedule {expr!r}: {piece!r} is not supported by Kubernetes CronJob")
    dom, dow = fields[2], fields[4]
    cron_and = dom.startswith("*") or dow.startswith("*")
    k8s_and = dom in ("*", "*/1") or dow in ("*", "*/1")
    if cron_and != k8s_and:
        raise ConfigError(
            f"schedule {expr!r}: with a stepped '*' day field and a restricted other day field, cron runs "
            "when both match but Kubernetes when either does; write the day field without '*'"
        )
    return text


# --- manifests --------------------------------------------------------------------------------------


def _labels(component: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": "stratmancer-jobs", "app.kubernetes.io/part-of": "stratmancer"}
    if component:
        labels["app.kubernetes.io/component"] = component
    return labels


def build_cronjobs(
    jobs: Sequence[DeployJob],
    *,
    namespace: str,
    image: str,
    pvc: str,
    timezone: str | None,
    secret_name: str | None = None,
    mount_path: str = "/srv/stratmancer",
    successful_history: int = 3,
    failed_history: int = 5,
    run_as_user: int = 10001,
    run_as_group: int = 10001,
    resources: Resources | None = None,
    kill_margin_s: int = 60,
    image_pull_policy: str = "IfNotPresent",
) -> list[dict[str, Any]]:
    """The CronJob objects (plain dicts in manifest key order) that ``render_cronjobs`` writes as YAML."""
    if not jobs:
        raise ConfigError("no jobs to write CronJobs for")
    _dns_label(namespace, "namespace")
    _dns_subdomain(pvc, "volume claim name")
    if secret_name is not None:
        _dns_subdomain(secret_name, "secret name")
    if not image or any(ch.isspace() for ch in image):
        raise ConfigError(f"image {image!r} must be a non-empty image reference without spaces")
    path = PurePosixPath(mount_path)
    if (
        not path.is_absolute()
        or str(path) in ("/", TMP_MOUNT)
        or any(ch.isspace() or ch == ":" for ch in mount_path)
    ):
        raise ConfigError(f"mount path {mount_path!r} must be an absolute path other than / and /tmp")
    if image_pull_policy not in ("Always", "IfNotPresent", "Never"):
        raise ConfigError(f"image pull policy {image_pull_policy!r} must be Always, IfNotPresent or Never")
    for value, what in ((run_as_user, "runAsUser"), (run_as_group, "runAsGroup")):
        if value < 1:
            raise ConfigError(f"{what} must be a non-root id (>= 1), got {value}")
    _non_negative(successful_history, "successful jobs history limit")
    _non_negative(failed_history, "failed jobs history limit")
    _non_negative(kill_margin_s, "kill margin")
    zone = check_timezone(timezone) if timezone else None
    res = resources or Resources()
    requests = {
        "cpu": _quantity(res.cpu_request, "cpu request"),
        "memory": _quantity(res.memory_request, "memory request"),
    }
    limits: dict[str, str] = {}
    if res.cpu_limit is not None:
        limits["cpu"] = _quantity(res.cpu_limit, "cpu limit")
    if res.memory_limit is not None:
        limits["memory"] = _quantity(res.memory_limit, "memory limit")

    env = [{"name": "STRATMANCER_HOME", "value": str(path)}]
    if zone:
        # the tool's own next-run and lateness must use the CronJob's zone, not the container's UTC
        env.append({"name": "STRATMANCER_TZ", "value": zone})
    env.append({"name": "PYTHONUNBUFFERED", "value": "1"})

    cronjobs: list[dict[str, Any]] = []
    names: set[str] = set()
    for job in jobs:
        name = _dns_label(f"{NAME_PREFIX}{job.command}", "CronJob name", MAX_CRONJOB_NAME)
        if name in names:
            raise ConfigError(f"job command {job.command!r} appears twice")
        names.add(name)
        _non_negative(job.grace_s, f"job {job.id} grace_seconds")
        _non_negative(job.timeout_s, f"job {job.id} timeout_seconds")
        labels = _labels(job.command)

        container: dict[str, Any] = {
            "name": CONTAINER_NAME,
            "image": image,
            "imagePullPolicy": image_pull_policy,
            "args": [job.command],
            "env": env,
        }
        if secret_name is not None:
            container["envFrom"] = [{"secretRef": {"name": secret_name, "optional": True}}]
        container["resources"] = {"requests": requests, **({"limits": limits} if limits else {})}
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
        container["volumeMounts"] = [
            {"name": DATA_VOLUME, "mountPath": str(path)},
            {"name": TMP_VOLUME, "mountPath": TMP_MOUNT},
        ]
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": run_as_user,
                "runAsGroup": run_as_group,
                "fsGroup": run_as_group,
                "fsGroupChangePolicy": "OnRootMismatch",
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": pvc}},
                {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "256Mi"}},
            ],
        }
        job_spec: dict[str, Any] = {"backoffLimit": 0}
        if job.timeout_s:
            # the tool's own limit fires first and records "timed out"; this deadline is the backstop
            job_spec["activeDeadlineSeconds"] = job.timeout_s + kill_margin_s
        job_spec["template"] = {"metadata": {"labels": labels}, "spec": pod_spec}

        spec: dict[str, Any] = {"schedule": check_schedule(job.schedule)}
        if zone:
            spec["timeZone"] = zone
        spec["concurrencyPolicy"] = "Forbid"
        if job.grace_s:
            spec["startingDeadlineSeconds"] = max(job.grace_s, MIN_STARTING_DEADLINE_S)
        spec["successfulJobsHistoryLimit"] = successful_history
        spec["failedJobsHistoryLimit"] = failed_history
        spec["jobTemplate"] = {"metadata": {"labels": labels}, "spec": job_spec}

        cronjobs.append(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {"stratmancer-jobs/job-id": job.id, "stratmancer-jobs/job-name": job.name},
                },
                "spec": spec,
            }
        )
    return cronjobs


def render_cronjobs(
    jobs: Sequence[DeployJob],
    *,
    namespace: str,
    image: str,
    pvc: str,
    timezone: str | None,
    secret_name: str | None = None,
    mount_path: str = "/srv/stratmancer",
    successful_history: int = 3,
    failed_history: int = 5,
    run_as_user: int = 10001,
    run_as_group: int = 10001,
    resources: Resources | None = None,
    kill_margin_s: int = 60,
    image_pull_policy: str = "IfNotPresent",
) -> str:
    """``batch/v1`` CronJob YAML, one document per job, for ``kubectl apply -f -``.

    ``startingDeadlineSeconds`` is the job's grace (at least 10 s; omitted for grace 0),
    ``activeDeadlineSeconds`` its timeout plus ``kill_margin_s`` (omitted for no limit); ``secret_name``
    is referenced with ``envFrom`` (optional), its values never read or written here.
    """
    header = (
        "# generated by `stratmancer-jobs kubernetes`; apply with: kubectl apply -f <this file>\n"
        "# one CronJob per job, single-flight (concurrencyPolicy: Forbid); all share the deployment root on\n"
        f"# the ReadWriteMany claim {pvc} (state, locks, outputs); secrets come from a Secret by reference\n"
    )
    documents = build_cronjobs(
        jobs,
        namespace=namespace,
        image=image,
        pvc=pvc,
        timezone=timezone,
        secret_name=secret_name,
        mount_path=mount_path,
        successful_history=successful_history,
        failed_history=failed_history,
        run_as_user=run_as_user,
        run_as_group=run_as_group,
        resources=resources,
        kill_margin_s=kill_margin_s,
        image_pull_policy=image_pull_policy,
    )
    return header + to_yaml(documents)


def build_pvc(
    *, namespace: str, name: str, storage: str = "10Gi", storage_class: str | None = None
) -> dict[str, Any]:
    """The ReadWriteMany PersistentVolumeClaim holding the deployment root, as a plain dict."""
    spec: dict[str, Any] = {"accessModes": ["ReadWriteMany"]}
    if storage_class is not None:
        spec["storageClassName"] = _dns_subdomain(storage_class, "storage class")
    spec["resources"] = {"requests": {"storage": _quantity(storage, "storage size")}}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": _dns_subdomain(name, "volume claim name"),
            "namespace": _dns_label(namespace, "namespace"),
            "labels": _labels(),
        },
        "spec": spec,
    }


def render_pvc(*, namespace: str, name: str, storage: str = "10Gi", storage_class: str | None = None) -> str:
    """The PersistentVolumeClaim as YAML; its storage class must offer ReadWriteMany (NFSv4, CephFS, ...)."""
    header = (
        "# the deployment root shared by every CronJob; the storage class must support ReadWriteMany and\n"
        "# honour flock() across nodes (NFSv4, CephFS; not NFSv3 without lockd)\n"
    )
    return header + to_yaml(
        [build_pvc(namespace=namespace, name=name, storage=storage, storage_class=storage_class)]
    )
