"""Tests for ``registry.served``: the app's file-name rule, artifact checks and served-versus-active."""

from __future__ import annotations

import json
import os
import pickle
import socket
import zlib
from pathlib import Path
from typing import Any

import pytest

from stratmancer_jobs.jobs.registry.cards import ValidCard, pick_active, validate_card
from stratmancer_jobs.jobs.registry.served import (
    ServedChoice,
    artifact_problem,
    card_artifact_problem,
    pickle_header_problem,
    served_model,
    served_report,
)
from tests.history_fixtures import permissions_enforced

REPO = Path(__file__).resolve().parent.parent
SAMPLE_MODELS = REPO / "ml_pipeline" / "models"


def _sample() -> tuple[list[str], list[ValidCard], dict[str, str]]:
    """The shipped sample: trained entry names, valid cards, and artifact problems (none expected)."""
    trained = SAMPLE_MODELS / "trained"
    names = sorted(os.listdir(trained))
    artifacts = frozenset(names)
    cards: list[ValidCard] = []
    for path in sorted((SAMPLE_MODELS / "modelcards").iterdir()):
        result = validate_card(path.name, path.read_bytes(), artifacts)
        assert isinstance(result, ValidCard), result
        cards.append(result)
    problems = {name: p for name in names if (p := artifact_problem(trained / name)) is not None}
    return names, cards, problems


def _card(tmp_path: Path, elo: str, model_file: str, stamp: str, *, calibrated: bool = True) -> ValidCard:
    """A valid card naming ``model_file`` (and its calibrator when ``calibrated``)."""
    body: dict[str, Any] = {
        "elo": elo,
        "model_type": model_file.split("_")[2],
        "timestamp": f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}",
        "calibrated": calibrated,
        "model_file": model_file,
    }
    if calibrated:
        body["calibrator_file"] = f"calibrator_{elo}_{stamp}.pkl"
    artifacts = frozenset({model_file, f"calibrator_{elo}_{stamp}.pkl"})
    result = validate_card(f"modelcard_{elo}_{stamp}.json", json.dumps(body).encode(), artifacts)
    assert isinstance(result, ValidCard), result
    return result


def test_sample_artifacts_all_pass_the_pickle_check() -> None:
    """Every artifact shipped in the sample is a regular, non-empty file with a pickle header and STOP."""
    names, _, problems = _sample()
    assert len(names) == 7
    assert problems == {}


def test_sample_high_model_has_no_calibrator() -> None:
    """The sample's high model is what the app loads and it has no calibrator: not servable, one warning."""
    names, cards, problems = _sample()
    report = served_report(names, pick_active(cards), problems, card_files=[c.file for c in cards])
    assert report.served == {
        "low": {
            "model_file": "draft_low_xgb_20251101_164011.pkl",
            "calibrator_file": "calibrator_low_20251101_164011.pkl",
            "servable": True,
            "reason": None,
            "card": "modelcard_low_20251101_164011.json",
            "matches_active": True,
        },
        "mid": {
            "model_file": "draft_mid_xgb_20251101_164237.pkl",
            "calibrator_file": "calibrator_mid_20251101_164237.pkl",
            "servable": True,
            "reason": None,
            "card": "modelcard_mid_20251101_164237.json",
            "matches_active": True,
        },
        "high": {
            "model_file": "draft_high_logreg_20251030_220550.pkl",
            "calibrator_file": "calibrator_high_20251030_220550.pkl",
            "servable": False,
            "reason": "calibrator calibrator_high_20251030_220550.pkl not found",
            "card": "modelcard_high_20251030_220550.json",
            "matches_active": True,
        },
    }
    assert report.warnings == [
        "high: no servable model: calibrator calibrator_high_20251030_220550.pkl not found"
    ]
    assert report.servable == {"low": True, "mid": True, "high": False}


def test_sample_high_servable_when_calibrator_not_required() -> None:
    """With require_calibrator off the sample's high model counts as servable and nothing is warned."""
    names, cards, problems = _sample()
    report = served_report(
        names, pick_active(cards), problems, card_files=[c.file for c in cards], require_calibrator=False
    )
    assert report.served["high"] == {
        "model_file": "draft_high_logreg_20251030_220550.pkl",
        "calibrator_file": "calibrator_high_20251030_220550.pkl",
        "servable": True,
        "reason": None,
        "card": "modelcard_high_20251030_220550.json",
        "matches_active": True,
    }
    assert report.warnings == []


