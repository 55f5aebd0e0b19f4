"""refresh-history's freshness figures: newest game_creation, matches per patch, the last read's share."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stratmancer_jobs.jobs.history.counts import newest_created, patch_counts
from stratmancer_jobs.jobs.history.records import Match
from tests.history_fixtures import append_lines, games, numpy_for_every_file, refresh, write_array

GROUP_OF = {"SILVER": "LOW", "GOLD": "MID", "PLATINUM": "MID", "DIAMOND": "HIGH"}


def dated(prefix: str, n: int, start_ms: int, patch: str = "15.21", start: int = 0) -> list[dict[str, Any]]:
    """``n`` games created one minute apart from ``start_ms``, on ``patch``."""
    out = games(prefix, n, start)
    for i, record in enumerate(out):
        record["game_creation"] = start_ms + 60_000 * ((i * 7) % n)  # not in file order
        record["patch"] = patch
    return out


def independent(root: Path) -> dict[str, Any]:
    """Newest game_creation per tier and group, and matches per patch per group, from the files with
    plain json: valid records only, a match_id counted once per group (its first file in tier order)."""
    tiers = ("SILVER", "GOLD", "PLATINUM", "DIAMOND")
    newest: dict[str, int] = {}
    patches: dict[str, Counter[str]] = {}
    seen: dict[str, set[str]] = {}
    for tier in tiers:
        records: list[Any] = []
        base = root / "data" / "processed"
        if (base / f"matches_{tier}.json").exists():
            records += json.loads((base / f"matches_{tier}.json").read_text())
        if (base / f"matches_{tier}.jsonl").exists():
            records += [
                json.loads(line) for line in (base / f"matches_{tier}.jsonl").read_text().splitlines()
            ]
        group = GROUP_OF[tier]
        tier_seen: set[str] = set()
        for r in records:
            picks = r.get("blue_picks"), r.get("red_picks")
            if not (
                isinstance(r, dict)
                and all(isinstance(p, list) and len(p) == 5 for p in picks)
                and len({*picks[0], *picks[1]}) == 10
                and isinstance(r.get("blue_win"), bool)
            ):
                continue
            if r["match_id"] in tier_seen:
                continue
            tier_seen.add(r["match_id"])
            if isinstance(r.get("game_creation"), int):
                newest[tier] = max(newest.get(tier, 0), r["game_creation"])
                newest[group] = max(newest.get(group, 0), r["game_creation"])
            if r["match_id"] not in seen.setdefault(group, set()):
                seen[group].add(r["match_id"])
                patches.setdefault(group, Counter())[r["patch"]] += 1
    return {"newest": newest, "patches": {g: dict(c) for g, c in patches.items()}}


def sidecar(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "ml_pipeline" / "history_index.meta.json").read_text())["freshness"])


@pytest.mark.parametrize("vector", [False, True])
def test_newest_and_patches_equal_an_independent_count_through_appends(root: Path, vector: bool) -> None:
    """The sidecar's newest game_creation and patch table equal a plain count after a full build and
    after appends (incremental), and a full rebuild gives the same figures, numpy or not."""
    write_array(root, "GOLD", dated("g", 30, 1_760_000_000_000))
    write_array(root, "PLATINUM", dated("g", 10, 1_760_100_000_000))  # the same ids: the group counts once
    write_array(root, "SILVER", dated("s", 12, 1_750_000_000_000, patch="15.20"))
    write_array(root, "DIAMOND", games("d", 5))  # no game_creation at all
    with numpy_for_every_file() if vector else _nothing():
        refresh(root)
        first = sidecar(root)
        want = independent(root)
        assert {k: v for k, v in first["newest_game_creation_ms"].items() if v is not None} == want["newest"]
        assert first["newest_game_creation_ms"]["DIAMOND"] is None
        assert first["newest_game_creation_ms"]["HIGH"] is None
        assert {g: t for g, t in first["matches_per_patch"].items() if t} == want["patches"]
        append_lines(root, "GOLD", dated("h", 8, 1_770_000_000_000, patch="15.22"))
        append_lines(root, "SILVER", dated("s", 3, 1_740_000_000_000, start=100))  # older: max unchanged
        outcome = refresh(root)
        assert outcome.mode == "incremental"
        after = sidecar(root)
        want = independent(root)
        assert {k: v for k, v in after["newest_game_creation_ms"].items() if v is not None} == want["newest"]
        assert after["newest_game_creation_ms"]["MID"] == 1_770_000_000_000 + 60_000 * 7
        assert after["matches_per_patch"]["MID"] == {"15.21": 30, "15.22": 8}
        refresh(root, full=True)
        assert sidecar(root)["newest_game_creation_ms"] == after["newest_game_creation_ms"]
        assert sidecar(root)["matches_per_patch"] == after["matches_per_patch"]


def test_last_read_counts_only_the_newly_read_records(root: Path) -> None:
    """A tier's share is of the records its last read read: an append of bad records is judged alone."""
    write_array(root, "GOLD", dated("g", 200, 1_760_000_000_000))
    append_lines(root, "GOLD", dated("j", 10, 1_760_000_000_000))
    outcome = refresh(root)
    assert outcome.inputs is not None
    assert outcome.inputs.read["GOLD"].records == 210 and outcome.inputs.read["GOLD"].invalid == 0
    bad = [{"match_id": f"b{i}", "blue_picks": [1, 2], "red_picks": [3], "blue_win": True} for i in range(30)]
    append_lines(root, "GOLD", [*dated("n", 90, 1_761_000_000_000), *bad, 5])
    outcome = refresh(root)
    assert outcome.mode == "incremental"
    share = outcome.inputs.read["GOLD"] if outcome.inputs else None
    assert share is not None and (share.records, share.invalid, share.top_reason) == (121, 31, "bad_picks")
    assert sidecar(root)["last_read"]["GOLD"] == {
        "records": 121,
        "invalid": {"bad_picks": 30, "not_object": 1},
    }
    write_array(root, "SILVER", dated("s", 5, 1_760_000_000_000))  # GOLD not read again: its share stays
    outcome = refresh(root)
    assert outcome.inputs is not None and outcome.inputs.read["GOLD"] == share


def test_unchanged_run_reports_no_inputs(root: Path) -> None:
    """A run that read nothing reports no observation (the last one is kept in the state)."""
    write_array(root, "GOLD", dated("g", 5, 1_760_000_000_000))
    assert refresh(root).inputs is not None
    assert refresh(root).inputs is None


def test_newest_created_and_patch_counts_ignore_odd_values() -> None:
    """Only int creation times and MAJOR.MINOR patch strings count, whatever else a record holds."""
    t = (1, 2, 3, 4, 5)

    def m(created: Any, patch: Any) -> Match:
        return Match(t, t, True, None, created, patch)

    assert newest_created([m(5, "15.21"), m(9, "15.21")]) == 9
    assert newest_created([m(None, 1), m("99", None), m(7, None), m(True, None)]) == 7
    assert newest_created([m(2.5e15, None), m(3, None)]) == 3
    assert newest_created([m(None, None)]) is None
    assert newest_created([]) is None
    assert patch_counts([m(1, "15.21"), m(1, "15.09"), m(1, "15.9"), m(1, [1]), m(1, "x"), m(1, None)]) == {
        "15.21": 1,
        "15.9": 2,
    }


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
