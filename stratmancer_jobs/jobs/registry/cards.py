"""Pure model-card validation: bytes in, a ValidCard or the reason it is invalid out."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ELOS = ("low", "mid", "high")
CARD_NAME_RE = re.compile(r"^modelcard_(low|mid|high)_(\d{8}_\d{6})\.json$")
MAX_CARD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ValidCard:
    file: str
    elo: str
    timestamp: datetime
    sha256: str
    card: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """What the registry lists for a card: the key facts plus the whole card (extra fields kept)."""
        c = self.card
        return {
            "file": self.file,
            "elo": self.elo,
            "model_type": c.get("model_type"),
            "timestamp": c.get("timestamp"),
            "source_patch": c.get("source_patch"),
            "model_file": c.get("model_file"),
            "calibrator_file": c.get("calibrator_file") if c.get("calibrated") is True else None,
            "sha256": self.sha256,
            "card": c,
        }


MAX_REASON_CHARS = (
    200  # a reason may echo a hostile value (a 10 KB timestamp): logs and the registry get this much
)


@dataclass(frozen=True)
class InvalidCard:
    """A card that cannot be listed (or served), and why; the reason is cut to MAX_REASON_CHARS."""

    file: str
    reason: str

    def __post_init__(self) -> None:
        if len(self.reason) > MAX_REASON_CHARS:
            object.__setattr__(self, "reason", self.reason[: MAX_REASON_CHARS - 1] + "…")


def _bare_name(value: object, field: str) -> str:
    """A plain file name inside the trained directory; anything path-like is refused."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty file name")
    if "/" in value or "\\" in value or value in (".", "..") or ".." in value or "\x00" in value:
        raise ValueError(f"{field} {value!r} must be a bare file name (no path separators or '..')")
    return value


def _parse_timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("timestamp must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"timestamp {value!r} is not ISO 8601") from None
    # StratMancer writes naive timestamps; read them as UTC so every card compares on one clock
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_fields(card: dict[str, Any], artifacts: frozenset[str]) -> tuple[str, datetime]:
    elo = card.get("elo")
    if elo not in ELOS:
        raise ValueError(f"elo {elo!r} is not one of {', '.join(ELOS)}")
    timestamp = _parse_timestamp(card.get("timestamp"))
    model_file = _bare_name(card.get("model_file"), "model_file")
    if model_file not in artifacts:
        raise ValueError(f"model_file {model_file!r} not found in ml_pipeline/models/trained/")
    calibrated = card.get("calibrated", False)
    if not isinstance(calibrated, bool):
        raise ValueError("calibrated must be true or false")
    if calibrated:
        calibrator = _bare_name(card.get("calibrator_file"), "calibrator_file")
        if calibrator not in artifacts:
            raise ValueError(f"calibrator_file {calibrator!r} not found in ml_pipeline/models/trained/")
    metrics = card.get("metrics", {})
    if not isinstance(metrics, dict):
        raise ValueError("metrics must be an object")
    for name, value in metrics.items():
        if not _is_number(value):
            raise ValueError(f"metric {name!r} is not a finite number: {value!r}"[:200])
    for name in ("features", "train_size", "test_size"):
        if name in card and not (_is_number(card[name]) and card[name] >= 0):
            raise ValueError(f"{name} must be a non-negative number")
    return str(elo), timestamp


def _non_finite(card: dict[str, Any]) -> str | None:
    """The path of the first NaN/Infinity anywhere in the card (iterative: cards may nest deeply)."""
    stack: list[tuple[str, Any]] = [("card", card)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path
        if isinstance(value, dict):
            stack.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


def validate_card(file: str, raw: bytes, artifacts: frozenset[str]) -> ValidCard | InvalidCard:
    """Validate one card file's bytes against the set of artifact names present in trained/."""
    name_match = CARD_NAME_RE.match(file)
    if name_match is None:
        return InvalidCard(file, "file name is not modelcard_{low|mid|high}_{YYYYmmdd_HHMMSS}.json")
    if len(raw) > MAX_CARD_BYTES:
        return InvalidCard(file, f"card is larger than {MAX_CARD_BYTES} bytes")
    try:
        card = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return InvalidCard(file, "not UTF-8 text")
    except RecursionError:
        return InvalidCard(file, "JSON nested too deeply")
    except json.JSONDecodeError as exc:
        return InvalidCard(file, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except ValueError as exc:  # an int of thousands of digits (Python's int-size limit)
        return InvalidCard(file, f"not valid JSON: {str(exc)[:120]}")
    if not isinstance(card, dict):
        return InvalidCard(file, f"card must be a JSON object, got {type(card).__name__}")
    try:
        elo, timestamp = _check_fields(card, artifacts)
    except ValueError as exc:
        return InvalidCard(file, str(exc))
    where = _non_finite(card)
    if where is not None:  # json.loads accepts them, but the registry is strict JSON
        return InvalidCard(file, f"{where} is NaN or Infinity, which is not valid JSON")
    if elo != name_match.group(1):
        return InvalidCard(file, f"file name says elo {name_match.group(1)!r} but the card says {elo!r}")
    return ValidCard(file, elo, timestamp, hashlib.sha256(raw).hexdigest(), card)


def pick_active(cards: list[ValidCard]) -> dict[str, ValidCard | None]:
    """The newest card by ``timestamp`` per elo (ties broken by file name), None where there is none."""
    active: dict[str, ValidCard | None] = dict.fromkeys(ELOS)
    for card in cards:
        best = active[card.elo]
        if best is None or (card.timestamp, card.file) > (best.timestamp, best.file):
            active[card.elo] = card
    return active


@dataclass(frozen=True)
class Changes:
    added: list[str]
    removed: list[str]
    changed: list[str]


def diff_models(previous: dict[str, str], current: dict[str, str]) -> Changes:
    """Compare {file: sha256} maps of the previous snapshot and now."""
    return Changes(
        added=sorted(set(current) - set(previous)),
        removed=sorted(set(previous) - set(current)),
        changed=sorted(f for f in set(current) & set(previous) if current[f] != previous[f]),
    )
