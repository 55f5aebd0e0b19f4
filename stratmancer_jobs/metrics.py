"""Prometheus node_exporter textfile-collector output, rewritten after every run.

The temp file's name ends in ``.tmp`` (atomicio), never ``.prom``, so the collector never reads a
half-written file.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from stratmancer_jobs.atomicio import atomic_write_text
from stratmancer_jobs.clock import parse_iso
from stratmancer_jobs.config import Settings
from stratmancer_jobs.errors import StateError, StorageError
from stratmancer_jobs.jobtable import JOBS
from stratmancer_jobs.state import State, empty_state, last_completed_status, load_state

PREFIX = "stratmancer_job"
RESULTS = ("success", "error", "skipped")
REGISTRY_JOB = "refresh_model_registry"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        number = repr(float(value)) if math.isfinite(value) else "NaN"
        lines.append(f"{name}{{{rendered}}} {number}")
    return lines


def render_metrics(state: State) -> str:
    """The exposition text for a state (pure)."""
    records = {spec.id: state.job(spec.id) for spec in JOBS}
    out: list[str] = []

    def ts() -> list[tuple[dict[str, str], float]]:
        samples = []
        for job_id, record in records.items():
            moment = parse_iso(record.last_success)
            if moment is not None:
                samples.append(({"job": job_id}, moment.timestamp()))
        return samples

    out += _family(
        f"{PREFIX}_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the job's last successful run.",
        ts(),
    )
    out += _family(
        f"{PREFIX}_last_run_duration_seconds",
        "gauge",
        "Duration of the job's last completed run.",
        [
            ({"job": j}, float(r.last_duration_s))
            for j, r in records.items()
            if r.last_duration_s is not None
        ],
    )
    out += _family(
        f"{PREFIX}_last_run_success",
        "gauge",
        "1 if the job's last completed run succeeded, 0 if it failed.",
        [
            ({"job": j}, 1.0 if last_completed_status(r) == "success" else 0.0)
            for j, r in records.items()
            if last_completed_status(r)
        ],
    )
    out += _family(
        f"{PREFIX}_runs_total",
        "counter",
        "Runs of the job by result.",
        [
            ({"job": j, "result": result}, float(count))
            for j, r in records.items()
            for result, count in zip(RESULTS, (r.success_count, r.error_count, r.skipped_count), strict=True)
        ],
    )
    registry = records.get(REGISTRY_JOB)
    servable = sorted(
        (key.removeprefix("servable_"), value)
        for key, value in (registry.last_metrics.items() if registry is not None else ())
        if key.startswith("servable_") and isinstance(value, int | float)
    )
    if servable:
        out += _family(
            "stratmancer_registry_servable",
            "gauge",
            "1 if the running app can serve a model for the elo (its file-name rule, calibrator), else 0.",
            [({"elo": elo}, float(value)) for elo, value in servable],
        )
    gauges: dict[str, list[tuple[dict[str, str], float]]] = {}
    infos: list[tuple[dict[str, str], float]] = []
    for job_id, record in records.items():
        values = record.last_metrics
        for key, value in sorted(values.items()):
            if isinstance(value, bool):
                value = float(value)
            if isinstance(value, (int, float)):
                gauges.setdefault(key, []).append(({"job": job_id}, float(value)))
            elif isinstance(value, str):
                infos.append(({"job": job_id, "key": key, "value": value}, 1.0))
    for key, samples in sorted(gauges.items()):
        safe = "".join(c if c.isalnum() or c == "_" else "_" for c in key)
        out += _family(
            f"{PREFIX}_{safe}", "gauge", f"Job-specific value {key} from the last successful run.", samples
        )
    if infos:
        out += _family(
            f"{PREFIX}_info",
            "gauge",
            "Job-specific text values (e.g. the current patch) as labels; always 1.",
            infos,
        )
    return "\n".join(out) + "\n"


def write_metrics(settings: Settings, state: State | None = None) -> None:
    """Render ``state`` (the one the runner just committed; read from the file when None) into the
    configured textfile atomically."""
    assert settings.metrics_file is not None
    refuse_special(settings.metrics_file)
    if state is None:
        try:
            state = load_state(settings.layout.state_file)
        except StateError:
            state = empty_state()
    atomic_write_text(settings.metrics_file, render_metrics(state))


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
