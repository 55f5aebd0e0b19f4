"""The freshness checks end to end: the jobs record what they saw, `status` judges it."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from stratmancer_jobs.cli import app
from stratmancer_jobs.config import load_settings
from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.freshness import (
    GROUP_NAMES,
    TIER_NAMES,
    Check,
    FreshnessSettings,
    Observed,
    ServedModel,
    evaluate,
    patches_between,
    recent_patches,
)
from stratmancer_jobs.jobs.history.tiers import GROUPS, TIERS
from stratmancer_jobs.state import load_state
from tests.conftest import write_card
from tests.ddragon_server import DDragonServer, json_reply
from tests.history_fixtures import games, write_array

Invoke = Callable[..., Result]
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
# Data Dragon's order, newest first: 16.23 .. 16.1, then 15.24 .. 15.1
SEASONS = [f"16.{m}.1" for m in range(23, 0, -1)] + [f"15.{m}.1" for m in range(24, 0, -1)]


def checks(root: Path, job_id: str) -> dict[tuple[str, str], Check]:
    """The freshness checks of ``job_id``'s recorded inputs, judged now with the root's settings."""
    settings = load_settings(root, {})
    state = load_state(settings.layout.state_file)
    found = evaluate({j: r.inputs for j, r in state.jobs.items()}, settings.freshness, datetime.now(UTC))
    return {(c.check, c.subject): c for c in found if c.job_id == job_id}


def corpus(root: Path, newest: datetime) -> dict[str, int]:
    """GOLD and SILVER files whose newest match was created at ``newest`` (SILVER an hour earlier); the
    newest game_creation per tier, computed independently from the records written."""
    out: dict[str, int] = {}
    for tier, shift in (("GOLD", 0), ("SILVER", 3600)):
        records = games(tier[0], 20)
        for i, r in enumerate(records):
            r["game_creation"] = int((newest.timestamp() - shift - 600 * ((i * 3) % 20)) * 1000)
        write_array(root, tier, records)
        out[tier] = max(r["game_creation"] for r in records)
    return out


def test_data_age_recorded_with_the_run(cli: Invoke, root: Path) -> None:
    """Newest match 3 days old: an error naming the tier and the age; 6 hours old: ok; the figures
    equal the files' own newest game_creation."""
    now = datetime.now(UTC)
    newest = corpus(root, now - timedelta(days=3))
    assert cli("refresh-history").exit_code == 0
    found = checks(root, "refresh_history_index")
    assert found[("data_age", "GOLD")].state == "error"
    assert "data_age GOLD: error: newest match 3d 0h old" in found[("data_age", "GOLD")].line()
    assert found[("data_age", "SILVER")].reason.startswith("newest match 3d 1h old")
    for subject, tier in (("GOLD", "GOLD"), ("SILVER", "SILVER"), ("MID", "GOLD"), ("LOW", "SILVER")):
        figure = found[("data_age", subject)].figure
        assert figure is not None and abs(figure - (time.time() - newest[tier] / 1000)) < 30

    corpus(root, now - timedelta(hours=6))
    assert cli("refresh-history").exit_code == 0
    found = checks(root, "refresh_history_index")
    assert {c.state for c in found.values()} == {"ok"}
    assert cli("refresh-history").exit_code == 0  # unchanged: the last observation is kept
    assert checks(root, "refresh_history_index").keys() == found.keys()


