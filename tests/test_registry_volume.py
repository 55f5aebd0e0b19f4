"""2000 invalid model cards log a count and the first few reasons, each cut; the registry lists all
of them, each reason cut too (real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

from stratmancer_jobs.jobs.registry.cards import MAX_REASON_CHARS
from tests.conftest import run_proc, write_card

MANY = 2000


def test_two_thousand_invalid_cards_log_a_few_lines(root: Path) -> None:
    """Each of 2000 cards has a 10 KB invalid timestamp: at most a handful of WARNING lines, none
    longer than a few hundred characters, and model_registry.json names all 2000 with cut reasons."""
    write_card(root, "mid", "20251020_120000")
    cards = root / "ml_pipeline/models/modelcards"
    for i in range(MANY):
        card = {"elo": "low", "timestamp": "X" * 10_000, "model_file": "draft.pkl"}
        (cards / f"modelcard_low_20250101_{i:06d}.json").write_text(json.dumps(card), encoding="utf-8")
    ran = run_proc(root, "refresh-registry", timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "Traceback" not in ran.stderr
    warnings = [line for line in ran.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) <= 10, len(warnings)
    assert max(len(line) for line in ran.stderr.splitlines()) < 1000
    assert f"and {MANY - 5} more like these, not logged one by one" in ran.stderr
    listed = json.loads((root / "ml_pipeline/model_registry.json").read_text("utf-8"))["invalid"]
    assert len(listed) == MANY
    assert all(len(bad["reason"]) <= MAX_REASON_CHARS for bad in listed)
    assert listed[0]["reason"].startswith("timestamp 'XXXX") and listed[0]["reason"].endswith("…")
