"""The Prometheus textfile: valid exposition format, written atomically after every run."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
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
    job = (("job_id", "refresh_model_registry"),)
    assert samples[("stratmancer_job_last_run_success", job)] == 0.0
    assert samples[("stratmancer_job_last_success_timestamp_seconds", job)] > 1.7e9
    assert samples[("stratmancer_job_last_failure_timestamp_seconds", job)] > 1.7e9
    assert samples[("stratmancer_job_consecutive_failures", job)] == 1.0
    assert samples[("stratmancer_job_health", (*job, ("state", "failing")))] == 1.0
    assert samples[("stratmancer_job_health", (*job, ("state", "ok")))] == 0.0
    assert samples[("stratmancer_job_runs_total", (*job, ("result", "success")))] == 1.0
    assert samples[("stratmancer_job_runs_total", (*job, ("result", "error")))] == 1.0
    assert samples[("stratmancer_registry_models", ())] == 1.0
    assert not [p for p in prom.parent.iterdir() if p.name != "stratmancer.prom"]  # no temp left


def test_metrics_config_key_and_env(cli: Callable[..., Result], root: Path) -> None:
    """metrics_file in config/jobs.toml (relative to the root) and the env var both enable the file."""
    write_card(root, "mid", "20251101_164237")
    (root / "config/jobs.toml").write_text('metrics_file = "m.prom"\n')
    assert cli("refresh-registry").exit_code == 0
    assert ("stratmancer_registry_models", ()) in _samples(root / "m.prom")
    env_path = root / "env.prom"
    assert cli("refresh-registry", env={"STRATMANCER_METRICS_FILE": str(env_path)}).exit_code == 0
    assert env_path.exists()


@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_a_symlink_at_the_metrics_path_is_replaced_never_followed(
    cli: Callable[..., Result], root: Path, tmp_path: Path, how: str
) -> None:
    """A symlink at the metrics path (flag, env, config) is replaced by the file; its target is untouched."""
    write_card(root, "mid", "20251101_164237")
    target = tmp_path / "system-file"
    target.write_text("precious\n")
    link = root / "textfile" / "sj.prom"
    link.parent.mkdir()
    link.symlink_to(target)
    args: tuple[str, ...] = ("refresh-registry",)
    env = None
    if how == "flag":
        args = ("--metrics-file", str(link), *args)
    elif how == "env":
        env = {"STRATMANCER_METRICS_FILE": str(link)}
    else:
        (root / "config/jobs.toml").write_text('metrics_file = "textfile/sj.prom"\n')
    result = cli(*args, env=env)
    assert result.exit_code == 0, result.output
    assert target.read_text() == "precious\n"
    assert not link.is_symlink() and "stratmancer_" in link.read_text()


def _char_device(tmp_path: Path) -> Path:
    """A character device to name: a null device made here when allowed (root), else /dev/null itself."""
    node = tmp_path / "null-device"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return Path("/dev/null")
    return node


@pytest.mark.parametrize(
    ("kind", "word"), [("chr", "a character device"), ("fifo", "a FIFO"), ("dir", "a directory")]
)
def test_a_device_fifo_or_directory_at_the_metrics_path_is_refused(
    cli: Callable[..., Result], root: Path, tmp_path: Path, kind: str, word: str
) -> None:
    """A device, FIFO or directory at the metrics path is left alone with a warning line; the run exits 0."""
    write_card(root, "mid", "20251101_164237")
    if kind == "chr":
        path = _char_device(tmp_path)
    elif kind == "fifo":
        path = tmp_path / "fifo.prom"
        os.mkfifo(path)
    else:
        path = tmp_path / "dir.prom"
        path.mkdir()
    before = os.lstat(path)
    result = cli("--metrics-file", str(path), "refresh-registry")
    assert result.exit_code == 0, result.output
    assert f"metrics not written: {path} is {word}" in result.stderr
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
