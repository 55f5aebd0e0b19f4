"""A directory symlink under the root (``ml_pipeline/`` or ``data/`` on another disk) is the operator's
layout: every job follows it alike, while a file symlink leading out of its directory and the root is
still refused by every job (real CLI)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.conftest import run_proc, write_card
from tests.history_fixtures import games, low_thresholds, write_array


def _move_to_other_disk(root: Path, name: str, other: Path) -> Path:
    """Move ``root/name`` to ``other/name`` and leave a symlink at its old place."""
    target = other / name
    shutil.move(root / name, target)
    os.symlink(target, root / name)
    return target


def test_symlinked_ml_pipeline_and_data_serve_every_job(root: Path, tmp_path: Path) -> None:
    """With ml_pipeline/ and data/ as symlinks to another directory, refresh-registry and
    refresh-history both succeed and write their outputs at the link's target."""
    other = tmp_path / "other-disk"
    other.mkdir()
    low_thresholds(root)
    write_array(root, "GOLD", games("g", 30))
    write_card(root, "mid", "20251020_120000")
    models = _move_to_other_disk(root, "ml_pipeline", other)
    _move_to_other_disk(root, "data", other)
    registry = run_proc(root, "refresh-registry", timeout=120)
    assert registry.returncode == 0, registry.stderr
    assert "outside the deployment root" not in registry.stderr
    listed = json.loads((models / "model_registry.json").read_text("utf-8"))
    assert [m["file"] for m in listed["models"]] == ["modelcard_mid_20251020_120000.json"]
    history = run_proc(root, "refresh-history", timeout=120)
    assert history.returncode == 0, history.stderr
    assert json.loads((models / "history_index.json").read_text("utf-8"))
    assert "Traceback" not in registry.stderr + history.stderr


def test_file_symlinks_out_of_the_root_are_refused_by_every_job(root: Path, tmp_path: Path) -> None:
    """Under a symlinked ml_pipeline/, a card linking to a file outside both its directory and the root
    is refused, as a tier file linking out is ignored by the history job."""
    other = tmp_path / "other-disk"
    other.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    low_thresholds(root)
    write_array(root, "GOLD", games("g", 30))
    write_card(root, "mid", "20251020_120000")
    card = write_card(root, "low", "20251021_120000")
    shutil.move(card, outside / card.name)
    os.symlink(outside / card.name, card)
    shutil.move(write_array(root, "SILVER", games("s", 30)), outside / "matches_SILVER.json")
    os.symlink(outside / "matches_SILVER.json", root / "data/processed/matches_SILVER.json")
    _move_to_other_disk(root, "ml_pipeline", other)
    registry = run_proc(root, "refresh-registry", timeout=120)
    assert registry.returncode == 0, registry.stderr
    assert f"{card.name}: symlink pointing outside the deployment root" in registry.stderr
    history = run_proc(root, "refresh-history", timeout=120)
    assert history.returncode == 0, history.stderr
    assert "matches_SILVER.json: a symlink pointing outside" in history.stderr
    index = json.loads((other / "ml_pipeline/history_index.json").read_text("utf-8"))
    assert "SILVER" not in json.dumps(sorted(index)) and "GOLD" in json.dumps(sorted(index))
