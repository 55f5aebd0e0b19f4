"""Prometheus node_exporter textfile-collector output, rewritten after every run and by ``status --check``.

The naming rules (docs/metrics.md) in short: every name starts ``stratmancer_``; a per-job series is
``stratmancer_job_<what>`` with the label ``job_id`` (never ``job`` or ``instance``, which Prometheus
owns); a value that varies by elo, reason or mode is a label of one metric, never part of its name;
units are in the name (``_seconds``, ``_bytes``, ``_timestamp_seconds``) in base units; counters end in
``_total``; a state is an enum (one series per possible value, 1 for the current one), so no series
appears or disappears as values change; every family has its own HELP text.

A job's own figures (``JobResult.metrics``, kept in the state as ``last_metrics``) are published only
through ``JOB_VALUES``, which names each one's metric, labels and help; a figure it does not list is not
published (the tests check that every figure a job records is listed).

The temp file's name ends in ``.tmp`` (atomicio), never ``.prom``, so the collector never reads a
half-written file; the file is written beside its named path and renamed over the name (a symlink
there is replaced, never followed), and a device, FIFO or directory at that name is refused.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stratmancer_jobs import __version__
from stratmancer_jobs.atomicio import atomic_write_text
from stratmancer_jobs.clock import parse_iso, utc_now
from stratmancer_jobs.config import Settings
from stratmancer_jobs.errors import StorageError
from stratmancer_jobs.schedule import interval_s
from stratmancer_jobs.state import State, last_completed_status
from stratmancer_jobs.status import StatusReport, build_report

PREFIX = "stratmancer_job"
RESULTS = ("success", "error", "skipped", "interrupted")
# the health enum's values (status's "never run" is never_run here: label values without spaces)
HEALTH_STATES = ("ok", "new", "running", "warning", "late", "failing", "never_run")
HISTORY_MODES = ("unchanged", "incremental", "full")

Sample = tuple[dict[str, str], float]


@dataclass(frozen=True)
class JobValue:
    """Where one ``last_metrics`` figure is published: metric name, its fixed labels, help text."""

    metric: str
    help: str
    labels: tuple[tuple[str, str], ...] = ()


def _value(metric: str, help_text: str, **labels: str) -> JobValue:
    return JobValue(metric, help_text, tuple(labels.items()))


SKIPPED_HELP = "Records the last history run skipped, by reason."
CHANGES_HELP = "Model cards the last registry run saw added or removed, by change."
# every figure a job records in last_metrics, by job id and key
JOB_VALUES: Mapping[str, Mapping[str, JobValue]] = {
    "refresh_history_index": {
        "matches_indexed": _value("stratmancer_history_matches", "Matches in the history index."),
        "new_matches": _value("stratmancer_history_new_matches", "Matches the last history run added."),
        "tiers": _value("stratmancer_history_tiers", "Tiers in the history index."),
        "groups": _value("stratmancer_history_groups", "Elo groups in the history index."),
        "champion_pairs": _value(
            "stratmancer_history_champion_pairs", "Champion pairs in the history index."
        ),
        "records_skipped_duplicate": _value(
            "stratmancer_history_records_skipped", SKIPPED_HELP, reason="duplicate"
        ),
        "records_skipped_invalid": _value(
            "stratmancer_history_records_skipped", SKIPPED_HELP, reason="invalid"
        ),
        "files_read": _value("stratmancer_history_files_read", "Match files the last history run read."),
        "bytes_read": _value(
            "stratmancer_history_read_bytes", "Bytes of match files the last history run read."
        ),
        # "mode" is text: published as the enum stratmancer_history_run_mode{mode}
    },
    "refresh_model_registry": {
        "models_registered": _value("stratmancer_registry_models", "Valid model cards in the registry."),
        "models_invalid": _value("stratmancer_registry_invalid_cards", "Model cards refused as invalid."),
        "models_unservable": _value(
            "stratmancer_registry_unservable_models", "Registered models the app could not load."
        ),
        "models_added": _value("stratmancer_registry_last_run_changes", CHANGES_HELP, change="added"),
        "models_removed": _value("stratmancer_registry_last_run_changes", CHANGES_HELP, change="removed"),
        # "servable_<elo>" figures: published as stratmancer_registry_servable{elo}
    },
    "refresh_patch_meta": {
        "patch_changed": _value("stratmancer_patch_changed", "1 if the last patch run changed the patch."),
        "fetch_ok": _value("stratmancer_patch_fetch_success", "1 if the last patch run reached Data Dragon."),
        "fallback": _value(
            "stratmancer_patch_fallback", "1 if the last patch run used the configured fallback."
        ),
        # "patch" is text: published as stratmancer_patch_info{patch} (it changes once per game patch)
    },
}
TEXT_VALUES = {"refresh_history_index": ("mode",), "refresh_patch_meta": ("patch",)}
SERVABLE_PREFIX = "servable_"
REGISTRY_JOB = "refresh_model_registry"


def unpublished(job_id: str, values: Mapping[str, object]) -> list[str]:
    """The figures of ``values`` that this module does not publish (the tests keep this empty)."""
    known = JOB_VALUES.get(job_id, {})
    texts = TEXT_VALUES.get(job_id, ())
    return sorted(
        key
        for key in values
        if key not in known
        and key not in texts
        and not (job_id == REGISTRY_JOB and key.startswith(SERVABLE_PREFIX))
    )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{rendered}}} {_number(value)}" if rendered else f"{name} {_number(value)}")
    return lines


def _ts(text: str | None) -> float:
    """A stored time as Unix seconds; 0 when never (so `absent()` is not needed, and `== 0` says never)."""
    moment = parse_iso(text)
    return moment.timestamp() if moment is not None else 0.0


def _when(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


def render_metrics(report: StatusReport, settings: Settings, now: datetime) -> str:
    """The exposition text for a status report at ``now`` (pure)."""
    out: list[str] = []
    jobs = report.jobs

    def per_job(name: str, help_text: str, values: Iterable[tuple[str, float]], kind: str = "gauge") -> None:
        nonlocal out
        out += _family(f"{PREFIX}_{name}", kind, help_text, (({"job_id": j}, v) for j, v in values))

    out += _family(
        "stratmancer_build_info",
        "gauge",
        "The stratmancer-jobs version that wrote this file; always 1.",
        [({"version": __version__}, 1.0)],
    )
    out += _family(
        "stratmancer_metrics_written_timestamp_seconds",
        "gauge",
        "Unix time this file was written (every run and every `status --check` rewrite it).",
        [({}, now.timestamp())],
    )
    out += _family(
        f"{PREFIX}_health",
        "gauge",
        "The job's health as status shows it, one series per state: 1 for the current one, else 0.",
        [
            ({"job_id": j.spec.id, "state": state}, 1.0 if j.health.state.replace(" ", "_") == state else 0.0)
            for j in jobs
            for state in HEALTH_STATES
        ],
    )
    per_job(
        "health_level",
        "The job's monitoring level, as `status --check` counts it: 0 ok, 1 warning, 2 critical.",
        ((j.spec.id, float(j.health.level)) for j in jobs),
    )
    per_job(
        "deadline_timestamp_seconds",
        "Unix time after which the job is late: its due time (the first scheduled time after the last "
        "success) plus grace.",
        ((j.spec.id, _when(j.deadline)) for j in jobs),
    )
    per_job(
        "next_run_timestamp_seconds",
        "Unix time of the job's next scheduled run.",
        ((j.spec.id, j.next_run.timestamp()) for j in jobs),
    )
    per_job(
        "interval_seconds",
        "Seconds between the job's scheduled runs around now.",
        ((j.spec.id, interval_s(j.schedule, settings.timezone, now)) for j in jobs),
    )
    per_job(
        "grace_seconds",
        "Seconds a run may start late before the job counts as late.",
        ((j.spec.id, float(j.grace_s)) for j in jobs),
    )
    per_job(
        "timeout_seconds",
        "The job's time limit in seconds (0: no limit).",
        ((j.spec.id, float(j.timeout_s)) for j in jobs),
    )
    per_job(
        "last_success_timestamp_seconds",
        "Unix time of the job's last successful run; 0 if it never succeeded.",
        ((j.spec.id, _ts(j.record.last_success)) for j in jobs),
    )
    per_job(
        "last_failure_timestamp_seconds",
        "Unix time of the job's last failed run; 0 if it never failed.",
        ((j.spec.id, _ts(j.record.last_error)) for j in jobs),
    )
    per_job(
        "last_run_success",
        "1 if the job's last completed run succeeded, 0 if it failed (absent before the first one).",
        ((j.spec.id, 1.0 if s == "success" else 0.0) for j in jobs if (s := last_completed_status(j.record))),
    )
    per_job(
        "last_run_duration_seconds",
        "Wall time of the job's last run, in seconds.",
        ((j.spec.id, float(j.record.last_duration_s)) for j in jobs if j.record.last_duration_s is not None),
    )
    per_job(
        "consecutive_failures",
        "Failed runs of the job since its last success.",
        ((j.spec.id, float(j.record.consecutive_failures)) for j in jobs),
    )
    running = [j for j in jobs if j.health.state == "running"]
    per_job(
        "running",
        "1 while a live process runs the job, else 0.",
        ((j.spec.id, 1.0 if j in running else 0.0) for j in jobs),
    )
    per_job(
        "running_since_timestamp_seconds",
        "Unix time the job's current run started; 0 when it is not running.",
        (
            (j.spec.id, _ts(j.record.running.started) if j in running and j.record.running else 0.0)
            for j in jobs
        ),
    )
    per_job(
        "hooks_pending",
        "1 while a change of the job's output still owes on_change hooks a success, else 0.",
        ((j.spec.id, 1.0 if j.record.pending_change is not None else 0.0) for j in jobs),
    )
    out += _family(
        f"{PREFIX}_runs_total",
        "counter",
        "Runs of the job by result (success, error, skipped, interrupted).",
        [
            ({"job_id": j.spec.id, "result": result}, float(count))
            for j in jobs
            for result, count in zip(
                RESULTS,
                (
                    j.record.success_count,
                    j.record.error_count,
                    j.record.skipped_count,
                    j.record.interrupted_count,
                ),
                strict=True,
            )
        ],
    )
    out += _job_values(report)
    return "\n".join(out) + "\n"


def _job_values(report: StatusReport) -> list[str]:
    """The jobs' own figures from their last runs, as JOB_VALUES names them."""
    records = {j.spec.id: j.record for j in report.jobs}
    families: dict[str, tuple[str, list[Sample]]] = {}
    for job_id, table in JOB_VALUES.items():
        record = records.get(job_id)
        if record is None:
            continue
        for key, where in table.items():
            value = record.last_metrics.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            families.setdefault(where.metric, (where.help, []))[1].append((dict(where.labels), float(value)))
    out: list[str] = []
    for name, (help_text, samples) in families.items():
        out += _family(name, "gauge", help_text, samples)
    history = records.get("refresh_history_index")
    mode = history.last_metrics.get("mode") if history is not None else None
    if isinstance(mode, str):
        out += _family(
            "stratmancer_history_run_mode",
            "gauge",
            "How the last history run built the index (unchanged, incremental, full): 1 for that mode.",
            [({"mode": m}, 1.0 if m == mode else 0.0) for m in HISTORY_MODES],
        )
    registry = records.get(REGISTRY_JOB)
    servable = sorted(
        (key.removeprefix(SERVABLE_PREFIX), value)
        for key, value in (registry.last_metrics.items() if registry is not None else ())
        if key.startswith(SERVABLE_PREFIX) and isinstance(value, int | float) and not isinstance(value, bool)
    )
    if servable:
        out += _family(
            "stratmancer_registry_servable",
            "gauge",
            "1 if the running app can serve a model for the elo (its file-name rule, calibrator), else 0.",
            [({"elo": elo}, float(value)) for elo, value in servable],
        )
    patch = records.get("refresh_patch_meta")
    current = patch.last_metrics.get("patch") if patch is not None else None
    if isinstance(current, str) and current:
        out += _family(
            "stratmancer_patch_info",
            "gauge",
            "The game patch the last patch run wrote to meta.json, as a label; always 1.",
            [({"patch": current}, 1.0)],
        )
    return out


SPECIAL_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def refuse_special(path: Path) -> None:
    """Raise StorageError unless ``path`` is missing, a regular file or a symlink (which the write
    replaces, never follows): a device, a FIFO or a directory at the name is left alone."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot stat {path}: {exc.strerror or exc}") from None
    for test, kind in SPECIAL_KINDS:
        if test(mode):
            raise StorageError(f"{path} is {kind}, not a regular file; remove it or choose another path")


def write_metrics(
    settings: Settings,
    state: State | None = None,
    now: datetime | None = None,
    report: StatusReport | None = None,
) -> None:
    """Render the jobs' status at ``now`` into the configured textfile atomically: ``report`` when
    given (``status --check``), else one built from ``state`` (the one the runner just committed; read
    from the file when None)."""
    assert settings.metrics_file is not None
    refuse_special(settings.metrics_file)
    now = now or utc_now()
    if report is None:
        report = build_report(settings, now, state=state)
    atomic_write_text(settings.metrics_file, render_metrics(report, settings, now))
