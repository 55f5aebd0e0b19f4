"""A clock jump during a run, through the real CLI: durations come from the monotonic clock,
``last_success`` never moves backwards, and ``status JOB`` says when a run's wall times disagree.

The CLI runs in a subprocess whose wall clock (``stratmancer_jobs.clock.utc_now``, the one clock
every command reads) is replaced before the CLI is imported, as libfaketime would: it reads the
real time shifted by the first offset for its first call (the run's start) and by the second
offset afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stratmancer_jobs.state import StateStore, mark_finished
from tests.conftest import REPO, write_card

JOB = "refresh_model_registry"
JUMPING = """
import sys
from datetime import datetime, timedelta, UTC
import stratmancer_jobs.clock as clock

offsets = [float(x) for x in sys.argv[1:3]]
calls = []

def jumped():
    calls.append(1)
    return datetime.now(UTC) + timedelta(seconds=offsets[0] if len(calls) == 1 else offsets[1])

clock.utc_now = jumped
sys.argv = ["stratmancer-jobs", *sys.argv[3:]]
from stratmancer_jobs.cli import main
main()
"""


def _cli(root: Path, first_s: float, then_s: float, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-c", JUMPING, str(first_s), str(then_s), "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _plant_success(root: Path, at: datetime) -> None:
    StateStore(root / "state/jobs_state.json").update(
        JOB,
        lambda r: mark_finished(
            r,
            ok=True,
            started=at,
            finished=at + timedelta(seconds=2),
            duration_s=2.0,
            summary="ok",
            error=None,
        ),
        at,
    )


def _record(root: Path) -> dict[str, Any]:
    data = json.loads((root / "state/jobs_state.json").read_text(encoding="utf-8"))
    record: dict[str, Any] = data["jobs"][JOB]
    return record


def test_a_clock_set_back_during_a_run_keeps_the_newer_success_and_is_shown(root: Path) -> None:
    """The clock goes back 34 hours between the run's start and finish: the success two minutes ago
    stays the last success (not 'late'), the duration is the real one, and status names the jump."""
    write_card(root, "mid", "20251020_120000")
    earlier = datetime.now(UTC) - timedelta(minutes=2)
    _plant_success(root, earlier)
    run = _cli(root, 0, -34 * 3600, "refresh-registry")
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    record = _record(root)
    success = datetime.fromisoformat(record["last_success"])  # the start plus the run's real duration
    assert abs((success - datetime.now(UTC)).total_seconds()) < 60, record
    assert 0 <= record["last_duration_s"] < 60  # from the monotonic clock, not the wall clock
    shown = _cli(root, 0, 0, "status", "refresh-registry")
    assert "late by" not in shown.stdout, shown.stdout
    assert "wall clock jumped: the last run finished" in shown.stdout, shown.stdout
    assert "Traceback" not in shown.stderr


def test_a_run_with_the_clock_a_year_back_does_not_overwrite_a_newer_success(root: Path) -> None:
    """A whole run with the clock set back a year records its run, keeps the newer last success,
    and `status JOB` notes the success later than the last run's finish."""
    write_card(root, "mid", "20251020_120000")
    earlier = datetime.now(UTC) - timedelta(minutes=3)
    _plant_success(root, earlier)
    year = -365 * 86400
    run = _cli(root, year, year, "refresh-registry")
    assert run.returncode == 0, run.stderr
    record = _record(root)
    assert record["last_success"] == _iso(earlier + timedelta(seconds=2))
    assert record["success_count"] == 2 and record["last_finished"] < record["last_success"]
    shown = _cli(root, 0, 0, "status", "refresh-registry")
    assert "is later than the last run's finish (kept)" in shown.stdout, shown.stdout
    behind = _cli(root, year, year, "status", "refresh-registry")  # seen with the clock still behind
    assert "clock skew" in behind.stdout and "late by" not in behind.stdout, behind.stdout
    consistent = _cli(root, 0, 0, "refresh-registry")  # a run with a sound clock clears the note
    assert consistent.returncode == 0, consistent.stderr
    assert "wall clock jumped" not in _cli(root, 0, 0, "status", "refresh-registry").stdout


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
