"""cards.py's exact values: whole ValidCards and summaries, every reason verbatim, limits, pick_active."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from stratmancer_jobs.jobs.registry.cards import (
    CARD_NAME_RE,
    ELOS,
    MAX_CARD_BYTES,
    Changes,
    InvalidCard,
    ValidCard,
    diff_models,
    pick_active,
    validate_card,
)

ARTIFACTS = frozenset({"m.pkl", "c.pkl"})
NAME = "modelcard_mid_20251101_164237.json"
BASE: dict[str, Any] = {"elo": "mid", "timestamp": "2025-11-01T16:42:37", "model_file": "m.pkl"}


def check(card: dict[str, Any]) -> ValidCard | InvalidCard:
    """Validate a card dict written as JSON under NAME."""
    return validate_card(NAME, json.dumps(card).encode(), ARTIFACTS)


def reason(card: dict[str, Any]) -> str:
    """The reason a card dict is invalid (fails the test when it is valid)."""
    result = check(card)
    assert isinstance(result, InvalidCard), result
    assert result.file == NAME
    return result.reason


def test_constants() -> None:
    """The elos and the 1 MiB size limit."""
    assert ELOS == ("low", "mid", "high")
    assert MAX_CARD_BYTES == 1048576


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("modelcard_low_20251101_164237.json", True),
        ("modelcard_high_20251101_164237.json", True),
        ("modelcard_gold_20251101_164237.json", False),
        ("xmodelcard_low_20251101_164237.json", False),
        ("modelcard_low_20251101_164237.json.bak", False),
        ("modelcard_low_2025110_164237.json", False),
        ("modelcard_low_20251101_164237xjson", False),
    ],
)
def test_card_name_pattern(name: str, ok: bool) -> None:
    """Only modelcard_{elo}_{8 digits}_{6 digits}.json names match."""
    assert (CARD_NAME_RE.match(name) is not None) is ok


def test_minimal_card_is_a_whole_valid_card() -> None:
    """A card with only elo, timestamp and model_file is valid; the naive timestamp is read as UTC."""
    raw = json.dumps(BASE).encode()
    assert validate_card(NAME, raw, ARTIFACTS) == ValidCard(
        file=NAME,
        elo="mid",
        timestamp=datetime(2025, 11, 1, 16, 42, 37, tzinfo=UTC),
        sha256=hashlib.sha256(raw).hexdigest(),
        card=BASE,
    )


def test_minimal_card_summary() -> None:
    """The summary of a card without type, patch or calibration lists None for them."""
    raw = json.dumps(BASE).encode()
    result = validate_card(NAME, raw, ARTIFACTS)
    assert isinstance(result, ValidCard)
    assert result.summary() == {
        "file": NAME,
        "elo": "mid",
        "model_type": None,
        "timestamp": "2025-11-01T16:42:37",
        "source_patch": None,
        "model_file": "m.pkl",
        "calibrator_file": None,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "card": BASE,
    }


def test_full_card_summary_and_sha256() -> None:
    """A calibrated card's summary lists every key fact, the calibrator and the sha256 of the raw bytes."""
    card = {
        **BASE,
        "timestamp": "2025-11-01T16:42:37+02:00",
        "model_type": "lgbm",
        "source_patch": "16.23",
        "calibrated": True,
        "calibrator_file": "c.pkl",
        "metrics": {"auc": 0.8, "n": 3},
        "features": 0,
        "train_size": 10,
        "test_size": 2.5,
        "extra": [1, {"x": None}],
    }
    raw = b"  " + json.dumps(card).encode() + b"\n"
    result = validate_card(NAME, raw, ARTIFACTS)
    assert isinstance(result, ValidCard)
    assert result.timestamp == datetime(2025, 11, 1, 16, 42, 37, tzinfo=timezone(timedelta(hours=2)))
    assert result.sha256 == hashlib.sha256(raw).hexdigest()
    assert len(result.sha256) == 64
    assert result.summary() == {
        "file": NAME,
        "elo": "mid",
        "model_type": "lgbm",
        "timestamp": "2025-11-01T16:42:37+02:00",
        "source_patch": "16.23",
        "model_file": "m.pkl",
        "calibrator_file": "c.pkl",
        "sha256": result.sha256,
        "card": card,
    }


