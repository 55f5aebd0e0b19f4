"""The app's file-name rule, the pickle-header check and the served-versus-active report, asserted as
whole values (mutation testing, issue 15)."""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stratmancer_jobs.jobs.registry.cards import ValidCard
from stratmancer_jobs.jobs.registry.served import (
    HIGHEST_PICKLE_PROTOCOL,
    PICKLE_STOP,
    ServedChoice,
    ServedReport,
    artifact_problem,
    card_artifact_problem,
    pickle_header_problem,
    served_model,
    served_report,
)

PLAIN = "(predict.load_model reads with plain pickle.load)"
NO_STOP = "not a pickle: does not end with the STOP opcode (truncated or not a pickle)"


def test_constants() -> None:
    assert (HIGHEST_PICKLE_PROTOCOL, PICKLE_STOP) == (5, b".")


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"ZF\x00\x00", "joblib zlib-compressed"),
        (b"\x1f\x8b\x08", "gzip-compressed"),
        (b"BZh9", "bz2-compressed"),
        (b"\xfd7zXZ\x00\x00", "xz-compressed"),
        (b"]\x00\x00\x80", "lzma-compressed"),
        (b"\x04\x22\x4d\x18", "lz4-compressed"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
        (b"PK\x03\x04", "a zip archive"),
        (b"\x78\x01", "zlib-compressed"),
        (b"\x78\x5e", "zlib-compressed"),
        (b"\x78\x9c", "zlib-compressed"),
        (b"\x78\xda", "zlib-compressed"),
    ],
)
def test_compressed_containers_are_named(head: bytes, kind: str) -> None:
    assert pickle_header_problem(head, b".") == f"not a pickle: {kind} {PLAIN}"


@pytest.mark.parametrize(
    ("head", "last", "problem"),
    [
        (b"", b"", "empty (0 bytes)"),
        (b"", b".", "empty (0 bytes)"),
        (b"\x80", b".", "not a pickle: truncated after the protocol marker"),
        (b"\x80\x00", b".", "not a pickle: unknown pickle protocol 0"),
        (b"\x80\x01", b".", "not a pickle: unknown pickle protocol 1"),
        (b"\x80\x02", b".", None),
        (b"\x80\x04\x95", b".", None),
        (b"\x80\x05", b".", None),
        (b"\x80\x06", b".", "not a pickle: unknown pickle protocol 6"),
        (b"\x80\xff", b".", "not a pickle: unknown pickle protocol 255"),
        (b"\x80\x04", b"x", NO_STOP),
        (b"\x80\x04", b"", NO_STOP),
        (b"Z", b".", "not a pickle: starts with byte 0x5a"),
        (b"\x00", b".", "not a pickle: starts with byte 0x00"),
        (b"\x81\x04", b".", "not a pickle: starts with byte 0x81"),
        (b"{", b".", "not a pickle: starts with byte 0x7b"),
        (b"x\x00", b".", "not a pickle: starts with byte 0x78"),
        (b"]", b"x", NO_STOP),
        (b"]\x00\x01", b".", None),
        *((bytes([c]), b".", None) for c in b"(])}cNIJKLMFGSTUVX"),
    ],
)
def test_pickle_header_rule(head: bytes, last: bytes, problem: str | None) -> None:
    assert pickle_header_problem(head, last) == problem


