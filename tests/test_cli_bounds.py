"""Numeric limits (issue 9, item 10): inf, nan and huge values are refused up front, never overflow later."""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from stratmancer_jobs.config import MAX_TIMEOUT_S, Settings
from stratmancer_jobs.errors import EXIT_USAGE
from stratmancer_jobs.runner import run_job
from tests.conftest import run_proc, with_fake_job


@pytest.mark.parametrize("value", ["inf", "-inf", "1e20", "nan", "-1", str(MAX_TIMEOUT_S + 1)])
def test_timeout_flag_out_of_range_is_one_line_exit_2(root: Path, value: str) -> None:
    """--timeout inf/nan/1e20/-1/just above the maximum: exit 2, one line naming the flag and the range."""
    done = run_proc(root, "refresh-registry", "--timeout", value)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "OverflowError" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: --timeout must be between 0 and 604800 seconds"), lines[0]
    assert not (root / "state" / "jobs_state.json").exists()  # nothing was run or recorded


def test_timeout_flag_at_the_maximum_is_accepted(root: Path) -> None:
    """--timeout exactly at the 7-day maximum runs the job normally (exit 0)."""
    done = run_proc(root, "refresh-registry", "--timeout", str(MAX_TIMEOUT_S))
    assert done.returncode == 0, done.stderr
    assert " ERROR " not in done.stderr and "error:" not in done.stderr
    assert re.search(r"refresh_model_registry \[[0-9a-f]{6}\]: finished in ", done.stderr), done.stderr
    assert ": Model registry refreshed: 0 models" in done.stderr
    record = json.loads((root / "state" / "jobs_state.json").read_text())["jobs"]["refresh_model_registry"]
    assert (record["last_status"], record["success_count"], record["last_error"]) == ("success", 1, None)
    assert (root / "ml_pipeline" / "model_registry.json").is_file()


def test_huge_timeout_seconds_in_config_is_one_line_exit_2(root: Path) -> None:
    """timeout_seconds = 9300000000 in config/jobs.toml: exit 2, one line naming the key and the range."""
    (root / "config/jobs.toml").write_text("[jobs.refresh_model_registry]\ntimeout_seconds = 9300000000\n")
    done = run_proc(root, "refresh-registry")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: {root / 'config/jobs.toml'}: config key jobs.refresh_model_registry.timeout_seconds "
        "must be >= 0 and <= 604800, got 9300000000"
    ]


@pytest.mark.parametrize("limit", [math.inf, math.nan, 1e20, -1.0])
def test_run_job_refuses_an_unbounded_limit_without_running(settings: Settings, limit: float) -> None:
    """run_job called directly with an inf/nan/huge/negative limit returns exit 2 and never starts the job."""
    spec, s = with_fake_job(settings, "ok")
    outcome = run_job(spec, replace(s, run_timeout_s=limit), log=logging.getLogger("test.bounds"))
    assert outcome.exit_code == EXIT_USAGE and outcome.status == "error"
    assert outcome.error is not None and "timeout must be between 0 and 604800" in outcome.error
    assert not s.layout.state_file.exists()