def test_sample_high_card_is_reported_unservable() -> None:
    """The sample's high card (calibrated false) cannot be served when a calibrator is required."""
    _, cards, problems = _sample()
    high = next(c for c in cards if c.elo == "high")
    assert card_artifact_problem(high, problems) == (
        "card has no calibrator (calibrated is not true) and registry.require_calibrator is on"
    )
    assert card_artifact_problem(high, problems, require_calibrator=False) is None


def test_served_model_file_name_order_ranks_type_above_date() -> None:
    """``draft_mid_xgb_20251101`` sorts after the newer ``draft_mid_logreg_20251115``: the app loads xgb."""
    files = [
        "draft_mid_logreg_20251115_090000.pkl",
        "calibrator_mid_20251115_090000.pkl",
        "draft_mid_xgb_20251101_164237.pkl",
        "calibrator_mid_20251101_164237.pkl",
        "draft_low_xgb_20251201_000000.pkl",
    ]
    assert served_model("mid", files) == ServedChoice(
        elo="mid",
        model_file="draft_mid_xgb_20251101_164237.pkl",
        calibrator_file="calibrator_mid_20251101_164237.pkl",
        timestamp="20251101_164237",
        model_type="xgb",
        reason=None,
    )


def test_newer_logreg_active_but_older_xgb_served(tmp_path: Path) -> None:
    """The registry's active (newest card) differs from what the app loads: warned, matches_active false."""
    xgb = _card(tmp_path, "mid", "draft_mid_xgb_20251101_164237.pkl", "20251101_164237")
    logreg = _card(tmp_path, "mid", "draft_mid_logreg_20251115_090000.pkl", "20251115_090000")
    files = [
        "draft_mid_logreg_20251115_090000.pkl",
        "calibrator_mid_20251115_090000.pkl",
        "draft_mid_xgb_20251101_164237.pkl",
        "calibrator_mid_20251101_164237.pkl",
    ]
    active = pick_active([xgb, logreg])
    assert active["mid"] is logreg
    report = served_report(files, active, {}, card_files=[xgb.file, logreg.file], elos=("mid",))
    assert report.served == {
        "mid": {
            "model_file": "draft_mid_xgb_20251101_164237.pkl",
            "calibrator_file": "calibrator_mid_20251101_164237.pkl",
            "servable": True,
            "reason": None,
            "card": "modelcard_mid_20251101_164237.json",
            "matches_active": False,
        }
    }
    assert report.warnings == [
        "mid: the app serves draft_mid_xgb_20251101_164237.pkl (newest draft_mid_*.pkl by file name), "
        "not the active card modelcard_mid_20251115_090000.json's draft_mid_logreg_20251115_090000.pkl"
    ]


def test_no_model_for_an_elo() -> None:
    """An elo without any draft_{elo}_*.pkl has no served model, no card and one warning."""
    report = served_report(["calibrator_low_20251101_000000.pkl"], {"low": None}, {}, elos=("low",))
    assert report.served == {
        "low": {
            "model_file": None,
            "calibrator_file": None,
            "servable": False,
            "reason": "no draft_low_*.pkl in the trained directory",
            "card": None,
            "matches_active": False,
        }
    }
    assert report.warnings == ["low: no servable model: no draft_low_*.pkl in the trained directory"]


def test_served_model_without_an_active_card() -> None:
    """A served model with no active card is flagged as differing; the app's card name is not valid here."""
    files = ["draft_high_xgb_20251101_000000.pkl", "calibrator_high_20251101_000000.pkl"]
    report = served_report(files, {"high": None}, {}, elos=("high",))
    assert report.served["high"] == {
        "model_file": "draft_high_xgb_20251101_000000.pkl",
        "calibrator_file": "calibrator_high_20251101_000000.pkl",
        "servable": True,
        "reason": None,
        "card": None,
        "matches_active": False,
    }
    assert report.warnings == [
        "high: the app serves draft_high_xgb_20251101_000000.pkl but no valid model card is active"
    ]