def test_every_other_first_byte_is_refused() -> None:
    allowed = set(b"(])}cNIJKLMFGSTUVX") | {0x80}
    for byte in range(256):
        head = bytes([byte, 0x41])
        if byte in allowed:
            continue
        got = pickle_header_problem(head, b".")
        assert got is not None and got.startswith("not a pickle: "), (byte, got)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_artifact_problem_reads_only_head_and_last_byte(tmp_path: Path) -> None:
    assert artifact_problem(write(tmp_path / "ok.pkl", b"\x80\x04" + b"x" * 100 + b".")) is None
    assert artifact_problem(write(tmp_path / "one.pkl", b"N")) == NO_STOP
    assert artifact_problem(write(tmp_path / "dot.pkl", b".")) == "not a pickle: starts with byte 0x2e"
    # the head is 8 bytes: a 9th byte that would look compressed is not read as a magic
    assert artifact_problem(write(tmp_path / "long.pkl", b"\x80\x05" + b"\x00" * 6 + b"ZF.")) is None
    # last byte, not the 8th
    assert artifact_problem(write(tmp_path / "tail.pkl", b"\x80\x05......x")) == NO_STOP
    assert artifact_problem(write(tmp_path / "gz.pkl", b"\x1f\x8b" + b"\x00" * 20 + b".")) == (
        f"not a pickle: gzip-compressed {PLAIN}"
    )
    assert artifact_problem(write(tmp_path / "empty.pkl", b"")) == "empty (0 bytes)"
    assert artifact_problem(tmp_path / "missing.pkl") == "missing"


def test_artifact_problem_special_files(tmp_path: Path) -> None:
    (tmp_path / "dir.pkl").mkdir()
    assert artifact_problem(tmp_path / "dir.pkl") == "not a regular file: a directory"
    os.symlink(tmp_path / "dir.pkl", tmp_path / "linkdir.pkl")
    assert artifact_problem(tmp_path / "linkdir.pkl") == "not a regular file: a directory (through a symlink)"
    os.mkfifo(tmp_path / "fifo.pkl")
    assert artifact_problem(tmp_path / "fifo.pkl") == "not a regular file: a FIFO"
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.pkl")
    assert artifact_problem(tmp_path / "dangling.pkl") == "dangling symlink (its target does not exist)"
    os.symlink(tmp_path / "loop.pkl", tmp_path / "loop.pkl")
    assert artifact_problem(tmp_path / "loop.pkl") == "symlink loop"
    write(tmp_path / "good.pkl", b"\x80\x04N.")
    os.symlink(tmp_path / "good.pkl", tmp_path / "link.pkl")
    assert artifact_problem(tmp_path / "link.pkl") is None
    assert artifact_problem(Path("/dev/null")) == "not a regular file: a device"
    short = Path("/tmp") / f"mut-served-{os.getpid()}.sock"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(short))
        assert artifact_problem(short) == "not a regular file: a socket"
    finally:
        sock.close()
        short.unlink(missing_ok=True)
    (tmp_path / "file").write_bytes(b"N.")
    assert artifact_problem(tmp_path / "file" / "below.pkl") == "cannot inspect: Not a directory"


# --- the app's choice ----------------------------------------------------------------------------------


def test_served_model_no_model() -> None:
    choice = served_model(
        "mid", ["draft_low_xgb_20250101_000000.pkl", "draft_mid_x.pk", "xdraft_mid_a_b.pkl"]
    )
    assert choice == ServedChoice(
        "mid", None, None, None, None, "no draft_mid_*.pkl in the trained directory"
    )
    assert choice.card_file is None


def test_served_model_newest_by_file_name_and_its_calibrator() -> None:
    files = [
        "draft_mid_logreg_20251115_120000.pkl",
        "draft_mid_xgb_20251101_080000.pkl",
        "calibrator_mid_20251101_080000.pkl",
        "draft_mid_ab_20251201_000000.pkl",
        "draft_high_zz_20990101_000000.pkl",
    ]
    choice = served_model("mid", files)
    assert choice == ServedChoice(
        "mid",
        "draft_mid_xgb_20251101_080000.pkl",
        "calibrator_mid_20251101_080000.pkl",
        "20251101_080000",
        "xgb",
        None,
    )
    assert choice.card_file == "modelcard_mid_20251101_080000.json"
    without = served_model("high", files)
    assert without == ServedChoice(
        "high",
        "draft_high_zz_20990101_000000.pkl",
        "calibrator_high_20990101_000000.pkl",
        "20990101_000000",
        "zz",
        "calibrator calibrator_high_20990101_000000.pkl not found",
    )