@pytest.mark.parametrize("calibrated", [False, "missing"])
def test_uncalibrated_summary_hides_the_calibrator(calibrated: object) -> None:
    """Without calibrated=true the summary lists no calibrator, even when the card names one."""
    card = {**BASE, "calibrator_file": "c.pkl"}
    if calibrated is False:
        card["calibrated"] = False
    result = check(card)
    assert isinstance(result, ValidCard)
    assert result.summary()["calibrator_file"] is None


def test_size_limit_boundary() -> None:
    """A card of exactly MAX_CARD_BYTES is read; one byte more is refused by size."""
    body = json.dumps(BASE).encode()
    exact = body + b" " * (MAX_CARD_BYTES - len(body))
    assert len(exact) == MAX_CARD_BYTES
    assert isinstance(validate_card(NAME, exact, ARTIFACTS), ValidCard)
    assert validate_card(NAME, exact + b" ", ARTIFACTS) == InvalidCard(
        NAME, "card is larger than 1048576 bytes"
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (
            b"{not json",
            "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        (b'{\n  "a" 1}', "not valid JSON: Expecting ':' delimiter at line 2 column 7"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b"[" * 100000 + b"]" * 100000, "JSON nested too deeply"),
        (b"[1]", "card must be a JSON object, got list"),
        (b"null", "card must be a JSON object, got NoneType"),
        (b'"x"', "card must be a JSON object, got str"),
    ],
)
def test_unreadable_cards(raw: bytes, why: str) -> None:
    """Bytes that are not a JSON object give the exact reason."""
    assert validate_card(NAME, raw, ARTIFACTS) == InvalidCard(NAME, why)


def test_five_thousand_digit_integer() -> None:
    """An integer past Python's digit limit is invalid JSON with the error cut to 120 characters."""
    raw = b'{"elo": "mid", "n": ' + b"7" * 5000 + b"}"
    result = validate_card(NAME, raw, ARTIFACTS)
    assert result == InvalidCard(
        NAME,
        "not valid JSON: Exceeds the limit (4300 digits) for integer string conversion:"
        " value has 5000 digits; use sys.set_int_max_str_digits() t",
    )
    assert len(result.reason) == len("not valid JSON: ") + 120


def test_bad_file_name() -> None:
    """A file name outside the pattern is refused before the bytes are read."""
    assert validate_card("modelcard_mid_latest.json", b"garbage", ARTIFACTS) == InvalidCard(
        "modelcard_mid_latest.json", "file name is not modelcard_{low|mid|high}_{YYYYmmdd_HHMMSS}.json"
    )