def test_broken_model_and_calibrator_files_are_reasons() -> None:
    """Artifact problems of the served model, then of its calibrator, become the entry's reason."""
    files = ["draft_low_xgb_20251101_000000.pkl", "calibrator_low_20251101_000000.pkl"]
    both = {"draft_low_xgb_20251101_000000.pkl": "empty (0 bytes)", "calibrator_low_20251101_000000.pkl": "x"}
    report = served_report(files, {}, both, elos=("low",))
    assert report.served["low"]["reason"] == "model draft_low_xgb_20251101_000000.pkl: empty (0 bytes)"
    only_calibrator = {"calibrator_low_20251101_000000.pkl": "not a pickle: starts with byte 0x7b"}
    report = served_report(files, {}, only_calibrator, elos=("low",))
    assert report.served["low"]["reason"] == (
        "calibrator calibrator_low_20251101_000000.pkl: not a pickle: starts with byte 0x7b"
    )
    relaxed = served_report(files, {}, only_calibrator, elos=("low",), require_calibrator=False)
    assert relaxed.served["low"]["servable"] is True


def test_served_model_mimics_glob_and_stem_split() -> None:
    """Names the glob would match but that do not look like train.py's are handled as the app does."""
    assert served_model("mid", ["draft_mid_.pkl"]) == ServedChoice(
        "mid",
        "draft_mid_.pkl",
        "calibrator_mid_mid_.pkl",
        "mid_",
        "draft",
        "calibrator calibrator_mid_mid_.pkl not found",
    )
    assert served_model("mid", ["draft_middle_xgb_1_2.pkl", "draft_mid_xgb_1_2.pkl.bak"]).model_file is None
    assert served_model("low", ["draft_low_a_b_c.pkl", "calibrator_low_b_c.pkl"]).reason is None


def test_card_artifact_problem_model_and_calibrator(tmp_path: Path) -> None:
    """A card's own model file or calibrator problem is reported with the field's name."""
    card = _card(tmp_path, "low", "draft_low_xgb_20251101_000000.pkl", "20251101_000000")
    assert card_artifact_problem(card, {}) is None
    assert card_artifact_problem(card, {"draft_low_xgb_20251101_000000.pkl": "missing"}) == (
        "model_file 'draft_low_xgb_20251101_000000.pkl': missing"
    )
    assert card_artifact_problem(card, {"calibrator_low_20251101_000000.pkl": "empty (0 bytes)"}) == (
        "calibrator_file 'calibrator_low_20251101_000000.pkl': empty (0 bytes)"
    )


# --- artifact_problem with real files ------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is missing."""
    assert artifact_problem(tmp_path / "draft_low_xgb_1_2.pkl") == "missing"


def test_empty_file(tmp_path: Path) -> None:
    """A zero-byte file is empty."""
    path = tmp_path / "a.pkl"
    path.write_bytes(b"")
    assert artifact_problem(path) == "empty (0 bytes)"


def test_directory(tmp_path: Path) -> None:
    """A directory is not a regular file."""
    path = tmp_path / "a.pkl"
    path.mkdir()
    assert artifact_problem(path) == "not a regular file: a directory"


def test_dangling_symlink(tmp_path: Path) -> None:
    """A symlink to nothing is reported as dangling (the app's ``exists()`` is false for it)."""
    path = tmp_path / "a.pkl"
    path.symlink_to(tmp_path / "gone.pkl")
    assert artifact_problem(path) == "dangling symlink (its target does not exist)"


def test_symlink_loop(tmp_path: Path) -> None:
    """A symlink pointing at itself is a loop."""
    path = tmp_path / "a.pkl"
    path.symlink_to(path)
    assert artifact_problem(path) == "symlink loop"


def test_symlink_to_good_pickle_is_fine(tmp_path: Path) -> None:
    """A symlink to a real pickle is followed and accepted, as the app would open it."""
    target = tmp_path / "real.pkl"
    target.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    path = tmp_path / "a.pkl"
    path.symlink_to(target)
    assert artifact_problem(path) is None


def test_symlink_to_directory(tmp_path: Path) -> None:
    """A symlink to a directory is not a regular file, and says it came through a symlink."""
    (tmp_path / "d").mkdir()
    path = tmp_path / "a.pkl"
    path.symlink_to(tmp_path / "d")
    assert artifact_problem(path) == "not a regular file: a directory (through a symlink)"


def test_fifo_does_not_block(tmp_path: Path) -> None:
    """A FIFO is refused without opening it (opening would block with no writer)."""
    path = tmp_path / "a.pkl"
    os.mkfifo(path)
    assert artifact_problem(path) == "not a regular file: a FIFO"