def test_served_model_mimics_the_stem_split_of_odd_names() -> None:
    choice = served_model("low", ["draft_low_.pkl", "calibrator_low_low_.pkl"])
    assert choice == ServedChoice("low", "draft_low_.pkl", "calibrator_low_low_.pkl", "low_", "draft", None)
    multi = served_model("low", ["draft_low_a_b_c.tar.pkl"])
    assert multi == ServedChoice(
        "low",
        "draft_low_a_b_c.tar.pkl",
        "calibrator_low_b_c.tar.pkl",
        "b_c.tar",
        "a",
        "calibrator calibrator_low_b_c.tar.pkl not found",
    )


def card(elo: str, file: str, **fields: Any) -> ValidCard:
    return ValidCard(
        file=file, elo=elo, timestamp=datetime(2025, 11, 1, tzinfo=UTC), sha256="0" * 64, card=fields
    )


FILES = [
    "draft_low_xgb_20251101_000000.pkl",
    "calibrator_low_20251101_000000.pkl",
    "draft_mid_xgb_20251102_000000.pkl",
    "calibrator_mid_20251102_000000.pkl",
    "draft_mid_logreg_20251103_000000.pkl",
    "calibrator_mid_20251103_000000.pkl",
    "draft_high_xgb_20251104_000000.pkl",
]


def entry(
    model: str | None, calibrator: str | None, reason: str | None, card_file: str | None, matches: bool
) -> dict[str, Any]:
    return {
        "model_file": model,
        "calibrator_file": calibrator,
        "servable": reason is None,
        "reason": reason,
        "card": card_file,
        "matches_active": matches,
    }


def test_served_report_whole() -> None:
    active = {
        "low": card(
            "low", "modelcard_low_20251101_000000.json", model_file="draft_low_xgb_20251101_000000.pkl"
        ),
        "mid": card(
            "mid", "modelcard_mid_20251103_000000.json", model_file="draft_mid_logreg_20251103_000000.pkl"
        ),
    }
    report = served_report(
        FILES,
        active,
        {"calibrator_mid_20251102_000000.pkl": "empty (0 bytes)"},
        card_files=["modelcard_low_20251101_000000.json", "modelcard_mid_20251103_000000.json"],
    )
    assert report == ServedReport(
        served={
            "low": entry(
                "draft_low_xgb_20251101_000000.pkl",
                "calibrator_low_20251101_000000.pkl",
                None,
                "modelcard_low_20251101_000000.json",
                True,
            ),
            "mid": entry(
                "draft_mid_xgb_20251102_000000.pkl",
                "calibrator_mid_20251102_000000.pkl",
                "calibrator calibrator_mid_20251102_000000.pkl: empty (0 bytes)",
                None,
                False,
            ),
            "high": entry(
                "draft_high_xgb_20251104_000000.pkl",
                "calibrator_high_20251104_000000.pkl",
                "calibrator calibrator_high_20251104_000000.pkl not found",
                None,
                False,
            ),
        },
        warnings=[
            "mid: the app serves draft_mid_xgb_20251102_000000.pkl (newest draft_mid_*.pkl by file name), "
            "not the active card modelcard_mid_20251103_000000.json's draft_mid_logreg_20251103_000000.pkl",
            "mid: no servable model: calibrator calibrator_mid_20251102_000000.pkl: empty (0 bytes)",
            "high: the app serves draft_high_xgb_20251104_000000.pkl but no valid model card is active",
            "high: no servable model: calibrator calibrator_high_20251104_000000.pkl not found",
        ],
    )
    assert report.servable == {"low": True, "mid": False, "high": False}


