"""refresh-registry: validation of every card, newest-by-timestamp choice, change report, snapshot."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stratmancer_jobs.config import Settings
from stratmancer_jobs.errors import InputError
from stratmancer_jobs.jobs.registry.cards import InvalidCard, ValidCard, diff_models, validate_card
from stratmancer_jobs.jobs.registry.job import refresh_registry
from tests.conftest import write_card

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test.registry")
ARTIFACTS = frozenset({"m.pkl", "c.pkl"})
GOOD = {
    "elo": "mid",
    "timestamp": "2025-11-01T16:42:37.798963",
    "model_file": "m.pkl",
    "calibrated": True,
    "calibrator_file": "c.pkl",
    "metrics": {"roc_auc_raw": 0.8},
}
NAME = "modelcard_mid_20251101_164237.json"


def _check(card: object, name: str = NAME, artifacts: frozenset[str] = ARTIFACTS) -> ValidCard | InvalidCard:
    raw = card if isinstance(card, bytes) else json.dumps(card).encode()
    return validate_card(name, raw, artifacts)


def test_good_card_is_valid_and_keeps_unknown_fields() -> None:
    """A correct card validates and keeps fields the tool does not know."""
    result = _check({**GOOD, "feature_flags": {"x": True}, "assets": ["a"], "brand_new": 1})
    assert isinstance(result, ValidCard)
    assert result.card["brand_new"] == 1 and result.summary()["card"]["feature_flags"] == {"x": True}


@pytest.mark.parametrize(
    ("card", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[1]", "must be a JSON object"),
        ({**GOOD, "elo": "gold"}, "elo 'gold' is not one of low, mid, high"),
        ({**GOOD, "timestamp": "yesterday"}, "is not ISO 8601"),
        ({**GOOD, "timestamp": None}, "timestamp must be"),
        ({**GOOD, "model_file": "../../etc/passwd"}, "bare file name"),
        ({**GOOD, "model_file": "/etc/passwd"}, "bare file name"),
        ({**GOOD, "model_file": "sub\\m.pkl"}, "bare file name"),
        ({**GOOD, "model_file": "missing.pkl"}, "'missing.pkl' not found"),
        ({**GOOD, "calibrator_file": "nope.pkl"}, "calibrator_file 'nope.pkl' not found"),
        ({**GOOD, "calibrator_file": "../c.pkl"}, "bare file name"),
        ({**GOOD, "calibrated": "yes"}, "calibrated must be true or false"),
        ({**GOOD, "metrics": {"auc": "high"}}, "metric 'auc' is not a finite number"),
        ({**GOOD, "metrics": {"auc": True}}, "metric 'auc' is not a finite number"),
        (json.dumps({**GOOD, "metrics": {"auc": float("nan")}}).encode(), "not a finite number"),
        ({**GOOD, "metrics": [1]}, "metrics must be an object"),
        ({**GOOD, "train_size": -1}, "train_size must be a non-negative number"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_invalid_cards_name_their_reason(card: object, reason: str) -> None:
    """Every kind of bad card is rejected with a reason that says what is wrong."""
    result = _check(card)
    assert isinstance(result, InvalidCard)
    assert reason in result.reason


def test_uncalibrated_card_needs_no_calibrator() -> None:
    """calibrated=false cards are valid without a calibrator file."""
    card = {k: v for k, v in GOOD.items() if k != "calibrator_file"}
    assert isinstance(_check({**card, "calibrated": False}), ValidCard)


def test_file_name_and_card_elo_must_agree() -> None:
    """A card whose file name says another elo is invalid, and so is a malformed file name."""
    wrong = _check(GOOD, name="modelcard_low_20251101_164237.json")
    assert isinstance(wrong, InvalidCard) and "file name says elo 'low'" in wrong.reason
    odd = _check(GOOD, name="modelcard_mid_latest.json")
    assert isinstance(odd, InvalidCard) and "file name" in odd.reason


def test_diff_reports_added_removed_changed() -> None:
    """Changes compare file names and content hashes."""
    changes = diff_models({"a": "1", "b": "2", "c": "3"}, {"b": "2", "c": "9", "d": "4"})
    assert (changes.added, changes.removed, changes.changed) == (["d"], ["a"], ["c"])


def test_active_model_is_newest_by_timestamp_not_file_name(root: Path, settings: Settings) -> None:
    """The active card is the one with the newest timestamp even when its file name sorts first."""
    write_card(root, "low", "20251101_120000", timestamp="2025-10-01T00:00:00")
    write_card(root, "low", "20251001_120000", timestamp="2025-11-05T00:00:00", model_type="lgbm")
    write_card(root, "mid", "20251101_120000")
    outcome = refresh_registry(settings.layout, NOW, LOG)
    low = outcome.active["low"]
    assert low is not None and low.file == "modelcard_low_20251001_120000.json"
    assert outcome.active["high"] is None
    snapshot = json.loads(settings.layout.registry_file.read_text())
    assert snapshot["active"]["low"]["model_type"] == "lgbm"
    assert snapshot["active"]["high"] is None
    assert snapshot["generated_at"] == "2026-11-28T12:00:00+00:00"
    assert "low=lgbm@2025-11-05" in outcome.summary() and "high=none" in outcome.summary()


def test_invalid_card_is_listed_and_skipped_without_failing(root: Path, settings: Settings) -> None:
    """An invalid card appears in the snapshot with its reason; the valid ones are still registered."""
    write_card(root, "mid", "20251101_120000")
    write_card(root, "high", "20251101_120000", model_file="../../outside.pkl")
    outcome = refresh_registry(settings.layout, NOW, LOG)
    assert len(outcome.valid) == 1 and len(outcome.invalid) == 1
    snapshot = json.loads(settings.layout.registry_file.read_text())
    assert snapshot["invalid"][0]["file"] == "modelcard_high_20251101_120000.json"
    assert "bare file name" in snapshot["invalid"][0]["reason"]
    assert "1 invalid" in outcome.summary()


def test_changes_between_runs(root: Path, settings: Settings) -> None:
    """A second run reports new, removed and changed cards against the previous snapshot."""
    a = write_card(root, "mid", "20251101_120000")
    b = write_card(root, "low", "20251101_120000")
    first = refresh_registry(settings.layout, NOW, LOG)
    assert len(first.changes.added) == 2
    b.unlink()
    a.write_text(a.read_text().replace("0.8029", "0.8100"))
    write_card(root, "high", "20251101_120000")
    second = refresh_registry(settings.layout, NOW, LOG)
    assert second.changes.added == ["modelcard_high_20251101_120000.json"]
    assert second.changes.removed == ["modelcard_low_20251101_120000.json"]
    assert second.changes.changed == ["modelcard_mid_20251101_120000.json"]
    assert "(+1 new, -1 removed, 1 changed)" in second.summary()


def test_missing_models_directory_fails_clearly(root: Path, settings: Settings) -> None:
    """No modelcards directory is a clear InputError naming it."""
    (root / "ml_pipeline/models/modelcards").rmdir()
    with pytest.raises(InputError, match="modelcards does not exist"):
        refresh_registry(settings.layout, NOW, LOG)


def test_all_cards_invalid_keeps_previous_snapshot(root: Path, settings: Settings) -> None:
    """When every card is invalid the run fails and the previous snapshot is untouched."""
    card = write_card(root, "mid", "20251101_120000")
    refresh_registry(settings.layout, NOW, LOG)
    before = settings.layout.registry_file.read_bytes()
    card.write_text("{truncated")
    with pytest.raises(InputError, match=r"all 1 model cards .* are invalid"):
        refresh_registry(settings.layout, NOW, LOG)
    assert settings.layout.registry_file.read_bytes() == before


def test_symlinked_card_pointing_outside_root_is_refused(
    root: Path, settings: Settings, tmp_path: Path
) -> None:
    """A card that is a symlink to a file outside the root is not read."""
    write_card(root, "mid", "20251101_120000")
    outside = tmp_path / "secret.json"
    outside.write_text(json.dumps({**GOOD, "model_file": "x"}))
    os.symlink(outside, root / "ml_pipeline/models/modelcards/modelcard_low_20251101_120000.json")
    outcome = refresh_registry(settings.layout, NOW, LOG)
    assert [bad.reason for bad in outcome.invalid] == ["symlink pointing outside the deployment root"]


def test_artifact_symlink_pointing_outside_root_does_not_count(
    root: Path, settings: Settings, tmp_path: Path
) -> None:
    """An artifact that is a symlink leaving the root is treated as missing."""
    write_card(root, "mid", "20251101_120000")
    artifact = root / "ml_pipeline/models/trained/draft_mid_xgb_20251101_120000.pkl"
    artifact.unlink()
    (tmp_path / "elsewhere.pkl").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere.pkl", artifact)
    with pytest.raises(InputError, match="are invalid"):
        refresh_registry(settings.layout, NOW, LOG)


def test_shipped_sample_cards_are_all_valid() -> None:
    """The repository's sample cards validate: low, mid and high each get an active model."""
    from stratmancer_jobs.layout import Layout

    repo = Path(__file__).resolve().parent.parent
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(repo / "ml_pipeline" / "models", Path(tmp) / "ml_pipeline" / "models")
        outcome = refresh_registry(Layout(Path(tmp)), NOW, LOG)
    assert outcome.invalid == []
    assert all(outcome.active[elo] is not None for elo in ("low", "mid", "high"))
