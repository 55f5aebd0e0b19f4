"""What the running StratMancer app would serve per elo, judged by the app's own rule.

StratMancer's ``ml_pipeline/models/predict.py`` does not read model cards or ``model_registry.json`` to
choose a model. ``load_model(elo_group)`` does, in this order::

    model_files = list(model_path.glob(f"draft_{elo_group}_*.pkl"))
    if not model_files: raise FileNotFoundError(f"No model found for ELO group: {elo_group}")
    latest_model = sorted(model_files)[-1]
    parts = latest_model.stem.split('_')
    timestamp = f"{parts[-2]}_{parts[-1]}"
    calibrator_file = model_path / f"calibrator_{elo_group}_{timestamp}.pkl"
    if not calibrator_file.exists(): raise FileNotFoundError(f"Calibrator not found: {calibrator_file}")
    model = pickle.load(...); calibrator = pickle.load(...)
    modelcard_file = modelcard_path / f"modelcard_{elo_group}_{timestamp}.json"   # optional

So the newest model by *file name* wins (``draft_mid_xgb_20251101`` sorts after
``draft_mid_logreg_20251115``: the model type ranks above the date), and the model is unusable without
``calibrator_{elo}_{timestamp}.pkl``. StratMancer's ``train.py`` writes both artifacts with plain
``pickle.dump`` (never joblib, never compressed) and the app reads them with ``pickle.load``.

Everything here is pure except ``artifact_problem``, which looks at one file (and never unpickles it).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratmancer_jobs.jobs.registry.cards import ELOS, ValidCard

# --- artifact checks -----------------------------------------------------------------------------------

HIGHEST_PICKLE_PROTOCOL = 5  # Python 3.8+ reads protocols 0..5; 5 is the highest that exists
PICKLE_STOP = b"."  # the STOP opcode: the last byte of every complete pickle.dump stream
# First opcodes with which a protocol 0/1 pickle of one object can begin: MARK, EMPTY_LIST/DICT/TUPLE,
# GLOBAL (any class instance), NONE, the int/long/float opcodes and the string opcodes.
_OLD_PROTOCOL_FIRST = frozenset(b"(])}cNIJKLMFGSTUVX")
# Magic numbers of compressed containers (joblib's compress=..., gzip, bz2, xz, lz4, zstd, zip):
# pickle.load cannot read any of them.
_COMPRESSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"ZF", "joblib zlib-compressed"),
    (b"\x1f\x8b", "gzip-compressed"),
    (b"BZh", "bz2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"]\x00\x00", "lzma-compressed"),
    (b"\x04\x22\x4d\x18", "lz4-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x78\x01", "zlib-compressed"),
    (b"\x78\x5e", "zlib-compressed"),
    (b"\x78\x9c", "zlib-compressed"),
    (b"\x78\xda", "zlib-compressed"),
)
_HEAD_BYTES = 8


def pickle_header_problem(head: bytes, last: bytes) -> str | None:
    """Why bytes starting with ``head`` and ending with ``last`` are not a pickle ``pickle.load`` reads.

    The rule (a sanity check of the bytes, not a proof; nothing is ever unpickled):

    * protocol 2..5: ``b"\\x80"`` followed by the protocol byte (what ``pickle.dump`` writes by default);
    * protocol 0/1: the first byte is an opcode a whole pickle can start with (``(``, ``]``, ``}``,
      ``)``, ``c``, ``N``, ``I``, ``J``, ``K``, ``L``, ``M``, ``F``, ``G``, ``S``, ``T``, ``U``, ``V``,
      ``X``);
    * and, whatever the protocol, the last byte is the STOP opcode ``.`` (a truncated file fails here).

    Compressed files (joblib ``compress=``, gzip, zlib, ...) are refused with their own reason:
    StratMancer loads with plain ``pickle.load``, which cannot read them. An uncompressed
    ``joblib.dump`` file is an ordinary pickle stream and passes.
    """
    if not head:
        return "empty (0 bytes)"
    for magic, kind in _COMPRESSED_MAGIC:
        if head.startswith(magic):
            return f"not a pickle: {kind} (predict.load_model reads with plain pickle.load)"
    if head[0] == 0x80:
        if len(head) < 2:
            return "not a pickle: truncated after the protocol marker"
        protocol = head[1]
        if not 2 <= protocol <= HIGHEST_PICKLE_PROTOCOL:
            return f"not a pickle: unknown pickle protocol {protocol}"
    elif head[0] not in _OLD_PROTOCOL_FIRST:
        return f"not a pickle: starts with byte 0x{head[0]:02x}"
    if last != PICKLE_STOP:
        return "not a pickle: does not end with the STOP opcode (truncated or not a pickle)"
    return None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def artifact_problem(path: Path) -> str | None:
    """Why ``path`` cannot be served (missing, empty, not a regular file, unreadable, not a pickle), or None.

    Symlinks are followed (the app opens them); a dangling one is reported as such. The file is opened
    non-blocking (a FIFO swapped in after the check cannot hang the job) and only its first few bytes
    and its last byte are read.
    """
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot inspect: {exc.strerror or type(exc).__name__}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "dangling symlink (its target does not exist)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        return f"cannot inspect: {exc.strerror or type(exc).__name__}"
    via = " (through a symlink)" if stat.S_ISLNK(link.st_mode) else ""
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file: {_kind(info.st_mode)}{via}"
    if info.st_size == 0:
        return "empty (0 bytes)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return f"unreadable: {exc.strerror or type(exc).__name__}"
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return f"not a regular file: {_kind(opened.st_mode)}{via}"
        if opened.st_size == 0:
            return "empty (0 bytes)"
        head = os.pread(fd, _HEAD_BYTES, 0)
        last = os.pread(fd, 1, opened.st_size - 1)
    except OSError as exc:
        return f"unreadable: {exc.strerror or type(exc).__name__}"
    finally:
        os.close(fd)
    return pickle_header_problem(head, last)


# --- the app's choice ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedChoice:
    """What ``predict.load_model(elo)`` would pick from a listing of the trained directory.

    ``model_file`` is None when no ``draft_{elo}_*.pkl`` exists; ``calibrator_file`` and ``timestamp``
    are derived from the model file name exactly as the app does; ``reason`` is why the app would raise
    (judged on names only: no model, or the calibrator is not in the listing), None otherwise.
    """

    elo: str
    model_file: str | None
    calibrator_file: str | None
    timestamp: str | None
    model_type: str | None
    reason: str | None

    @property
    def card_file(self) -> str | None:
        """The model card the app reads for this model (``modelcard_{elo}_{timestamp}.json``)."""
        return f"modelcard_{self.elo}_{self.timestamp}.json" if self.timestamp is not None else None


def _matches_glob(name: str, elo: str) -> bool:
    """``fnmatchcase(name, f"draft_{elo}_*.pkl")``: the prefix and suffix cannot overlap."""
    return name.startswith(f"draft_{elo}_") and name.endswith(".pkl")


def _stem(name: str) -> str:
    """``Path(name).stem``: the name without its last suffix."""
    return Path(name).stem


def served_model(elo: str, trained_files: Sequence[str]) -> ServedChoice:
    """Which model file and calibrator ``predict.load_model(elo)`` would load, from entry names alone.

    ``trained_files`` are the names of *every* entry of ``ml_pipeline/models/trained/`` (the app's glob
    also matches directories and dangling symlinks, which ``artifact_problem`` then reports).
    """
    candidates = sorted(name for name in trained_files if _matches_glob(name, elo))
    if not candidates:
        return ServedChoice(elo, None, None, None, None, f"no draft_{elo}_*.pkl in the trained directory")
    model_file = candidates[-1]
    parts = _stem(model_file).split("_")  # draft, elo, ... : always at least 3 parts
    timestamp = f"{parts[-2]}_{parts[-1]}"
    model_type = parts[-3]
    calibrator = f"calibrator_{elo}_{timestamp}.pkl"
    reason = None if calibrator in trained_files else f"calibrator {calibrator} not found"
    return ServedChoice(elo, model_file, calibrator, timestamp, model_type, reason)


# --- served versus active ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedReport:
    """Per-elo ``served`` entries for the registry snapshot, and the warnings to raise."""

    served: dict[str, dict[str, Any]]
    warnings: list[str]

    @property
    def servable(self) -> dict[str, bool]:
        """{elo: servable} (for the ``stratmancer_registry_servable{elo}`` gauge)."""
        return {elo: bool(entry["servable"]) for elo, entry in self.served.items()}


def _serving_problem(
    choice: ServedChoice, problems: Mapping[str, str], require_calibrator: bool
) -> str | None:
    if choice.model_file is None:
        return choice.reason
    model_problem = problems.get(choice.model_file)
    if model_problem is not None:
        return f"model {choice.model_file}: {model_problem}"
    if not require_calibrator or choice.calibrator_file is None:
        return None
    if choice.reason is not None:
        return choice.reason
    calibrator_problem = problems.get(choice.calibrator_file)
    if calibrator_problem is not None:
        return f"calibrator {choice.calibrator_file}: {calibrator_problem}"
    return None


def served_report(
    trained_files: Sequence[str],
    active: Mapping[str, ValidCard | None],
    problems: Mapping[str, str],
    *,
    card_files: Sequence[str] = (),
    require_calibrator: bool = True,
    elos: Sequence[str] = ELOS,
) -> ServedReport:
    """Compare what the app serves with the registry's ``active`` card, per elo.

    ``problems`` maps an artifact name to its ``artifact_problem`` (names absent from it are fine);
    ``card_files`` are the names of the *valid* cards, so that ``card`` names the card the app pairs
    with the served model (``modelcard_{elo}_{timestamp}.json``) when that card is valid, else None.
    With ``require_calibrator`` false a missing or bad calibrator does not make a model unservable.

    An entry is ``{"model_file", "calibrator_file", "servable", "reason", "card", "matches_active"}``;
    ``matches_active`` is true when the served model file is the active card's ``model_file``.
    Warnings: one per elo whose served model differs from the active card's, and one per elo with
    no servable model.
    """
    valid_cards = set(card_files)
    served: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for elo in elos:
        choice = served_model(elo, trained_files)
        reason = _serving_problem(choice, problems, require_calibrator)
        card = active.get(elo)
        active_model = card.card.get("model_file") if card is not None else None
        matches = choice.model_file is not None and choice.model_file == active_model
        card_file = choice.card_file
        served[elo] = {
            "model_file": choice.model_file,
            "calibrator_file": choice.calibrator_file,
            "servable": reason is None,
            "reason": reason,
            "card": card_file if card_file in valid_cards else None,
            "matches_active": matches,
        }
        if choice.model_file is not None and not matches:
            if card is None:
                warnings.append(
                    f"{elo}: the app serves {choice.model_file} but no valid model card is active"
                )
            else:
                warnings.append(
                    f"{elo}: the app serves {choice.model_file} (newest draft_{elo}_*.pkl by file name), "
                    f"not the active card {card.file}'s {active_model}"
                )
        if reason is not None:
            warnings.append(f"{elo}: no servable model: {reason}")
    return ServedReport(served, warnings)


def card_artifact_problem(
    card: ValidCard, problems: Mapping[str, str], *, require_calibrator: bool = True
) -> str | None:
    """Why a valid card's artifacts cannot be served (its model file, or its calibrator), or None.

    With ``require_calibrator`` a card that is not ``calibrated`` (no calibrator file) cannot be served,
    as ``predict.load_model`` refuses a model without ``calibrator_{elo}_{timestamp}.pkl``.
    """
    model_file = card.card.get("model_file")
    if isinstance(model_file, str) and model_file in problems:
        return f"model_file {model_file!r}: {problems[model_file]}"
    if not require_calibrator:
        return None
    if card.card.get("calibrated") is not True:
        return "card has no calibrator (calibrated is not true) and registry.require_calibrator is on"
    calibrator = card.card.get("calibrator_file")
    if isinstance(calibrator, str) and calibrator in problems:
        return f"calibrator_file {calibrator!r}: {problems[calibrator]}"
    return None
