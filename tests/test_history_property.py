"""Property: however records arrive (random batches, JSON arrays and JSONL, duplicates, junk), and
however an old prefix is disturbed (a same-length edit in its middle, then an append; a file replaced
by a shorter one), the incremental index is byte-identical to a full rebuild of the same files."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.history_fixtures import (
    append_lines,
    full_rebuild_bytes,
    index_bytes,
    low_thresholds,
    match,
    numpy_for_every_file,
    processed,
    refresh,
)


@pytest.fixture(autouse=True, scope="module")
def _numpy_for_every_file() -> Iterator[None]:
    with numpy_for_every_file():
        yield


CHAMPS = [1, 2, 3, 7, 9, 10, 11, 64, 99, 100, 103, 555, 777, 950]
TIERS = ["SILVER", "GOLD", "PLATINUM", "EMERALD", "MASTER"]


@st.composite
def records(draw: st.DrawFn) -> Any:
    """A valid match most of the time, from a small id pool so duplicates happen, sometimes junk."""
    kind = draw(st.sampled_from(["ok"] * 8 + ["junk", "repeat"]))
    if kind == "junk":
        return draw(st.sampled_from([{"x": 1}, [], 5, match("J", [1, 2, 3], [4, 5, 6, 7, 9], True)]))
    picks = draw(st.permutations(CHAMPS))[:10]
    if kind == "repeat":
        picks = [picks[0], *picks[:9]]
    mid = draw(st.sampled_from([f"NA1_{i}" for i in range(12)] + [None]))
    return match(mid, picks[:5], picks[5:], draw(st.booleans()))


# A step on one file: ("append", records), ("mid_edit", where, digit, records): one pick digit of the
# counted prefix changed in place (same length), then records appended, so only the prefix digest can
# tell; ("shorter", k): the file replaced by one without its last k records.
changes = st.one_of(
    st.tuples(st.just("append"), st.lists(records(), max_size=6)),
    st.tuples(
        st.just("mid_edit"),
        st.floats(0.0, 1.0),
        st.sampled_from("123456789"),
        st.lists(records(), max_size=3),
    ),
    st.tuples(st.just("shorter"), st.integers(1, 3)),
)
batches = st.lists(
    st.tuples(st.sampled_from(TIERS), st.sampled_from(["json", "jsonl"]), changes),
    min_size=1,
    max_size=4,
)
_PICKS = re.compile(rb'"(?:blue|red)_picks": \[([^\]]*)\]')


def _append(root: Path, tier: str, kind: str, new: list[Any]) -> None:
    if kind == "jsonl":
        append_lines(root, tier, new)
        return
    path = processed(root) / f"matches_{tier}.json"
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(old + new, indent=2))  # the collector rewrites the whole file


def _change(root: Path, tier: str, kind: str, change: tuple[Any, ...]) -> None:
    path = processed(root) / f"matches_{tier}.{kind}"
    if change[0] == "append":
        _append(root, tier, kind, change[1])
        return
    if not path.exists():
        return
    data = path.read_bytes()
    if change[0] == "shorter":
        if kind == "jsonl":
            path.write_bytes(b"".join(data.splitlines(keepends=True)[: -change[1]]))
        else:
            path.write_text(json.dumps(json.loads(data)[: -change[1]], indent=2))
        return
    _, where, digit, new = change
    digits = [
        i
        for picks in _PICKS.finditer(data)
        for i in range(picks.start(1), picks.end(1))
        if data[i : i + 1].isdigit() and data[i : i + 1] != digit.encode()
    ]
    if digits:  # the old bytes keep their length: only their digest shows the edit
        at = digits[int(where * (len(digits) - 1))]
        path.write_bytes(data[:at] + digit.encode() + data[at + 1 :])
    _append(root, tier, kind, new)


def _ok(mid: str, shift: int) -> Any:
    picks = CHAMPS[shift:] + CHAMPS[:shift]
    return match(mid, picks[:5], picks[5:10], shift % 2 == 0)


_SEED = [_ok(f"NA1_{i}", i) for i in range(4)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(batches, min_size=1, max_size=3))
# a pick in the middle of the counted prefix changed in place, then a record appended (JSON and JSONL)
@example(
    steps=[
        [("GOLD", "json", ("append", _SEED)), ("GOLD", "jsonl", ("append", _SEED))],
        [("GOLD", "json", ("mid_edit", 0.5, "8", [_ok("NA1_9", 5)]))],
        [("GOLD", "jsonl", ("mid_edit", 0.5, "8", [_ok("NA1_9", 5)]))],
    ]
)
# a file replaced by a shorter one (JSON and JSONL)
@example(
    steps=[
        [("SILVER", "json", ("append", _SEED)), ("SILVER", "jsonl", ("append", _SEED))],
        [("SILVER", "json", ("shorter", 2)), ("SILVER", "jsonl", ("shorter", 1))],
    ]
)
def test_incremental_equals_full(steps: list[list[tuple[str, str, tuple[Any, ...]]]]) -> None:
    """After every run over randomly appended batches, incremental bytes equal a full rebuild's."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        low_thresholds(root)
        for step in steps:
            for tier, kind, change in step:
                _change(root, tier, kind, change)
            try:
                refresh(root)
            except Exception as exc:  # no valid match yet: the full rebuild must agree
                try:
                    refresh(root, full=True)
                except type(exc):
                    continue
                raise
            assert index_bytes(root) == full_rebuild_bytes(root, Path(tmp) / "scratch")
