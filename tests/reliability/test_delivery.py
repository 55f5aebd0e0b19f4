"""Delivery under kills through the real CLI (issue 19): a change a job writes always reaches the app.

The stop points are exact (``hooks/sitecustomize.py`` and ``recording_hook.py``); see
``scenario_delivery``. ``scripts/reliability.py`` adds the same at random moments, 100 per job.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.reliability import scenario_delivery
from tests.reliability.harness import JOBS, Outcome


def _ok(outcome: Outcome) -> None:
    assert outcome.trials > 0
    assert not outcome.failures, "\n".join(outcome.failures)


def test_kill_at_every_point_then_a_clean_run_tells_the_app(tmp_path: Path) -> None:
    """Every job, SIGKILL and SIGTERM before and after the output's rename, during a hook and after the
    hooks: the stopped run owes the change, and the next clean run tells the app the output on disk."""
    with ThreadPoolExecutor(len(JOBS)) as pool:  # the jobs' roots are independent: side by side
        outcomes = list(pool.map(lambda cmd: scenario_delivery.kill_points(tmp_path, cmd), JOBS))
    merged = Outcome("kill points")
    for outcome in outcomes:
        merged.merge(outcome)
    assert merged.trials == 3 * 8
    _ok(merged)