def test_served_report_without_calibrators_required_and_a_bad_model() -> None:
    report = served_report(
        FILES,
        {"low": None},
        {"draft_low_xgb_20251101_000000.pkl": "missing", "calibrator_mid_20251102_000000.pkl": "missing"},
        require_calibrator=False,
        elos=("low", "mid", "high"),
    )
    assert report.served == {
        "low": entry(
            "draft_low_xgb_20251101_000000.pkl",
            "calibrator_low_20251101_000000.pkl",
            "model draft_low_xgb_20251101_000000.pkl: missing",
            None,
            False,
        ),
        "mid": entry(
            "draft_mid_xgb_20251102_000000.pkl", "calibrator_mid_20251102_000000.pkl", None, None, False
        ),
        "high": entry(
            "draft_high_xgb_20251104_000000.pkl", "calibrator_high_20251104_000000.pkl", None, None, False
        ),
    }
    assert report.warnings == [
        "low: the app serves draft_low_xgb_20251101_000000.pkl but no valid model card is active",
        "low: no servable model: model draft_low_xgb_20251101_000000.pkl: missing",
        "mid: the app serves draft_mid_xgb_20251102_000000.pkl but no valid model card is active",
        "high: the app serves draft_high_xgb_20251104_000000.pkl but no valid model card is active",
    ]
    assert report.servable == {"low": False, "mid": True, "high": True}


def test_served_report_no_model_and_an_active_card_without_model_file() -> None:
    report = served_report(
        [],
        {"mid": card("mid", "modelcard_mid_20251103_000000.json")},
        {},
        card_files=["modelcard_mid_20251103_000000.json"],
        elos=("mid",),
    )
    assert report == ServedReport(
        served={"mid": entry(None, None, "no draft_mid_*.pkl in the trained directory", None, False)},
        warnings=["mid: no servable model: no draft_mid_*.pkl in the trained directory"],
    )
    assert report.servable == {"mid": False}
    assert served_report([], {}, {}, elos=()) == ServedReport({}, [])


def test_served_report_card_needs_to_be_valid_and_to_pair() -> None:
    files = ["draft_low_a_20250101_000000.pkl", "calibrator_low_20250101_000000.pkl"]
    active = {
        "low": card("low", "modelcard_low_20250101_000000.json", model_file="draft_low_a_20250101_000000.pkl")
    }
    paired = served_report(
        files, active, {}, card_files=["modelcard_low_20250101_000000.json"], elos=("low",)
    )
    assert paired.served["low"] == entry(files[0], files[1], None, "modelcard_low_20250101_000000.json", True)
    assert paired.warnings == []
    unpaired = served_report(
        files, active, {}, card_files=["modelcard_low_20250101_000001.json"], elos=("low",)
    )
    assert unpaired.served["low"]["card"] is None
    # a calibrator problem while the calibrator is not listed: the name rule speaks first
    only_model = served_report(files[:1], active, {files[1]: "missing"}, elos=("low",))
    assert only_model.served["low"]["reason"] == "calibrator calibrator_low_20250101_000000.pkl not found"


def test_card_artifact_problem() -> None:
    good = card("mid", "c.json", model_file="m.pkl", calibrated=True, calibrator_file="c.pkl")
    assert card_artifact_problem(good, {}) is None
    assert (
        card_artifact_problem(good, {"m.pkl": "missing", "c.pkl": "empty"}) == "model_file 'm.pkl': missing"
    )
    assert (
        card_artifact_problem(good, {"c.pkl": "empty (0 bytes)"})
        == "calibrator_file 'c.pkl': empty (0 bytes)"
    )
    assert card_artifact_problem(good, {"c.pkl": "empty"}, require_calibrator=False) is None
    uncalibrated = "card has no calibrator (calibrated is not true) and registry.require_calibrator is on"
    for value in (False, None, 1, "true"):
        assert (
            card_artifact_problem(card("mid", "c", model_file="m.pkl", calibrated=value), {}) == uncalibrated
        )
    assert card_artifact_problem(card("mid", "c", model_file="m.pkl"), {}) == uncalibrated
    assert card_artifact_problem(card("mid", "c", calibrated=False), {}, require_calibrator=False) is None
    assert card_artifact_problem(card("mid", "c", model_file=5, calibrated=True), {5: "x"}) is None  # type: ignore[dict-item]
    assert card_artifact_problem(card("mid", "c", calibrated=True, calibrator_file=5), {5: "x"}) is None  # type: ignore[dict-item]
    assert card_artifact_problem(card("mid", "c", calibrated=True), {}) is None


