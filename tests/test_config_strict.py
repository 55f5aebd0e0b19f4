"""Strict `[jobs.<id>]` tables and the wrong-directory guard, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratmancer_jobs.config import load_settings
from stratmancer_jobs.errors import ConfigError
from tests.conftest import run_proc


def test_misspelt_job_key_is_refused_naming_it_and_the_known_ones(root: Path) -> None:
    """`schedul = ...` in a job table is exit 2 naming jobs.<id>.schedul and the valid keys."""
    (root / "config/jobs.toml").write_text('[jobs.refresh_model_registry]\nschedul = "* * * * *"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(root, {})
    message = str(info.value)
    assert "jobs.refresh_model_registry.schedul is unknown" in message
    for key in ("grace_seconds", "on_change", "schedule", "timeout_seconds"):
        assert key in message
    done = run_proc(root, "status")
    assert done.returncode == 2 and "jobs.refresh_model_registry.schedul" in done.stderr


def test_systemd_refusal_names_the_config_key(root: Path) -> None:
    """A schedule systemd cannot express is refused naming jobs.<id>.schedule, without 'two jobs'."""
    (root / "config/jobs.toml").write_text('[jobs.refresh_patch_meta]\nschedule = "0 0 1 * MON"\n')
    done = run_proc(root, "systemd")
    assert done.returncode == 2
    assert "config key jobs.refresh_patch_meta.schedule: " in done.stderr
    assert "two jobs" not in done.stderr and "crontab --install" in done.stderr
    (root / "config/jobs.toml").write_text('[jobs.refresh_patch_meta]\nschedule = "0 0 * * 7"\n')
    k8s = run_proc(root, "kubernetes")
    assert k8s.returncode == 2 and "config key jobs.refresh_patch_meta.schedule: " in k8s.stderr


@pytest.mark.parametrize("command", [["status"], ["refresh-registry"], ["crontab"], ["doctor"]])
def test_a_directory_that_is_no_deployment_is_said_in_one_line_and_left_alone(
    tmp_path: Path, command: list[str]
) -> None:
    """No state/, config/ or data/: one line naming --root and STRATMANCER_HOME, exit 1, nothing created."""
    empty = tmp_path / "not-a-deployment"
    empty.mkdir()
    done = run_proc(empty, *command)
    assert done.returncode == (2 if command == ["doctor"] else 1), done.stderr
    text = done.stderr + done.stdout
    assert "--root" in text and "STRATMANCER_HOME" in text and str(empty) in text
    assert len(done.stderr.strip().splitlines()) <= 1
    assert list(empty.iterdir()) == []