def test_data_age_thresholds_and_overrides(root: Path) -> None:
    """Per-tier overrides and "off" change the verdict; a tier without game_creation is unknown."""
    (root / "config" / "jobs.toml").write_text(
        '[freshness]\ndata_warn_after = "90m"\ndata_error_after = "2d"\n'
        '[freshness.tiers.CHALLENGER]\ndata_warn_after = "3d"\ndata_error_after = "5d"\n'
        '[freshness.tiers.IRON]\ndata_warn_after = "off"\ndata_error_after = "off"\n'
    )
    settings = load_settings(root, {}).freshness
    ms = int((NOW - timedelta(days=4)).timestamp() * 1000)
    seen = Observed(newest_ms={"GOLD": ms, "CHALLENGER": ms, "IRON": ms, "HIGH": None})
    states = {c.subject: c.state for c in evaluate({"refresh_history_index": seen}, settings, NOW)}
    assert states == {"GOLD": "error", "CHALLENGER": "warn", "IRON": "ok", "HIGH": "unknown"}
    two_hours = Observed(newest_ms={"GOLD": int((NOW - timedelta(hours=2)).timestamp() * 1000)})
    assert [c.state for c in evaluate({"refresh_history_index": two_hours}, settings, NOW)] == ["warn"]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('data_warn_after = "12x"', "freshness.data_warn_after"),
        ('data_error_after = "0h"', "freshness.data_error_after"),
        ("data_warn_after = 12", "freshness.data_warn_after"),
        ('data_warn_after = "3d"\ndata_error_after = "1d"', "freshness.data_warn_after"),
        ("model_warn_patches_behind = 0", "freshness.model_warn_patches_behind"),
        ('model_error_patches_behind = "3"', "freshness.model_error_patches_behind"),
        ("model_warn_patches_behind = 4", "freshness.model_warn_patches_behind"),
        ("invalid_warn_ratio = 1.5", "freshness.invalid_warn_ratio"),
        ("invalid_warn_ratio = nan", "freshness.invalid_warn_ratio"),
        ('build_assets_command = "make assets"', "freshness.build_assets_command"),
        ("build_assets_command = []", "freshness.build_assets_command"),
        ("build_assets_timeout_seconds = 0", "freshness.build_assets_timeout_seconds"),
        ("data_max_age = 1", "freshness.data_max_age"),
        ('[freshness.tiers.GOLDEN]\ndata_warn_after = "1h"', "freshness.tiers.GOLDEN"),
        ('[freshness.tiers.GOLD]\nwarn = "1h"', "freshness.tiers.GOLD.warn"),
    ],
)
def test_bad_freshness_values_exit_2(cli: Invoke, root: Path, toml: str, key: str) -> None:
    """Every [freshness] key is validated: one line naming the key, exit 2."""
    (root / "config" / "jobs.toml").write_text(f"[freshness]\n{toml}\n")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(root, {})
    result = cli("status")
    assert result.exit_code == 2 and key in result.output


def test_override_names_agree_with_the_history_tiers() -> None:
    """The tier and group names the config accepts are refresh-history's."""
    assert TIER_NAMES == TIERS and tuple(GROUPS) == GROUP_NAMES


def test_patch_distance_by_version_order() -> None:
    """15.24 -> 16.1 is one patch with Data Dragon's order; without it only one season is counted."""
    order = recent_patches(["16.2.1", "16.1.1", "15.24.1", "15.23.1", "lolpatch_7.1", "15.24.2"])
    assert order == ("16.2", "16.1", "15.24", "15.23")
    assert patches_between("15.24", "16.1", order) == (1, True)
    assert patches_between("15.23", "16.2", order) == (3, True)
    assert patches_between("15.24", "16.1", ()) is None
    assert patches_between("16.1", "16.9", ()) == (8, True)
    assert patches_between("14.10", "16.1", order) == (3, False)
    assert patches_between("16.3", "16.2", order) == (0, True)


def test_model_drift_per_elo(cli: Invoke, root: Path, server: DDragonServer) -> None:
    """Cards from 15.21 and 16.21 with meta.json at 16.23 and the order 15.22..15.24, 16.1..16.23 known:
    the right count per elo (error, warn, ok), a served model without a card unknown."""
    (root / "config" / "jobs.toml").write_text(f'[patch]\nbase_url = "{server.base_url}"\n')
    server.script("/api/versions.json", json_reply(SEASONS))
    assert cli("refresh-patch").exit_code == 0, cli("status", "refresh-patch").output
    assert json.loads((root / "config" / "meta.json").read_text())["patch"] == "16.23"
    write_card(root, "low", "20251101_164011", source_patch="15.21")
    write_card(root, "mid", "20251201_164237", source_patch="16.21")
    write_card(root, "high", "20251130_220550", source_patch="16.23")
    trained = root / "ml_pipeline/models/trained"
    (trained / "draft_high_zz_20251201_000000.pkl").write_bytes(
        (trained / "draft_high_xgb_20251130_220550.pkl").read_bytes()
    )
    (trained / "calibrator_high_20251201_000000.pkl").write_bytes(b"x")
    assert cli("refresh-registry").exit_code in (0, 1)
    found = checks(root, "refresh_model_registry")
    drift = {subject: (c.state, c.figure) for (check, subject), c in found.items() if check == "model_patch"}
    # 15.21 -> 15.24 is 3, then 16.1 .. 16.23 is 23 more
    assert drift == {"low": ("error", 26.0), "mid": ("warn", 2.0), "high": ("unknown", None)}
    assert "26 patches behind" in found[("model_patch", "low")].reason


