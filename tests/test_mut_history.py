"""History counting and the index entry, checked against a plain second implementation
(mutation testing, issue 15).

Only the public surface is used (``GroupState.add``/``group_counts``/``tiers``, ``build_entry``,
``render``, ...), and whole entries are compared, so the tests hold whatever the counters look like
inside. Each scenario runs through the plain loop and through the numpy path (``VECTOR_MIN`` lowered).
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import combinations
from typing import Any

import pytest

from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.jobs.history import counts as counts_module
from stratmancer_jobs.jobs.history import records as records_module
from stratmancer_jobs.jobs.history.aggregate import (
    ENTRY_KEYS,
    build_entry,
    entry_stats,
    is_entry,
    join_fragments,
    pair_keys,
    render,
    render_entry,
    win_rate,
)
from stratmancer_jobs.jobs.history.counts import Counts, GroupState, Reorder, sum_counts
from stratmancer_jobs.jobs.history.records import DUPLICATE, Match

ALL = HistorySettings(min_champ_games=1, min_pair_games=1, min_counter_games=1)
DEFAULT = HistorySettings()
Game = tuple[tuple[int, ...], tuple[int, ...], bool]


# --- the second implementation ----------------------------------------------------------------------


def rate(wins: int, games: int) -> float:
    """Half-up to 6 decimals, with exact fractions (not the module's integer formula)."""
    from decimal import ROUND_HALF_UP, Decimal

    return float((Decimal(wins) / Decimal(games)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def oracle(games: Sequence[Game], thresholds: HistorySettings) -> dict[str, Any]:
    won: Counter[int] = Counter()
    played: Counter[int] = Counter()
    pair_won: Counter[tuple[int, int]] = Counter()
    pair_played: Counter[tuple[int, int]] = Counter()
    beat: Counter[tuple[int, int]] = Counter()
    for blue, red, blue_win in games:
        winner, loser = (blue, red) if blue_win else (red, blue)
        for team, win in ((winner, True), (loser, False)):
            for c in team:
                played[c] += 1
                won[c] += win
            for a, b in combinations(sorted(team), 2):
                pair_played[a, b] += 1
                pair_won[a, b] += win
        for a in winner:
            for b in loser:
                beat[a, b] += 1
    champ = {str(c): rate(won[c], n) for c, n in played.items() if n >= thresholds.min_champ_games}
    pairs = {
        f"{a},{b}": rate(pair_won[a, b], n)
        for (a, b), n in pair_played.items()
        if n >= thresholds.min_pair_games
    }
    counter: dict[str, dict[str, float]] = {}
    for a in played:
        for b in played:
            n = beat[a, b] + beat[b, a]
            if a != b and n and n >= thresholds.min_counter_games:
                counter.setdefault(str(a), {})[str(b)] = rate(beat[a, b], n)
    avg = round(math.fsum(champ.values()) / len(champ), 6) if champ else 0.5
    return {
        "champ_wr": champ,
        "pair_wr": pairs,
        "counter_wr": counter,
        "n_matches": len(games),
        "avg_wr": avg,
    }


def game(m: Match) -> Game:
    return (tuple(m.blue_picks), tuple(m.red_picks), m.blue_win)


def mk(mid: Any, blue: Sequence[int], red: Sequence[int], blue_win: bool) -> Match:
    return Match(tuple(blue), tuple(red), blue_win, mid)  # type: ignore[arg-type]


def random_games(rng: random.Random, n: int, pool: Sequence[int], prefix: str) -> list[Match]:
    out = []
    for i in range(n):
        ten = rng.sample(list(pool), 10)
        out.append(mk(f"{prefix}{i}", ten[:5], ten[5:], rng.random() < 0.5))
    return out


_MODE = {"hide_numpy": False}


@pytest.fixture(params=["loop", "numpy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ "loop": plain counting, and entries built while numpy is not loaded; "numpy": both with numpy."""
    if request.param == "numpy":
        import numpy  # noqa: F401 -- loaded, as after a large count

        monkeypatch.setattr(records_module, "VECTOR_MIN", 1)
    _MODE["hide_numpy"] = request.param == "loop"
    yield request.param
    _MODE["hide_numpy"] = False


def build(counts: Counts, keys: list[int], thresholds: HistorySettings) -> dict[str, Any]:
    """``build_entry``, with numpy hidden from ``sys.modules`` in the "loop" mode (only for this call)."""
    if not _MODE["hide_numpy"]:
        return build_entry(counts, keys, thresholds)
    with pytest.MonkeyPatch.context() as patch:
        patch.delitem(sys.modules, "numpy", raising=False)
        return build_entry(counts, keys, thresholds)


def entries(state: GroupState, tier: str | None, thresholds: HistorySettings = ALL) -> dict[str, Any]:
    counts = state.group_counts() if tier is None else state.tiers[tier].counts
    return build(counts, list(state.keys), thresholds)


# --- counting ------------------------------------------------------------------------------------------


def test_every_champion_pair_and_counter_of_a_small_tier(path: str) -> None:
    """Small pool, many games: every counter is several, so ``= 1`` and ``+= 2`` both show."""
    rng = random.Random(15)
    games = random_games(rng, 40, range(1, 15), "g")
    state = GroupState("MID")
    assert state.add("GOLD", "json", games, Counter()) == 40
    expected = oracle([game(m) for m in games], ALL)
    assert entries(state, "GOLD") == expected
    assert entries(state, None) == expected
    assert entries(state, "PLATINUM") == oracle([], ALL)
    assert entries(state, "GOLD", DEFAULT) == oracle([game(m) for m in games], DEFAULT)


def test_the_hand_built_three_games_whole(path: str) -> None:
    games = [
        mk("M1", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True),
        mk("M2", [1, 2, 3, 4, 5], [6, 7, 8, 9, 11], False),
        mk("M3", [6, 2, 3, 4, 5], [1, 7, 8, 9, 10], True),
    ]
    state = GroupState("MID")
    state.add("GOLD", "json", games, Counter())
    entry = entries(state, "GOLD")
    assert entry == oracle([game(m) for m in games], ALL)
    assert entry["champ_wr"] == {
        "1": 0.333333, "2": 0.666667, "3": 0.666667, "4": 0.666667, "5": 0.666667, "6": 0.666667,
        "7": 0.333333, "8": 0.333333, "9": 0.333333, "10": 0.0, "11": 1.0,
    }  # fmt: skip
    assert entry["n_matches"] == 3


def test_one_game_every_slot_distinct(path: str) -> None:
    """One game: each of the 10 pair slots and 25 counter cells is exactly 1 (a slot mixed up shows)."""
    state = GroupState("LOW")
    state.add("IRON", "jsonl", [mk(1, [5, 4, 3, 2, 1], [10, 9, 8, 7, 6], False)], Counter())
    entry = entries(state, "IRON")
    assert entry == oracle([((5, 4, 3, 2, 1), (10, 9, 8, 7, 6), False)], ALL)
    assert len(entry["pair_wr"]) == 20 and set(entry["pair_wr"].values()) == {0.0, 1.0}
    assert sum(len(row) for row in entry["counter_wr"].values()) == 50


def test_later_batches_bring_new_lower_ids(path: str) -> None:
    """A later file brings champions with lower keys than those already indexed: the matrices grow."""
    rng = random.Random(7)
    first = random_games(rng, 30, range(100, 112), "a")
    second = random_games(rng, 30, [*range(1, 8), *range(100, 106)], "b")
    third = random_games(rng, 25, range(50, 64), "c")
    state = GroupState("HIGH")
    state.add("DIAMOND", "json", first, Counter())
    state.add("DIAMOND", "jsonl", second, Counter())
    state.add("MASTER", "json", third, Counter())
    diamond = [game(m) for m in (*first, *second)]
    assert entries(state, "DIAMOND") == oracle(diamond, ALL)
    assert entries(state, "MASTER") == oracle([game(m) for m in third], ALL)
    assert entries(state, None) == oracle(diamond + [game(m) for m in third], ALL)
    assert sorted(state.keys) == sorted({c for g in diamond + [game(m) for m in third] for c in g[0] + g[1]})


@pytest.mark.parametrize("pool", [range(2**21, 2**21 + 14), range(-7, 7), range(2**64, 2**64 + 14)])
def test_keys_beyond_the_lookup_table(path: str, pool: range) -> None:
    """Large, negative and beyond-64-bit champion keys count the same."""
    rng = random.Random(3)
    games = random_games(rng, 30, pool, "k")
    state = GroupState("MID")
    state.add("GOLD", "json", games, Counter())
    assert entries(state, "GOLD") == oracle([game(m) for m in games], ALL)


def test_duplicates_within_a_json_file_and_within_the_jsonl_part(path: str) -> None:
    """A repeated id in the JSON file, then in the JSONL file (twice there), counts once per tier."""
    a = mk("A", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)
    b = mk("B", [1, 2, 3, 4, 6], [5, 7, 8, 9, 11], False)
    c = mk("C", [2, 3, 4, 5, 6], [1, 7, 8, 12, 13], True)
    d = mk("D", [1, 3, 5, 7, 9], [2, 4, 6, 8, 10], False)
    state = GroupState("MID")
    assert state.add("GOLD", "json", [a, b, a, b, c], Counter({"bad_picks": 2})) == 3
    # inside the JSONL part: D twice (first seen at the jsonl rank), A again from the JSON part
    assert state.add("GOLD", "jsonl", [d, d, c, d, a], Counter()) == 1
    gold = state.tiers["GOLD"]
    assert gold.skipped == Counter({"bad_picks": 2, DUPLICATE: 6})
    expected = oracle([game(m) for m in (a, b, c, d)], ALL)
    assert entries(state, "GOLD") == expected
    assert entries(state, None) == expected


def test_duplicate_jsonl_only(path: str) -> None:
    d = mk("D", [1, 3, 5, 7, 9], [2, 4, 6, 8, 10], False)
    e = mk("E", [1, 2, 5, 7, 9], [3, 4, 6, 8, 10], True)
    state = GroupState("MID")
    assert state.add("EMERALD", "jsonl", [d, e, d, e, d], Counter()) == 2
    assert state.tiers["EMERALD"].skipped == Counter({DUPLICATE: 3})
    assert entries(state, None) == oracle([game(d), game(e)], ALL)


def test_an_id_repeated_in_a_later_tier(path: str) -> None:
    """The later tier counts it (once, however often it repeats there), the group does not."""
    x = mk("X", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)
    y = mk("Y", [1, 2, 3, 4, 6], [5, 7, 8, 9, 11], False)
    z = mk("Z", [2, 3, 4, 5, 6], [1, 7, 8, 12, 13], True)
    w = mk("W", [9, 3, 4, 5, 6], [1, 7, 8, 12, 13], False)
    state = GroupState("MID")
    state.add("GOLD", "json", [x, y], Counter())
    assert state.add("PLATINUM", "json", [x, z, x, y, w, x], Counter()) == 4
    assert state.add("PLATINUM", "jsonl", [x, y, z, w], Counter()) == 0
    assert (
        state.add("EMERALD", "jsonl", [y, mk(None, [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], False)], Counter()) == 2
    )
    assert state.tiers["PLATINUM"].skipped == Counter({DUPLICATE: 6})
    assert state.tiers["EMERALD"].skipped == Counter()
    assert entries(state, "GOLD") == oracle([game(x), game(y)], ALL)
    assert entries(state, "PLATINUM") == oracle([game(m) for m in (x, z, y, w)], ALL)
    emerald = [game(y), ((1, 2, 3, 4, 5), (6, 7, 8, 9, 10), False)]
    assert entries(state, "EMERALD") == oracle(emerald, ALL)
    group = [game(m) for m in (x, y, z, w)] + emerald[1:]
    assert entries(state, None) == oracle(group, ALL)
    assert state.group_counts().n == 5


def test_matches_without_an_id_always_count(path: str) -> None:
    games = [mk(None, [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], i % 2 == 0) for i in range(5)]
    state = GroupState("LOW")
    assert state.add("IRON", "json", games, Counter()) == 5
    assert state.add("IRON", "jsonl", games[:2], Counter()) == 2
    assert state.add("BRONZE", "json", games[:1], Counter()) == 1
    assert entries(state, None) == oracle([game(m) for m in games + games[:2] + games[:1]], ALL)
    assert state.tiers["IRON"].skipped == Counter()


def test_reorder_when_an_earlier_copy_turns_up_late() -> None:
    x = mk("X", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)
    other = mk("O", [1, 2, 3, 4, 5], [6, 7, 8, 9, 11], True)
    for first, then in [
        (("GOLD", "jsonl"), ("GOLD", "json")),
        (("PLATINUM", "json"), ("GOLD", "json")),
        (("PLATINUM", "json"), ("GOLD", "jsonl")),
        (("EMERALD", "jsonl"), ("PLATINUM", "jsonl")),
    ]:
        state = GroupState("MID")
        state.add(*first, [x], Counter())
        with pytest.raises(Reorder) as caught:
            state.add(*then, [other, x], Counter())
        assert caught.value.args == ("X",)
    # a later tier saw X in its JSONL file, then its own JSON file (earlier) brings it: reorder too
    state = GroupState("MID")
    state.add("GOLD", "json", [x], Counter())
    state.add("PLATINUM", "jsonl", [x], Counter())
    with pytest.raises(Reorder) as caught:
        state.add("PLATINUM", "json", [x], Counter())
    assert caught.value.args == ("X",)
    # the same order again is no reorder
    state = GroupState("MID")
    state.add("GOLD", "jsonl", [x], Counter())
    assert state.add("GOLD", "jsonl", [x, other], Counter()) == 1


def test_groups_are_separate_and_tiers_preset(path: str) -> None:
    assert sorted(GroupState("HIGH").tiers) == ["CHALLENGER", "DIAMOND", "GRANDMASTER", "MASTER"]
    state = GroupState("LOW")
    assert sorted(state.tiers) == ["BRONZE", "IRON", "SILVER"]
    assert state.add("SILVER", "json", [], Counter({"x": 1})) == 0
    assert state.tiers["SILVER"].skipped == Counter({"x": 1})
    assert entries(state, None) == {
        "champ_wr": {},
        "pair_wr": {},
        "counter_wr": {},
        "n_matches": 0,
        "avg_wr": 0.5,
    }


def test_sum_counts_and_check(path: str) -> None:
    rng = random.Random(5)
    a_games = random_games(rng, 10, range(1, 13), "a")
    b_games = random_games(rng, 10, range(5, 20), "b")
    state = GroupState("MID")
    state.add("GOLD", "json", a_games, Counter())
    state.add("PLATINUM", "json", b_games, Counter())
    size = len(state.keys)
    total = sum_counts([state.tiers["GOLD"].counts, state.tiers["PLATINUM"].counts], Counts(), size)
    assert build(total, list(state.keys), ALL) == oracle([game(m) for m in a_games + b_games], ALL)
    total.check(size)
    back = sum_counts([total], state.tiers["PLATINUM"].counts, size)
    assert build(back, list(state.keys), ALL) == oracle([game(m) for m in a_games], ALL)
    Counts().check(0)
    with pytest.raises(ValueError, match="champion counter"):
        total.check(size + 1)
    grown = Counts()
    grown.resize(3)
    grown.check(3)
    grown.resize(2)  # never shrinks
    grown.check(3)
    with pytest.raises(ValueError, match="champion counter"):
        Counts(n=-1).check(0)


# --- the entry -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wins", "games", "expected"),
    [
        (0, 1, 0.0),
        (1, 1, 1.0),
        (1, 3, 0.333333),
        (2, 3, 0.666667),
        (1, 2_000_000, 0.000001),  # exactly half a unit: up
        (1, 2_000_001, 0.0),
        (3, 2_000_000, 0.000002),  # 1.5e-6: up
        (1, 8, 0.125),
        (5, 7, 0.714286),
    ],
)
def test_win_rate_half_up(wins: int, games: int, expected: float) -> None:
    assert win_rate(wins, games) == expected == rate(wins, games)


def test_pair_keys_numeric_order_and_memo() -> None:
    assert pair_keys([10, 9, 100]) == [["9,10", "10,100"], ["9,100"], []]
    assert pair_keys([]) == []
    assert pair_keys([3, 1]) == [["1,3"], []]
    assert pair_keys([10, 9, 100]) == [["9,10", "10,100"], ["9,100"], []]


def test_thresholds_at_exactly_the_minimum(path: str) -> None:
    """Champion 1 plays 5 games, pair 1,2 three, 1 against 6 three: in at the minimum, out one below."""
    games = [mk(f"t{i}", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], i < 2) for i in range(3)]
    games += [mk(f"u{i}", [1, 11, 12, 13, 14], [15, 16, 17, 18, 19], True) for i in range(2)]
    state = GroupState("MID")
    state.add("GOLD", "json", games, Counter())
    exact = HistorySettings(min_champ_games=5, min_pair_games=3, min_counter_games=3)
    entry = entries(state, "GOLD", exact)
    assert entry == oracle([game(m) for m in games], exact)
    assert entry["champ_wr"] == {"1": 0.8}
    assert entry["pair_wr"]["1,2"] == 0.666667 and "1,11" not in entry["pair_wr"]
    assert entry["counter_wr"]["1"] == {str(c): 0.666667 for c in range(6, 11)}
    higher = HistorySettings(min_champ_games=6, min_pair_games=4, min_counter_games=4)
    assert entries(state, "GOLD", higher) == {
        "champ_wr": {}, "pair_wr": {}, "counter_wr": {}, "n_matches": 5, "avg_wr": 0.5,
    }  # fmt: skip


def test_avg_wr_is_the_rounded_mean(path: str) -> None:
    games = [
        mk("a", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True),
        mk("b", [1, 2, 3, 4, 11], [6, 7, 8, 9, 12], False),
    ]
    state = GroupState("MID")
    state.add("GOLD", "json", games, Counter())
    entry = entries(state, "GOLD")
    assert entry["avg_wr"] == round(math.fsum(entry["champ_wr"].values()) / 12, 6) == 0.5
    only = entries(state, "GOLD", HistorySettings(min_champ_games=2, min_pair_games=9, min_counter_games=9))
    assert only == {
        "champ_wr": {str(c): 0.5 for c in (1, 2, 3, 4, 6, 7, 8, 9)},
        "pair_wr": {},
        "counter_wr": {},
        "n_matches": 2,
        "avg_wr": 0.5,
    }
    three = [mk(f"c{i}", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], i == 0) for i in range(3)]
    state = GroupState("MID")
    state.add("GOLD", "json", three, Counter())
    assert entries(state, "GOLD")["avg_wr"] == round((0.333333 * 5 + 0.666667 * 5) / 10, 6) == 0.5


def good_entry() -> dict[str, Any]:
    return {"champ_wr": {"1": 0.5}, "pair_wr": {}, "counter_wr": {}, "n_matches": 3, "avg_wr": 0.5}


def test_is_entry() -> None:
    assert ENTRY_KEYS == ("champ_wr", "pair_wr", "counter_wr", "n_matches", "avg_wr")
    assert is_entry(good_entry())
    assert is_entry({**good_entry(), "avg_wr": 1, "extra": None})
    assert not is_entry([good_entry()])
    for key in ENTRY_KEYS:
        missing = good_entry()
        del missing[key]
        assert not is_entry(missing), key
    wrong: list[tuple[str, Any]] = [
        ("champ_wr", []),
        ("pair_wr", None),
        ("counter_wr", "x"),
        ("n_matches", 3.0),
        ("avg_wr", "0.5"),
    ]
    for key, bad in wrong:
        assert not is_entry({**good_entry(), key: bad}), key


def test_entry_stats() -> None:
    entry = {
        "champ_wr": {"1": 0.5, "2": 0.5},
        "pair_wr": {"1,2": 0.5, "1,3": 1.0, "2,3": 0.0},
        "counter_wr": {"1": {"2": 0.5, "3": 0.1}, "2": {"1": 0.5}, "4": {}},
        "n_matches": 7,
        "avg_wr": 0.5,
    }
    assert entry_stats(entry) == {"n_matches": 7, "champions": 2, "pairs": 3, "counters": 3}


def test_render_is_dump_json_for_real_entries(path: str) -> None:
    rng = random.Random(11)
    state = GroupState("MID")
    state.add("GOLD", "json", random_games(rng, 30, range(1, 16), "r"), Counter())
    index = {"MID": entries(state, None), "GOLD": entries(state, "GOLD"), "A": good_entry()}
    expected = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    assert render(index) == expected
    assert render({}) == b"{}\n" == join_fragments({})
    fragment = render_entry(good_entry())
    assert fragment is not None
    assert join_fragments({"b": fragment, "a": fragment}) == render({"b": good_entry(), "a": good_entry()})


@pytest.mark.parametrize("small", [0.00005, 0.000099, 0.000001, 1e-06, 0.0001])
def test_render_rates_below_1e_4(small: float) -> None:
    """Rates below 1e-4 are written as json.dumps writes them (exponent form), not as msgspec would."""
    entry = {**good_entry(), "champ_wr": {"1": small, "2": 0.5}}
    index = {"MID": entry, "LOW": good_entry()}
    assert render(index) == (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    if small < 0.0001:
        assert render_entry(entry) is None
    else:
        assert render_entry(entry) is not None
    only = {"MID": entry, "LOW": {**entry, "avg_wr": small}}  # no entry msgspec can write, or all
    assert render(only) == (json.dumps(only, indent=2, sort_keys=True) + "\n").encode()


def test_render_an_entry_fragment() -> None:
    assert render_entry(good_entry()) == (
        b'{\n    "avg_wr": 0.5,\n    "champ_wr": {\n      "1": 0.5\n    },\n    "counter_wr": {},\n'
        b'    "n_matches": 3,\n    "pair_wr": {}\n  }'
    )
    assert render_entry({**good_entry(), "avg_wr": 0.0}) == (
        b'{\n    "avg_wr": 0.0,\n    "champ_wr": {\n      "1": 0.5\n    },\n    "counter_wr": {},\n'
        b'    "n_matches": 3,\n    "pair_wr": {}\n  }'
    )
    assert (
        render({"X": {**good_entry(), "avg_wr": 0.0}})
        == (json.dumps({"X": {**good_entry(), "avg_wr": 0.0}}, indent=2, sort_keys=True) + "\n").encode()
    )


def test_check_names_what_is_wrong() -> None:
    """The cache's sanity check: each counter of the wrong size, a negative count, or a count above the
    number of matches (a planted cache's way into int64 overflow) is refused; exactly ``n`` is fine."""

    def fresh() -> Counts:
        counts = Counts()
        counts.resize(2)
        counts.check(2)
        return counts

    for name in ("cw", "cl"):
        bad = fresh()
        getattr(bad, name).append(0)
        with pytest.raises(ValueError, match=r"^a champion counter has the wrong size$"):
            bad.check(2)
    for name in ("pw", "pl", "vs"):
        short = fresh()
        getattr(short, name).pop()
        with pytest.raises(ValueError, match=r"^a matrix has the wrong size$"):
            short.check(2)
        ragged = fresh()
        getattr(ragged, name)[1].append(0)
        with pytest.raises(ValueError, match=r"^a matrix has the wrong size$"):
            ragged.check(2)
    for name in ("cw", "cl"):
        negative = fresh()
        getattr(negative, name)[1] = -1
        with pytest.raises(ValueError, match=r"^negative count$"):
            negative.check(2)
        at_n, above_n = fresh(), fresh()
        at_n.n = above_n.n = 4
        getattr(at_n, name)[0] = 4
        at_n.check(2)
        getattr(above_n, name)[0] = 5
        with pytest.raises(ValueError, match=r"^a count above the number of matches$"):
            above_n.check(2)
    for name in ("pw", "pl", "vs"):
        negative = fresh()
        getattr(negative, name)[1][0] = -1
        with pytest.raises(ValueError, match=r"^negative count$"):
            negative.check(2)
        at_n, above_n = fresh(), fresh()
        at_n.n = above_n.n = 4
        getattr(at_n, name)[1][0] = 4
        at_n.check(2)
        getattr(above_n, name)[1][0] = 5
        with pytest.raises(ValueError, match=r"^a count above the number of matches$"):
            above_n.check(2)


def test_counts_beyond_64_bits_still_give_an_entry() -> None:
    import numpy  # noqa: F401 -- loaded, as after a large count

    counts = Counts()
    counts.resize(2)
    counts.cw[0] = counts.cl[0] = 2**64
    counts.vs[0][1] = 2**64
    counts.vs[1][0] = 2**64 * 3
    counts.n = 2**65
    assert build_entry(counts, [7, 3], ALL) == {
        "champ_wr": {"7": 0.5},
        "pair_wr": {},
        "counter_wr": {"7": {"3": 0.25}, "3": {"7": 0.75}},
        "n_matches": 2**65,
        "avg_wr": 0.5,
    }


def test_matches_without_an_id_are_not_remembered() -> None:
    state = GroupState("LOW")
    state.add(
        "IRON",
        "json",
        [mk(None, [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True), mk("a", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)],
        Counter(),
    )
    assert state.seen == {"a": 0}
    state.add("BRONZE", "jsonl", [mk("b", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)], Counter())
    assert state.seen == {"a": 0, "b": 3}


def _big(wins: int, losses: int, n: int) -> Counts:
    """Two champions 7 and 3 with ``wins``/``losses`` each, as a pair and against each other."""
    counts = Counts(n, [wins, losses], [losses, wins])
    counts.pw = [[0, wins], [0, 0]]
    counts.pl = [[0, losses], [0, 0]]
    counts.vs = [[0, wins], [losses, 0]]
    return counts


@pytest.mark.parametrize(
    ("wins", "losses"),
    [
        (5 * 10**12, 5 * 10**12),  # 2 * 10**6 * wins wraps int64: a rate of -0.42 before the fix
        (2**62, 2**62),  # wins + losses wraps to a negative count: the champion was dropped
        (2**62, 1),
        (2**63 - 1, 2**63 - 1),
        (3 * 10**12, 10**12),
    ],
)
def test_counts_beyond_exact_int64_arithmetic_give_exact_rates(wins: int, losses: int) -> None:
    """Counts whose rate arithmetic would wrap int64 give the exact entry of the integer loops."""
    import numpy  # noqa: F401 -- loaded, as after a large count

    n = wins + losses
    won = rate(wins, n)
    assert build_entry(_big(wins, losses, n), [7, 3], ALL) == {
        "champ_wr": {"7": won, "3": rate(losses, n)},
        "pair_wr": {"3,7": rate(wins, wins + losses)},
        "counter_wr": {"7": {"3": won}, "3": {"7": rate(losses, n)}},
        "n_matches": n,
        "avg_wr": round((won + rate(losses, n)) / 2, 6),
    }


def test_count_array_takes_counts_up_to_exact_max_either_way() -> None:
    """``count_array``: int64 rows or matrices of counts within ``EXACT_MAX`` either way, OverflowError
    one past it (where int64 rate arithmetic could wrap)."""
    from stratmancer_jobs.jobs.history.aggregate import EXACT_MAX, count_array

    array = count_array([[EXACT_MAX, -EXACT_MAX], [0, 1]])
    assert str(array.dtype) == "int64" and array.tolist() == [[EXACT_MAX, -EXACT_MAX], [0, 1]]
    empty = count_array([])  # no champion yet: still int64 (fastrender indexes tables with it)
    assert str(empty.dtype) == "int64" and empty.tolist() == []
    for bad in ([0, EXACT_MAX + 1], [-EXACT_MAX - 1, 0], [2**63], [2**64]):
        with pytest.raises(OverflowError):
            count_array(bad)


class PathSpy:
    """Records which entry builder or counting path ran (the real one still runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from stratmancer_jobs.jobs.history import aggregate

        self.calls: list[str] = []
        for owner, name in (
            (aggregate, "_build_entry_loops"),
            (aggregate, "_build_entry_numpy"),
            (GroupState, "_count_loop"),
            (GroupState, "_count_numpy"),
        ):
            monkeypatch.setattr(owner, name, self._spy(name, getattr(owner, name)))

    def _spy(self, name: str, real: Any) -> Any:
        def spy(*args: Any) -> Any:
            self.calls.append(name)
            return real(*args)

        return spy


def test_a_small_run_neither_imports_nor_uses_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Numpy not loaded: a small count and its entry take the plain loops and do not import numpy
    (importing it would cost a small incremental run more than it saves)."""
    spy = PathSpy(monkeypatch)
    monkeypatch.delitem(sys.modules, "numpy")
    games = random_games(random.Random(2), 300, range(1, 20), "s")
    state = GroupState("MID")
    state.add("GOLD", "json", games, Counter())
    assert build_entry(state.tiers["GOLD"].counts, list(state.keys), ALL) == oracle(
        [game(m) for m in games], ALL
    )
    assert "numpy" not in sys.modules
    assert spy.calls == ["_count_loop", "_build_entry_loops"]


@pytest.mark.parametrize(
    "pool", [range(1, 20), range(2**21, 2**21 + 14), range(-7, 7), range(2**63 - 20, 2**63)]
)
def test_numpy_once_loaded_counts_and_builds_without_the_loops(
    monkeypatch: pytest.MonkeyPatch, pool: range
) -> None:
    """Numpy loaded and a count worth it: every chunk is counted and the entry built on arrays, the
    plain loops never run (a fallback there would be a silent slowdown), for any 64-bit keys."""
    import numpy  # noqa: F401 -- loaded, as after a large count

    monkeypatch.setattr(records_module, "VECTOR_MIN", 1)
    monkeypatch.setattr(counts_module, "VECTOR_CHUNK", 7)
    spy = PathSpy(monkeypatch)
    games = random_games(random.Random(4), 20, pool, "n")
    state = GroupState("MID")
    state.add("GOLD", "json", games, Counter())
    assert build_entry(state.tiers["GOLD"].counts, list(state.keys), ALL) == oracle(
        [game(m) for m in games], ALL
    )
    assert spy.calls == ["_count_numpy"] * 3 + ["_build_entry_numpy"]


def test_keys_beyond_64_bits_count_in_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Champion keys numpy cannot hold: the count falls back to the loop, the entry is the same."""
    import numpy  # noqa: F401 -- loaded, as after a large count

    monkeypatch.setattr(records_module, "VECTOR_MIN", 1)
    spy = PathSpy(monkeypatch)
    games = random_games(random.Random(4), 20, range(2**64, 2**64 + 14), "b")
    state = GroupState("MID")
    state.add("GOLD", "json", games, Counter())
    assert build_entry(state.tiers["GOLD"].counts, list(state.keys), ALL) == oracle(
        [game(m) for m in games], ALL
    )
    assert spy.calls == ["_count_numpy", "_count_loop", "_build_entry_numpy"]


@pytest.mark.parametrize(
    ("top", "paths"), [(0, ["_build_entry_numpy"]), (1, ["_build_entry_numpy", "_build_entry_loops"])]
)
def test_counts_at_exact_max_are_built_on_arrays(
    monkeypatch: pytest.MonkeyPatch, top: int, paths: list[str]
) -> None:
    """Counts of exactly ``EXACT_MAX`` are built on arrays; one more is refused there and built by the
    loops; the same entry."""
    import numpy  # noqa: F401 -- loaded, as after a large count

    from stratmancer_jobs.jobs.history.aggregate import EXACT_MAX

    spy = PathSpy(monkeypatch)
    wins = EXACT_MAX + top
    entry = build_entry(_big(wins, 1, wins + 1), [7, 3], ALL)
    assert spy.calls == paths
    assert entry["champ_wr"] == {"7": rate(wins, wins + 1), "3": rate(1, wins + 1)}