def test_socket(tmp_path: Path) -> None:
    """A Unix socket is not a regular file."""
    path = tmp_path / "s.pkl"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        assert artifact_problem(path) == "not a regular file: a socket"


def test_unreadable_file(tmp_path: Path) -> None:
    """A file without read permission is unreadable (as root too: this thread's override is dropped)."""
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps(1))
    path.chmod(0)
    try:
        with permissions_enforced():
            assert artifact_problem(path) == "unreadable: Permission denied"
    finally:
        path.chmod(0o600)


def test_text_file(tmp_path: Path) -> None:
    """A text file (an HTML error page) is not a pickle."""
    path = tmp_path / "a.pkl"
    path.write_text("<html>404</html>\n", encoding="utf-8")
    assert artifact_problem(path) == "not a pickle: starts with byte 0x3c"


def test_json_file(tmp_path: Path) -> None:
    """A JSON object is not a pickle."""
    path = tmp_path / "a.pkl"
    path.write_text('{"model": 1}', encoding="utf-8")
    assert artifact_problem(path) == "not a pickle: starts with byte 0x7b"


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize(
    "value",
    [None, 7, 2**70, 1.5, "text", b"raw", [1, 2], {"a": (1, 2)}, (), ValueError("x")],
    ids=lambda v: type(v).__name__,
)
def test_real_pickles_of_every_protocol(tmp_path: Path, protocol: int, value: object) -> None:
    """``pickle.dumps`` output of every protocol and common top-level types passes the check."""
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    assert artifact_problem(path) is None


def test_pickle_dump_default_protocol_to_file(tmp_path: Path) -> None:
    """What StratMancer's train.py does (``pickle.dump(obj, fh)``, default protocol) passes."""
    path = tmp_path / "calibrator_low_20251101_000000.pkl"
    with path.open("wb") as handle:
        pickle.dump(({"thresholds": [0.1, 0.9]}, "isotonic"), handle)
    assert artifact_problem(path) is None


def test_truncated_pickle(tmp_path: Path) -> None:
    """A pickle cut short (no STOP opcode at the end) is refused."""
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps(list(range(100)), protocol=4)[:-5])
    assert (
        artifact_problem(path)
        == "not a pickle: does not end with the STOP opcode (truncated or not a pickle)"
    )


def test_unknown_protocol(tmp_path: Path) -> None:
    """A protocol marker with an unknown protocol number is refused."""
    path = tmp_path / "a.pkl"
    path.write_bytes(b"\x80\x09N.")
    assert artifact_problem(path) == "not a pickle: unknown pickle protocol 9"


def test_zlib_compressed_pickle(tmp_path: Path) -> None:
    """A zlib-compressed pickle (as joblib's compress= may write) cannot be read by pickle.load."""
    path = tmp_path / "a.pkl"
    path.write_bytes(zlib.compress(pickle.dumps({"a": 1})))
    assert artifact_problem(path) == (
        "not a pickle: zlib-compressed (predict.load_model reads with plain pickle.load)"
    )


def test_joblib_zlib_container(tmp_path: Path) -> None:
    """joblib's own zlib container (``ZF`` header) is refused with its name."""
    path = tmp_path / "a.pkl"
    path.write_bytes(b"ZF0x00000010" + zlib.compress(pickle.dumps(1)))
    assert artifact_problem(path) == (
        "not a pickle: joblib zlib-compressed (predict.load_model reads with plain pickle.load)"
    )


def test_gzip_pickle(tmp_path: Path) -> None:
    """A gzip file is refused as gzip-compressed."""
    import gzip

    path = tmp_path / "a.pkl"
    path.write_bytes(gzip.compress(pickle.dumps(1)))
    assert artifact_problem(path) == (
        "not a pickle: gzip-compressed (predict.load_model reads with plain pickle.load)"
    )


def test_pickle_header_problem_edges() -> None:
    """The pure header rule: empty, a lone protocol marker, and a one-byte STOP-terminated pickle."""
    assert pickle_header_problem(b"", b"") == "empty (0 bytes)"
    assert pickle_header_problem(b"\x80", b"\x80") == "not a pickle: truncated after the protocol marker"
    assert pickle_header_problem(b"N.", b".") is None
    assert pickle_header_problem(b"\x80\x01N.", b".") == "not a pickle: unknown pickle protocol 1"
