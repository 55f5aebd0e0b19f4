"""Property: however records arrive (random batches, JSON arrays and JSONL, duplicates, junk), the
incremental index is byte-identical to a full rebuild of the same files."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.history_fixtures import (
    append_lines,
    full_rebuild_bytes,
    index_bytes,
    low_thresholds,
    match,
    processed,
    refresh,
)

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


batches = st.lists(
    st.tuples(st.sampled_from(TIERS), st.sampled_from(["json", "jsonl"]), st.lists(records(), max_size=6)),
    min_size=1,
    max_size=4,
)


def _append(root: Path, tier: str, kind: str, new: list[Any]) -> None:
    if kind == "jsonl":
        append_lines(root, tier, new)
        return
    path = processed(root) / f"matches_{tier}.json"
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(old + new, indent=2))  # the collector rewrites the whole file


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(batches, min_size=1, max_size=3))
def test_incremental_equals_full(steps: list[list[tuple[str, str, list[Any]]]]) -> None:
    """After every run over randomly appended batches, incremental bytes equal a full rebuild's."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        low_thresholds(root)
        for step in steps:
            for tier, kind, new in step:
                _append(root, tier, kind, new)
            try:
                refresh(root)
            except Exception as exc:  # no valid match yet: the full rebuild must agree
                try:
                    refresh(root, full=True)
                except type(exc):
                    continue
                raise
            assert index_bytes(root) == full_rebuild_bytes(root, Path(tmp) / "scratch")
