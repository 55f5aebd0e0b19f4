"""The Prometheus textfile: valid exposition format, written atomically after every run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from typer.testing import Result

from tests.conftest import write_card


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_written_after_success_failure_and_parse(cli: Callable[..., Result], root: Path) -> None:
    """After a success and a failure the textfile parses and holds per-job gauges and counters."""
    prom = root / "metrics" / "stratmancer.prom"
    write_card(root, "mid", "20251101_164237")
    assert cli("--metrics-file", str(prom), "refresh-registry").exit_code == 0
    (root / "ml_pipeline/models/modelcards").rename(root / "moved")
    assert cli("--metrics-file", str(prom), "refresh-registry").exit_code == 1
    text = prom.read_text()
    assert "# HELP stratmancer_job_last_success_timestamp_seconds" in text
    assert "# TYPE stratmancer_job_runs_total counter" in text
    samples = _samples(prom)
    job = (("job", "refresh_model_registry"),)
    assert samples[("stratmancer_job_last_run_success", job)] == 0.0
    assert samples[("stratmancer_job_last_success_timestamp_seconds", job)] > 1.7e9
    assert samples[("stratmancer_job_runs_total", (*job, ("result", "success")))] == 1.0
    assert samples[("stratmancer_job_runs_total", (*job, ("result", "error")))] == 1.0
    assert samples[("stratmancer_job_models_registered", job)] == 1.0
    assert not [p for p in prom.parent.iterdir() if p.name != "stratmancer.prom"]  # no temp left


def test_metrics_config_key_and_env(cli: Callable[..., Result], root: Path) -> None:
    """metrics_file in config/jobs.toml (relative to the root) and the env var both enable the file."""
    write_card(root, "mid", "20251101_164237")
    (root / "config/jobs.toml").write_text('metrics_file = "m.prom"\n')
    assert cli("refresh-registry").exit_code == 0
    assert ("stratmancer_job_models_registered", (("job", "refresh_model_registry"),)) in _samples(
        root / "m.prom"
    )
    env_path = root / "env.prom"
    assert cli("refresh-registry", env={"STRATMANCER_METRICS_FILE": str(env_path)}).exit_code == 0
    assert env_path.exists()


def test_text_values_become_info_labels() -> None:
    """A string metric (the current patch) is exported as an info-style gauge with labels."""
    from stratmancer_jobs.metrics import render_metrics
    from stratmancer_jobs.state import decode

    state = {
        "schema_version": 1,
        "jobs": {"refresh_patch_meta": {"success_count": 1, "last_metrics": {"patch": '16."23'}}},
    }
    families = {f.name: f for f in text_string_to_metric_families(render_metrics(decode(state)))}
    info = families["stratmancer_job_info"].samples[0]
    assert info.labels == {"job": "refresh_patch_meta", "key": "patch", "value": '16."23'}