# --- the rare branches: errors and files swapped between the checks (os calls faked for one path) -----


def test_kind_of_every_special_mode() -> None:
    from stratmancer_jobs.jobs.registry.served import _kind

    assert _kind(stat.S_IFDIR) == "a directory"
    assert _kind(stat.S_IFIFO) == "a FIFO"
    assert _kind(stat.S_IFSOCK) == "a socket"
    assert _kind(stat.S_IFCHR) == "a device"
    assert _kind(stat.S_IFBLK) == "a device"
    assert _kind(stat.S_IFLNK) == "a special file"
    assert _kind(0) == "a special file"


def failing(target: Path, real: Callable[..., Any], error: OSError) -> Callable[..., Any]:
    def fake(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path) == target:
            raise error
        return real(path, *args, **kwargs)

    return fake


@pytest.mark.parametrize("call", ["lstat", "stat"])
@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (PermissionError(), "PermissionError"),
    ],
)
def test_cannot_inspect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str, error: OSError, shown: str
) -> None:
    target = write(tmp_path / "m.pkl", b"\x80\x04N.")
    monkeypatch.setattr(os, call, failing(target, getattr(os, call), error))
    assert artifact_problem(target) == f"cannot inspect: {shown}"


@pytest.mark.parametrize(
    ("error", "shown"),
    [(OSError(errno.EACCES, "Permission denied"), "Permission denied"), (OSError(), "OSError")],
)
def test_unreadable_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, shown: str
) -> None:
    target = write(tmp_path / "m.pkl", b"\x80\x04N.")
    monkeypatch.setattr(os, "open", failing(target, os.open, error))
    assert artifact_problem(target) == f"unreadable: {shown}"


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (IsADirectoryError(), "IsADirectoryError"),
    ],
)
def test_unreadable_on_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, shown: str
) -> None:
    target = write(tmp_path / "m.pkl", b"\x80\x04N.")

    def pread(fd: int, n: int, offset: int) -> bytes:
        raise error

    monkeypatch.setattr(os, "pread", pread)
    assert artifact_problem(target) == f"unreadable: {shown}"


def test_the_file_is_opened_non_blocking_and_close_on_exec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = write(tmp_path / "m.pkl", b"\x80\x04N.")
    flags: list[int] = []
    real = os.open

    def spy(path: Any, flag: int, *args: Any) -> int:
        flags.append(flag)
        return real(path, flag, *args)

    monkeypatch.setattr(os, "open", spy)
    assert artifact_problem(target) is None
    assert flags == [os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC]


@pytest.mark.parametrize(
    ("mode", "size", "problem"),
    [
        (stat.S_IFIFO | 0o644, 4, "not a regular file: a FIFO"),
        (stat.S_IFDIR | 0o755, 4, "not a regular file: a directory"),
        (stat.S_IFREG | 0o644, 0, "empty (0 bytes)"),
    ],
)
def test_a_file_swapped_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, size: int, problem: str
) -> None:
    """What is opened is checked again: a file replaced between stat and open is judged as opened."""
    target = write(tmp_path / "m.pkl", b"\x80\x04N.")
    real = os.fstat

    def fstat(fd: int) -> os.stat_result:
        got = real(fd)
        return os.stat_result((mode, got.st_ino, got.st_dev, 1, 0, 0, size, 0, 0, 0))

    monkeypatch.setattr(os, "fstat", fstat)
    assert artifact_problem(target) == problem
