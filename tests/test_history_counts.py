"""Exact counting: win rates, pairs, counters, thresholds, deduplication per tier and per group."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.jobs.history import cache
from stratmancer_jobs.jobs.history.aggregate import build_entry, win_rate
from stratmancer_jobs.jobs.history.counts import GroupState, Reorder
from stratmancer_jobs.jobs.history.filestat import FileStat
from stratmancer_jobs.jobs.history.incremental import Checkpoint
from stratmancer_jobs.jobs.history.records import DUPLICATE, Match
from tests.history_fixtures import append_lines, index, low_thresholds, match, refresh, write_array

ALL = HistorySettings(min_champ_games=1, min_pair_games=1, min_counter_games=1)
GAMES = [
    match("M1", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True),
    match("M2", [1, 2, 3, 4, 5], [6, 7, 8, 9, 11], False),
    match("M3", [6, 2, 3, 4, 5], [1, 7, 8, 9, 10], True),
]


def _state(records: list[dict[str, object]], tier: str = "GOLD") -> GroupState:
    state = GroupState("MID")
    matches = [
        Match(tuple(r["blue_picks"]), tuple(r["red_picks"]), r["blue_win"], r["match_id"])  # type: ignore[arg-type]
        for r in records
    ]
    state.add(tier, "json", matches, Counter())
    return state


def test_exact_rates_on_a_hand_built_tier() -> None:
    """Champion, pair and counter win rates match a hand count of three games."""
    state = _state(GAMES)
    entry = build_entry(state.tiers["GOLD"].counts, state.keys, ALL)
    assert entry["n_matches"] == 3
    assert entry["champ_wr"]["1"] == 0.333333
    assert entry["champ_wr"]["2"] == 0.666667
    assert entry["champ_wr"]["6"] == 0.666667
    assert entry["champ_wr"]["10"] == 0.0
    assert entry["champ_wr"]["11"] == 1.0
    assert entry["pair_wr"]["1,2"] == 0.5
    assert entry["pair_wr"]["2,6"] == 1.0
    assert entry["pair_wr"]["9,10"] == 0.0  # a < b numerically, not as strings
    assert "10,9" not in entry["pair_wr"]
    assert entry["counter_wr"]["1"]["6"] == 0.333333
    assert entry["counter_wr"]["6"]["1"] == 0.666667
    assert entry["counter_wr"]["2"]["11"] == 0.0
    assert entry["counter_wr"]["11"]["2"] == 1.0
    assert "1" not in entry["counter_wr"]["1"]
    assert entry["avg_wr"] == round(math.fsum(entry["champ_wr"].values()) / len(entry["champ_wr"]), 6)


def test_every_pair_and_counter_is_counted() -> None:
    """Three games give 20 same-team pairs and 25 enemy pairs each, with consistent totals."""
    entry = build_entry(_state(GAMES).tiers["GOLD"].counts, _state(GAMES).keys, ALL)
    assert len(entry["champ_wr"]) == 11
    cells = sum(len(row) for row in entry["counter_wr"].values())
    enemies = set()
    for g in GAMES:
        blue, red = g["blue_picks"], g["red_picks"]
        assert isinstance(blue, list) and isinstance(red, list)
        enemies |= {(a, b) for a in blue for b in red} | {(b, a) for a in blue for b in red}
    assert cells == len(enemies)
    pairs = set()
    for g in GAMES:
        for team in (g["blue_picks"], g["red_picks"]):
            assert isinstance(team, list)
            pairs |= {(min(a, b), max(a, b)) for a in team for b in team if a != b}
    assert len(entry["pair_wr"]) == len(pairs)


def test_default_thresholds() -> None:
    """With 5/3/3 only pairs and counters seen three times survive; avg_wr is 0.5 with no champion."""
    entry = build_entry(_state(GAMES).tiers["GOLD"].counts, _state(GAMES).keys, HistorySettings())
    assert entry["champ_wr"] == {}
    assert entry["avg_wr"] == 0.5
    assert entry["pair_wr"]["2,3"] == 0.666667
    assert "1,2" not in entry["pair_wr"]
    assert entry["counter_wr"]["2"]["7"] == 0.666667
    assert entry["counter_wr"]["7"]["2"] == 0.333333
    assert entry["counter_wr"]["1"] == {"6": 0.333333}  # 1 met 6 in all three games, from either side


@pytest.mark.parametrize(
    ("wins", "games", "expected"),
    [
        (1, 3, 0.333333),
        (2, 3, 0.666667),
        (1, 128, 0.007813),
        (0, 7, 0.0),
        (7, 7, 1.0),
        (1, 2_000_000, 0.000001),
    ],
)
def test_rounding_is_half_up_on_the_exact_fraction(wins: int, games: int, expected: float) -> None:
    """Win rates are the exact fraction rounded half-up to 6 decimals."""
    assert win_rate(wins, games) == expected


def test_duplicates_within_a_tier_count_once(root: Path) -> None:
    """A match_id counts at its first valid occurrence; later copies are counted as duplicates."""
    bad_first = match("M1", [1, 2, 3, 4], [6, 7, 8, 9, 10], True)
    other_m2 = match("M2", [11, 12, 13, 14, 15], [16, 17, 18, 19, 20], True)
    write_array(root, "GOLD", [bad_first, *GAMES, GAMES[0], other_m2])
    outcome = refresh(root)
    assert index(root)["GOLD"]["n_matches"] == 3
    assert (outcome.duplicates, outcome.invalid) == (2, 1)
    assert "15" not in index(root)["GOLD"]["counter_wr"]


def test_group_counts_a_match_once_across_tiers(root: Path) -> None:
    """A match in GOLD and PLATINUM counts in both tiers and once in MID; DIAMOND is another group."""
    write_array(root, "GOLD", GAMES)
    write_array(root, "PLATINUM", [GAMES[0], match("P1", [21, 22, 23, 24, 25], [26, 27, 28, 29, 30], True)])
    write_array(root, "DIAMOND", [GAMES[0]])
    refresh(root)
    data = index(root)
    assert data["GOLD"]["n_matches"] == 3
    assert data["PLATINUM"]["n_matches"] == 2
    assert data["MID"]["n_matches"] == 4
    assert data["DIAMOND"]["n_matches"] == 1
    assert data["HIGH"]["n_matches"] == 1
    assert "LOW" not in data and "SILVER" not in data


def test_group_keeps_the_first_tiers_copy(root: Path) -> None:
    """When two tiers disagree about a match, the group uses the copy from the lower tier."""
    low_thresholds(root)
    write_array(root, "PLATINUM", [match("X", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], False)])
    write_array(root, "GOLD", [match("X", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)])
    refresh(root)
    data = index(root)
    assert data["MID"]["n_matches"] == 1
    assert data["MID"]["champ_wr"] == data["GOLD"]["champ_wr"]
    assert data["GOLD"]["champ_wr"]["1"] == 1.0
    assert data["PLATINUM"]["champ_wr"]["1"] == 0.0


def test_json_array_comes_before_jsonl_in_a_tier(root: Path) -> None:
    """A match in both files of a tier counts from the JSON array, whatever order they were written."""
    append_lines(root, "GOLD", [match("X", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], False)] * 3)
    write_array(root, "GOLD", [match("X", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)])
    outcome = refresh(root)
    data = index(root)
    assert data["GOLD"]["n_matches"] == 1
    assert outcome.duplicates == 3
    assert data["GOLD"]["counter_wr"] == {}  # a single game: below the counter threshold of 3


def test_reorder_is_detected() -> None:
    """An earlier-ordered copy arriving after a later one was counted raises Reorder."""
    state = GroupState("MID")
    m = Match((1, 2, 3, 4, 5), (6, 7, 8, 9, 10), True, "X")
    state.add("PLATINUM", "json", [m], Counter())
    with pytest.raises(Reorder):
        state.add("GOLD", "json", [m], Counter())
    state2 = GroupState("MID")
    state2.add("GOLD", "jsonl", [m], Counter())
    with pytest.raises(Reorder):
        state2.add("GOLD", "json", [m], Counter())


def test_duplicate_reason_is_recorded() -> None:
    """Duplicates are counted per tier under duplicate_match_id."""
    m = Match((1, 2, 3, 4, 5), (6, 7, 8, 9, 10), True, "X")
    state = GroupState("MID")
    assert state.add("GOLD", "json", [m, m, m], Counter()) == 1
    assert state.tiers["GOLD"].skipped[DUPLICATE] == 2


def test_cache_round_trip_and_corruption(tmp_path: Path) -> None:
    """A group state survives encode/decode exactly; a flipped byte or wrong group is rejected."""
    state = _state(GAMES)
    state.add("PLATINUM", "jsonl", [Match((1, 2, 3, 4, 5), (6, 7, 8, 9, 12), False, "M1")], Counter())
    files = {"matches_GOLD.json": Checkpoint(FileStat(10, 20, "ab"), 5, 7, elements=True)}
    blob = cache.encode_group(state, files)
    again, again_files = cache.decode_group(blob, "MID")
    assert again_files == files
    assert again.keys == state.keys and again.seen == state.seen
    for tier in state.tiers:
        assert again.tiers[tier] == state.tiers[tier]
    assert again.excluded == state.excluded
    broken = bytearray(blob)
    broken[-3] ^= 0xFF
    with pytest.raises(ValueError, match="digest"):
        cache.decode_group(bytes(broken), "MID")
    with pytest.raises(ValueError):
        cache.decode_group(blob, "LOW")
    (tmp_path / "group_MID.bin").write_bytes(b"\x00" * 40)
    assert cache.load_group(tmp_path, "MID") is None