def test_elo_mismatch() -> None:
    """A valid card under another elo's file name is refused with both elos."""
    name = "modelcard_low_20251101_164237.json"
    assert validate_card(name, json.dumps(BASE).encode(), ARTIFACTS) == InvalidCard(
        name, "file name says elo 'low' but the card says 'mid'"
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"elo": "gold"}, "elo 'gold' is not one of low, mid, high"),
        ({"elo": None}, "elo None is not one of low, mid, high"),
        ({"timestamp": 5}, "timestamp must be an ISO 8601 string"),
        ({"timestamp": "yesterday"}, "timestamp 'yesterday' is not ISO 8601"),
        ({"model_file": ""}, "model_file must be a non-empty file name"),
        ({"model_file": "  "}, "model_file must be a non-empty file name"),
        ({"model_file": 7}, "model_file must be a non-empty file name"),
        (
            {"model_file": "a/m.pkl"},
            "model_file 'a/m.pkl' must be a bare file name (no path separators or '..')",
        ),
        (
            {"model_file": "a\\m.pkl"},
            "model_file 'a\\\\m.pkl' must be a bare file name (no path separators or '..')",
        ),
        ({"model_file": "."}, "model_file '.' must be a bare file name (no path separators or '..')"),
        ({"model_file": ".."}, "model_file '..' must be a bare file name (no path separators or '..')"),
        (
            {"model_file": "m..pkl"},
            "model_file 'm..pkl' must be a bare file name (no path separators or '..')",
        ),
        (
            {"model_file": "m\x00"},
            "model_file 'm\\x00' must be a bare file name (no path separators or '..')",
        ),
        ({"model_file": "x.pkl"}, "model_file 'x.pkl' not found in ml_pipeline/models/trained/"),
        ({"calibrated": 1}, "calibrated must be true or false"),
        ({"calibrated": True}, "calibrator_file must be a non-empty file name"),
        (
            {"calibrated": True, "calibrator_file": "../c.pkl"},
            "calibrator_file '../c.pkl' must be a bare file name (no path separators or '..')",
        ),
        (
            {"calibrated": True, "calibrator_file": "x.pkl"},
            "calibrator_file 'x.pkl' not found in ml_pipeline/models/trained/",
        ),
        ({"metrics": [1]}, "metrics must be an object"),
        ({"metrics": None}, "metrics must be an object"),
        ({"metrics": {"auc": "high"}}, "metric 'auc' is not a finite number: 'high'"),
        ({"metrics": {"ok": 1, "auc": True}}, "metric 'auc' is not a finite number: True"),
        ({"metrics": {"auc": None}}, "metric 'auc' is not a finite number: None"),
        ({"features": -1}, "features must be a non-negative number"),
        ({"features": -0.5}, "features must be a non-negative number"),
        ({"train_size": "10"}, "train_size must be a non-negative number"),
        ({"test_size": False}, "test_size must be a non-negative number"),
    ],
)
def test_field_reasons(change: dict[str, Any], why: str) -> None:
    """Every field rule gives its exact reason."""
    assert reason({**BASE, **change}) == why


def test_missing_model_file() -> None:
    """A card without model_file is invalid (not an exception)."""
    card = {k: v for k, v in BASE.items() if k != "model_file"}
    assert reason(card) == "model_file must be a non-empty file name"


def test_missing_timestamp_and_elo() -> None:
    """A card without elo or timestamp names the missing field."""
    assert reason({"timestamp": "2025-11-01T16:42:37", "model_file": "m.pkl"}) == (
        "elo None is not one of low, mid, high"
    )
    assert reason({"elo": "mid", "model_file": "m.pkl"}) == "timestamp must be an ISO 8601 string"


def test_long_metric_reason_is_cut() -> None:
    """A metric reason is cut to 200 characters."""
    why = reason({**BASE, "metrics": {"a" * 300: "b"}})
    assert why == ("metric '" + "a" * 300)[:200]


@pytest.mark.parametrize("value", [0, 0.0, 1e9])
def test_sizes_at_zero_and_above(value: float) -> None:
    """features, train_size and test_size of zero or more are valid."""
    assert isinstance(check({**BASE, "features": value, "train_size": value, "test_size": value}), ValidCard)


@pytest.mark.parametrize(
    ("raw_extra", "where"),
    [
        (b'"x": NaN', "card.x"),
        (b'"x": {"y": [1.5, Infinity]}', "card.x.y[1]"),
        (b'"x": [[0, -Infinity]]', "card.x[0][1]"),
        (b'"metrics": {}, "notes": {"a": NaN}', "card.notes.a"),
    ],
)
def test_non_finite_outside_metrics(raw_extra: bytes, where: str) -> None:
    """NaN or Infinity anywhere in the card is refused with its path."""
    raw = json.dumps(BASE).encode()[:-1] + b", " + raw_extra + b"}"
    assert validate_card(NAME, raw, ARTIFACTS) == InvalidCard(
        NAME, f"{where} is NaN or Infinity, which is not valid JSON"
    )