def test_model_drift_thresholds() -> None:
    """model_warn/error_patches_behind decide the state; "off" turns the check off."""
    seen = Observed(current_patch="16.3", models={"mid": ServedModel("c.json", "16.1")})
    versions = Observed(versions=("16.3", "16.2", "16.1"))
    jobs = {"refresh_model_registry": seen, "refresh_patch_meta": versions}
    assert evaluate(jobs, FreshnessSettings(), NOW)[0].state == "warn"
    strict = FreshnessSettings(model_warn_patches_behind=1, model_error_patches_behind=2)
    assert evaluate(jobs, strict, NOW)[0].state == "error"
    off = FreshnessSettings(model_warn_patches_behind=None, model_error_patches_behind=None)
    assert evaluate(jobs, off, NOW)[0].state == "ok"


RECORDER = """
import json, pathlib, sys
elo, patch = sys.argv[1], sys.argv[2]
log = pathlib.Path("builds.log")
log.write_text(log.read_text() + f"{elo} {patch}\\n" if log.exists() else f"{elo} {patch}\\n")
if pathlib.Path("fail_builds").exists():
    sys.exit("builder: no feature map")
assets = pathlib.Path("data/assets")
for name in (f"priors_{elo}_{patch}.json", f"matchups_{elo}_{patch}.npz", f"embeddings_{elo}.npy"):
    (assets / name).write_text("{}")
"""


def _assets_setup(root: Path, command: bool) -> None:
    (root / "config" / "meta.json").write_text(json.dumps({"patch": "15.20"}))
    assets = root / "data" / "assets"
    assets.mkdir(parents=True)
    for name in ("priors_mid_15.20.json", "matchups_mid_15.20.npz", "embeddings_mid.npy"):
        (assets / name).write_text("{}")
    write_card(root, "mid", "20251101_164237", feature_mode="rich")
    write_card(root, "low", "20251101_164011")  # basic: no assets needed
    if command:
        (root / "recorder.py").write_text(RECORDER)
        (root / "config" / "jobs.toml").write_text(
            f"[freshness]\nbuild_assets_command = [{json.dumps(sys.executable)}, "
            '"recorder.py", "{elo}", "{patch}"]\nbuild_assets_timeout_seconds = 60\n'
        )


def _assets_checks(root: Path) -> dict[str, Any]:
    found = checks(root, "refresh_model_registry")
    return {subject: c.as_json() for (check, subject), c in found.items() if check == "feature_assets"}


def test_rich_assets_warn_after_the_patch_moves(cli: Invoke, root: Path) -> None:
    """Assets for 15.20 only: fine at 15.20; at 16.23 a warning naming the files and the command;
    the warning clears once the files appear."""
    _assets_setup(root, command=False)
    assert cli("refresh-registry").exit_code == 0
    assert _assets_checks(root)["mid"]["state"] == "ok" and "low" not in _assets_checks(root)
    (root / "config" / "meta.json").write_text(json.dumps({"patch": "16.23"}))
    assert cli("refresh-registry").exit_code == 0
    check = _assets_checks(root)["mid"]
    assert check["state"] == "warn"
    assert "priors_mid_16.23.json, matchups_mid_16.23.npz missing" in check["reason"]
    assert "python -m ml_pipeline.features.build_assets --elo mid --patch 16.23" in check["reason"]
    for name in ("priors_mid_16.23.json", "matchups_mid_16.23.npz"):
        (root / "data" / "assets" / name).write_text("{}")
    assert cli("refresh-registry").exit_code == 0
    assert _assets_checks(root)["mid"]["state"] == "ok"


