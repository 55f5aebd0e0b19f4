"""Special files where a job reads its own last output or an input (real CLI): one clear line, no
hang, no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_proc, write_card
from tests.history_fixtures import games, low_thresholds, write_array


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_special_file_at_the_last_registry_is_no_previous_registry(root: Path, kind: str) -> None:
    """A FIFO or a link to /dev/zero at model_registry.json: the run reports every card as new and
    replaces the link or FIFO with the registry, instead of hanging or reading without end."""
    write_card(root, "mid", "20251020_120000")
    registry = root / "ml_pipeline/model_registry.json"
    if kind == "fifo":
        os.mkfifo(registry)
    else:
        registry.symlink_to("/dev/zero")
    ran = run_proc(root, "refresh-registry", timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert f"previous registry {registry} unreadable" in ran.stderr
    assert (
        json.loads(registry.read_text("utf-8"))["models"][0]["file"] == "modelcard_mid_20251020_120000.json"
    )


def test_a_symlink_loop_as_a_tier_file_is_a_bad_file(root: Path) -> None:
    """matches_GOLD.json as a symlink loop: the other tiers are indexed, the run fails naming the file
    (its tier keeps its last entry), and no traceback is printed."""
    low_thresholds(root)
    write_array(root, "SILVER", games("s", 30))
    gold = root / "data/processed/matches_GOLD.json"
    gold.symlink_to(gold.name)
    ran = run_proc(root, "refresh-history", timeout=60)
    assert "Traceback" not in ran.stderr and "unexpected error" not in ran.stderr, ran.stderr
    assert ran.returncode == 1, ran.stderr
    assert f"{gold}: cannot read it (Too many levels of symbolic links)" in ran.stderr
    index = json.loads((root / "ml_pipeline/history_index.json").read_text("utf-8"))
    assert "SILVER" in index and "GOLD" not in index