def test_non_finite_metric() -> None:
    """NaN inside metrics is reported by the metric rule."""
    raw = json.dumps(BASE).encode()[:-1] + b', "metrics": {"auc": NaN}}'
    assert validate_card(NAME, raw, ARTIFACTS) == InvalidCard(
        NAME, "metric 'auc' is not a finite number: nan"
    )


def test_non_finite_size() -> None:
    """Infinity as a size is reported by the size rule."""
    raw = json.dumps(BASE).encode()[:-1] + b', "features": Infinity}'
    assert validate_card(NAME, raw, ARTIFACTS) == InvalidCard(NAME, "features must be a non-negative number")


def test_deeply_nested_finite_card_is_valid() -> None:
    """A card nested thousands of levels deep (below the parser's limit) is checked without recursion."""
    raw = json.dumps(BASE).encode()[:-1] + b', "deep": ' + b"[" * 900 + b"1" + b"]" * 900 + b"}"
    assert isinstance(validate_card(NAME, raw, ARTIFACTS), ValidCard)


def card_at(file: str, elo: str, timestamp: datetime) -> ValidCard:
    """A ValidCard built by hand."""
    return ValidCard(file, elo, timestamp, "0" * 64, {})


def test_pick_active_newest_per_elo_with_none() -> None:
    """The newest card wins per elo, in any order; an elo without cards maps to None."""
    old = card_at("modelcard_low_20250101_000000.json", "low", datetime(2025, 1, 1, tzinfo=UTC))
    new = card_at("modelcard_low_20240101_000000.json", "low", datetime(2025, 2, 1, tzinfo=UTC))
    mid = card_at("modelcard_mid_20250101_000000.json", "mid", datetime(2025, 1, 1, tzinfo=UTC))
    expected = {"low": new, "mid": mid, "high": None}
    assert pick_active([old, new, mid]) == expected
    assert pick_active([mid, new, old]) == expected
    assert list(pick_active([])) == ["low", "mid", "high"]
    assert pick_active([]) == {"low": None, "mid": None, "high": None}


def test_pick_active_tie_by_file_name() -> None:
    """On equal timestamps the later file name wins, whatever the order."""
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    a = card_at("modelcard_high_20250101_000000.json", "high", moment)
    b = card_at("modelcard_high_20250101_000001.json", "high", moment)
    assert pick_active([a, b])["high"] is b
    assert pick_active([b, a])["high"] is b


def test_pick_active_naive_and_aware_timestamps() -> None:
    """A naive card timestamp (read as UTC) compares with an offset one on the same clock."""
    naive = validate_card(
        "modelcard_mid_20250101_000000.json",
        json.dumps({**BASE, "timestamp": "2025-11-01T10:00:00"}).encode(),
        ARTIFACTS,
    )
    aware = validate_card(
        "modelcard_mid_20250102_000000.json",
        json.dumps({**BASE, "timestamp": "2025-11-01T11:00:00+02:00"}).encode(),
        ARTIFACTS,
    )
    assert isinstance(naive, ValidCard) and isinstance(aware, ValidCard)
    assert pick_active([naive, aware])["mid"] is naive
    assert pick_active([aware, naive])["mid"] is naive


def test_diff_models_sorted() -> None:
    """added, removed and changed are sorted file names; an unchanged hash is not listed."""
    previous = {"b": "1", "a": "1", "z": "1", "y": "2", "same": "3"}
    current = {"d": "1", "c": "1", "z": "9", "y": "8", "same": "3"}
    assert diff_models(previous, current) == Changes(added=["c", "d"], removed=["a", "b"], changed=["y", "z"])
    assert diff_models({}, {}) == Changes([], [], [])