def test_build_command_runs_once_per_missing_elo_patch(cli: Invoke, root: Path) -> None:
    """A recording builder runs once for (mid, 16.23), its files clear the warning, later runs do not
    run it again; a failure is recorded and retried on the next run."""
    _assets_setup(root, command=True)
    (root / "config" / "meta.json").write_text(json.dumps({"patch": "16.23"}))
    (root / "fail_builds").write_text("")
    assert cli("refresh-registry").exit_code == 0
    assert (root / "builds.log").read_text() == "mid 16.23\n"
    check = _assets_checks(root)["mid"]
    assert check["state"] == "warn" and "failed: exit 1: builder: no feature map" in check["reason"]
    record = json.loads((root / "state" / "asset_builds.json").read_text())["mid 16.23"]
    assert record["status"] == "failed" and record["attempts"] == 1
    (root / "fail_builds").unlink()
    assert cli("refresh-registry").exit_code == 0
    assert (root / "builds.log").read_text() == "mid 16.23\nmid 16.23\n"
    assert _assets_checks(root)["mid"]["state"] == "ok"
    assert cli("refresh-registry").exit_code == 0
    assert (root / "builds.log").read_text() == "mid 16.23\nmid 16.23\n"
    (root / "config" / "meta.json").write_text(json.dumps({"patch": "16.24"}))
    assert cli("refresh-registry").exit_code == 0
    assert (root / "builds.log").read_text().splitlines()[-1] == "mid 16.24"
    assert json.loads((root / "state" / "asset_builds.json").read_text())["mid 16.24"]["status"] == "ok"


def test_collector_share_warns_with_enough_records() -> None:
    """Above invalid_warn_ratio with at least 100 records read: a warning naming the top reason."""
    from stratmancer_jobs.freshness import ReadShare

    seen = Observed(read={"GOLD": ReadShare(200, 30, "bad_picks"), "IRON": ReadShare(50, 40, "not_object")})
    checks = {c.subject: c for c in evaluate({"refresh_history_index": seen}, FreshnessSettings(), NOW)}
    assert checks["GOLD"].state == "warn" and "most: bad_picks" in checks["GOLD"].reason
    assert checks["GOLD"].figure == 0.15
    assert checks["IRON"].state == "ok"
    assert (
        evaluate({"refresh_history_index": seen}, FreshnessSettings(invalid_warn_ratio=0.2), NOW)[0].state
        == "ok"
    )


def test_observed_round_trips_and_tolerates_garbage() -> None:
    """What a job saw survives the state file; a damaged value is left out, never an error."""
    from stratmancer_jobs.freshness import AssetsState, ReadShare

    seen = Observed(
        newest_ms={"GOLD": 5, "HIGH": None},
        read={"GOLD": ReadShare(1, 0, None)},
        current_patch="16.23",
        models={"mid": ServedModel("m.json", "16.1"), "low": None},
        assets={"mid": AssetsState("16.23", ("a",), "cmd", None)},
        versions=("16.23", "16.22"),
    )
    assert Observed.from_json(json.loads(json.dumps(seen.to_json()))) == seen
    assert Observed.from_json([1]) is None
    odd = Observed.from_json({"newest_game_creation_ms": {"GOLD": "x"}, "read": {"GOLD": [1]}, "versions": 3})
    assert odd == Observed()


def test_shipped_sample_is_not_critical(tmp_path: Path) -> None:
    """The shipped sample (frozen October 2025 data, 15.21 cards) with its own config/jobs.toml: the
    data-age and drift checks are off, so its jobs' checks never fail `status --check`."""
    from tests.conftest import REPO

    sample = tmp_path / "sample"
    for part in ("data/processed", "ml_pipeline/models", "config/jobs.toml"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, sample / part)
        else:
            (sample / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, sample / part)
    (sample / "config" / "meta.json").write_text(json.dumps({"patch": "16.23"}))

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, ["--root", str(sample), *args])

    assert invoke("refresh-history").exit_code == 0
    assert invoke("refresh-registry").exit_code in (0, 1)
    shown = [
        c for job in ("refresh_history_index", "refresh_model_registry") for c in checks(sample, job).values()
    ]
    assert {c.check for c in shown} >= {"data_age", "model_patch"}
    assert all(c.state in ("ok", "unknown") for c in shown if c.check in ("data_age", "model_patch"))
    assert any("(check off)" in c.reason for c in shown if c.check == "data_age")
