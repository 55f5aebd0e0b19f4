"""Long text fields in a planted state are cut on load, so no rewrite or `status --json` carries them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from stratmancer_jobs.state.codec import MAX_TEXT_CHARS
from tests.conftest import write_card

JOB = "refresh_model_registry"
HUGE = 1_000_000


def test_megabyte_texts_in_a_planted_state_are_cut_on_load(cli: Callable[..., Result], root: Path) -> None:
    """Twenty runs with a 1 MB unknown `error` text, a 1 MB unknown record key value and a 1 MB metric
    string: `status --json` stays small, and the next run rewrites a small state file."""
    runs = [
        {
            "started": "2026-11-28T12:00:00+00:00",
            "status": "error",
            "duration_s": 1.0,
            "summary": "x",
            "error": "E" * HUGE,
        }
        for _ in range(20)
    ]
    record = {"runs": runs, "note_from_a_newer_version": "N" * HUGE, "last_metrics": {"why": "M" * HUGE}}
    path = root / "state/jobs_state.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"schema_version": 1, "jobs": {JOB: record}, "top": "T" * HUGE}), "utf-8")
    shown = cli("status", "--json")
    assert shown.exit_code == 0, shown.output
    assert len(shown.stdout) < 100_000, len(shown.stdout)
    write_card(root, "mid", "20251020_120000")
    ran = cli("refresh-registry")
    assert ran.exit_code == 0, ran.output
    assert path.stat().st_size < 40 * MAX_TEXT_CHARS + 50_000, path.stat().st_size
    stored = json.loads(path.read_text("utf-8"))
    kept = stored["jobs"][JOB]
    assert kept["runs"][0]["error"].startswith("E" * 100) and kept["runs"][0]["error"].endswith("…")
    assert len(kept["note_from_a_newer_version"]) == MAX_TEXT_CHARS  # kept, cut, not dropped
