"""``fastrender`` writes the bytes of the dict path (``build_entry`` + ``render_entry``), or says it cannot.

The reference is the plain-loop entry builder (``_build_entry_loops``: no numpy) rendered by msgspec,
itself checked against ``json.dumps`` in the history tests.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.jobs.history.aggregate import _build_entry_loops, render_entry
from stratmancer_jobs.jobs.history.counts import Counts, GroupState
from stratmancer_jobs.jobs.history.fastrender import CountArrays, GroupNames, render_arrays, render_group
from stratmancer_jobs.jobs.history.records import Match


def _counts(rng: random.Random, size: int, top: int) -> Counts:
    def row() -> list[int]:
        return [rng.randint(0, top) for _ in range(size)]

    counts = Counts(
        rng.randint(0, 10**6), row(), row(), [row() for _ in range(size)], [row() for _ in range(size)]
    )
    counts.vs = [row() for _ in range(size)]
    for matrix in (counts.pw, counts.pl, counts.vs):
        for i in range(size):
            matrix[i][i] = 0  # a champion never pairs with or counters itself
    return counts


def _reference(counts: Counts, keys: list[int], thresholds: HistorySettings) -> bytes | None:
    return render_entry(_build_entry_loops(counts, keys, thresholds))


keys_strategy = st.lists(
    st.one_of(st.integers(1, 999), st.integers(-(2**63), 2**63 - 1), st.integers(2**64, 2**70)),
    min_size=1,
    max_size=12,
    unique=True,
)


@settings(max_examples=150, deadline=None)
@given(
    keys=keys_strategy,
    seed=st.integers(0, 2**32),
    top=st.sampled_from([1, 3, 40, 10**6]),
    limits=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
)
@example(keys=[1, 10, 2, 100, 11], seed=1, top=3, limits=(1, 1, 1))  # "1" < "10" < "100" < "11" < "2"
@example(keys=[-5, 5, -50, 0], seed=2, top=40, limits=(1, 1, 1))  # "-" sorts before the digits
def test_the_same_bytes_as_the_dict_path(
    keys: list[int], seed: int, top: int, limits: tuple[int, int, int]
) -> None:
    thresholds = HistorySettings(*limits)
    counts = _counts(random.Random(seed), len(keys), top)
    expected = _reference(counts, keys, thresholds)
    got = render_arrays(CountArrays.of(counts, len(keys)), GroupNames.of(keys), thresholds)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert got[0] == expected
        entry = json.loads(expected)
        assert got[1] == {
            "n_matches": entry["n_matches"],
            "champions": len(entry["champ_wr"]),
            "pairs": len(entry["pair_wr"]),
            "counters": sum(len(row) for row in entry["counter_wr"].values()),
        }


@pytest.mark.parametrize(
    ("wins", "games", "rendered"),
    [
        (0, 7, b"0.0"),
        (7, 7, b"1.0"),
        (1, 2, b"0.5"),
        (1, 3, b"0.333333"),
        (2, 3, b"0.666667"),
        (1, 10000, b"0.0001"),
        (1, 8, b"0.125"),
        (999999, 1000000, b"0.999999"),
        (9999995, 10000000, b"1.0"),  # rounds half up to 1
        (123, 1000, b"0.123"),
        (10, 100, b"0.1"),
    ],
)
def test_every_shape_of_a_rate(wins: int, games: int, rendered: bytes) -> None:
    """One champion pair with the given record: the pair's rate is written as ``json`` writes it."""
    counts = Counts(
        games, [wins, wins], [games - wins, games - wins], [[0, wins], [0, 0]], [[0, games - wins], [0, 0]]
    )
    counts.vs = [[0, 0], [0, 0]]
    thresholds = HistorySettings(1, 1, 1)
    got = render_arrays(CountArrays.of(counts, 2), GroupNames.of([3, 4]), thresholds)
    assert got is not None
    assert got[0] == _reference(counts, [3, 4], thresholds)
    assert b'"3,4": ' + rendered + b"\n" in got[0]


@pytest.mark.parametrize(("wins", "games"), [(1, 20000), (1, 1000001), (3, 40000)])
def test_a_rate_below_1e_4_is_left_to_the_dict_path(wins: int, games: int) -> None:
    counts = Counts(games, [wins, 1], [games - wins, 1], [[0, 0], [0, 0]], [[0, 0], [0, 0]])
    counts.vs = [[0, 0], [0, 0]]
    thresholds = HistorySettings(1, 1, 1)
    assert render_arrays(CountArrays.of(counts, 2), GroupNames.of([3, 4]), thresholds) is None
    assert _reference(counts, [3, 4], thresholds) is None


def test_avg_wr_below_1e_4_is_left_to_the_dict_path() -> None:
    """Rates of 0 and one of 0.0001 among many: the mean prints in exponent form, json's way."""
    size = 4
    counts = Counts(10**4, [1, 0, 0, 0], [9999, 10**4, 10**4, 10**4], [[0] * size for _ in range(size)])
    counts.pl = [[0] * size for _ in range(size)]
    counts.vs = [[0] * size for _ in range(size)]
    thresholds = HistorySettings(1, 1, 1)
    assert _reference(counts, [1, 2, 3, 4], thresholds) is None
    assert render_arrays(CountArrays.of(counts, size), GroupNames.of([1, 2, 3, 4]), thresholds) is None


def test_a_group_entry_is_its_tiers_minus_cross_tier_duplicates() -> None:
    """``render_group`` for the group's key sums its tiers and takes ``excluded`` out, as
    ``GroupState.group_counts`` does; a tier's key renders that tier alone."""
    rng = random.Random(5)
    pool = list(range(1, 30))
    state = GroupState("MID")
    for tier, prefix in (("GOLD", "G"), ("PLATINUM", "P"), ("EMERALD", "G")):  # EMERALD repeats GOLD's ids
        records = []
        for i in range(60):
            picks = rng.sample(pool, 10)
            records.append(Match(tuple(picks[:5]), tuple(picks[5:]), rng.random() < 0.5, f"{prefix}{i}"))
        state.add(tier, "json", records, Counter())
    assert state.excluded.n == 60
    thresholds = HistorySettings(1, 1, 1)
    got = render_group(state, "MID", ["MID", "GOLD", "EMERALD"], thresholds)
    assert set(got) == {"MID", "GOLD", "EMERALD"}
    for key, counts in (("MID", state.group_counts()), ("GOLD", state.tiers["GOLD"].counts)):
        result = got[key]
        assert result is not None
        assert result[0] == _reference(counts, state.keys, thresholds)
    assert got["EMERALD"] is not None
    assert json.loads(got["EMERALD"][0])["n_matches"] == 60


def test_avg_wr_of_1e_6_is_left_to_the_dict_path() -> None:
    """One champion at 0.0001 and 99 at 0: every rate prints plainly, the mean (1e-06) does not."""
    size = 100
    counts = Counts(10**4, [1] + [0] * 99, [9999] + [10**4] * 99, [[0] * size for _ in range(size)])
    counts.pl = [[0] * size for _ in range(size)]
    counts.vs = [[0] * size for _ in range(size)]
    thresholds = HistorySettings(1, 1, 1)
    keys = list(range(1, size + 1))
    assert _reference(counts, keys, thresholds) is None
    assert render_arrays(CountArrays.of(counts, size), GroupNames.of(keys), thresholds) is None


def test_a_group_without_champions_renders_the_empty_entry() -> None:
    counts = Counts()
    thresholds = HistorySettings(1, 1, 1)
    got = render_arrays(CountArrays.of(counts, 0), GroupNames.of([]), thresholds)
    assert got == (
        _reference(counts, [], thresholds),
        {"n_matches": 0, "champions": 0, "pairs": 0, "counters": 0},
    )


def test_lines_reports_each_lines_length() -> None:
    """``_lines`` returns the lines and their lengths (the counter rows are cut by them)."""
    import numpy as np

    from stratmancer_jobs.jobs.history.fastrender import _lines

    names = GroupNames.of([7, 123, 45])
    k = np.array([0, 500000, 1000000], dtype=np.int64)
    text, lengths = _lines(names.pair6, np.arange(3), k)
    lines = text.split(b"\n")[:-1]
    assert [len(line) + 1 for line in lines] == lengths.tolist()
    assert lines == [b'      "45,123": 0.0,', b'      "7,123": 0.5,', b'      "7,45": 1.0,']  # name order


@pytest.mark.parametrize("width", [2, 4])
def test_digit_tables(width: int) -> None:
    """Every entry of a digit table: the last ``width`` digits as ASCII, first digit in the lowest
    byte, and the count of trailing zero digits (all of them for a multiple of 10**width)."""
    from stratmancer_jobs.jobs.history.fastrender import _digit_table

    packed, zeros = _digit_table(width)
    assert len(packed) == len(zeros) == 10**width + 1
    assert (packed.dtype.kind, zeros.dtype.kind) == ("u", "i")  # both index other tables
    for i in range(10**width + 1):
        text = str(i % 10**width).zfill(width).encode("ascii")
        assert int(packed[i]).to_bytes(8, "little")[:width] == text
        assert int(packed[i]) >> (8 * width) == 0
        assert int(zeros[i]) == len(text) - len(text.rstrip(b"0"))


@pytest.mark.parametrize("big", [5 * 10**12, 2**62, 2**63 - 1, 2**64, -(2**62)])
def test_counts_beyond_exact_int64_arithmetic_are_left_to_the_dict_path(big: int) -> None:
    """A count whose rate arithmetic could wrap int64 (a corrupt cache) is refused with OverflowError,
    which sends the caller to the exact dict path, instead of rendering wrong rates."""
    counts = Counts(2 * big, [big, big], [big, big], [[0, big], [0, 0]], [[0, big], [0, 0]])
    counts.vs = [[0, big], [big, 0]]
    with pytest.raises(OverflowError):
        CountArrays.of(counts, 2)
    state = GroupState("MID")
    state.tiers["GOLD"].counts = counts
    state.keys = [3, 4]
    with pytest.raises(OverflowError):
        render_group(state, "MID", ["GOLD"], HistorySettings(1, 1, 1))


def test_counts_up_to_exact_max_render_from_arrays() -> None:
    """Counts of exactly ``EXACT_MAX`` in every cell of every tier still render, the same bytes."""
    from stratmancer_jobs.jobs.history.aggregate import EXACT_MAX

    state = GroupState("HIGH")
    for tier in state.tiers.values():
        tier.counts = Counts(EXACT_MAX, [EXACT_MAX, 1], [1, EXACT_MAX], [[0, EXACT_MAX], [0, 0]])
        tier.counts.pl = [[0, EXACT_MAX], [0, 0]]
        tier.counts.vs = [[0, EXACT_MAX], [1, 0]]
    state.keys = [3, 4]
    thresholds = HistorySettings(1, 1, 1)
    got = render_group(state, "HIGH", ["HIGH", "MASTER"], thresholds)
    for key, counts in (("HIGH", state.group_counts()), ("MASTER", state.tiers["MASTER"].counts)):
        result = got[key]
        assert result is not None
        assert result[0] == _reference(counts, state.keys, thresholds)
    assert b'"3,4": 0.5' in got["HIGH"][0]  # type: ignore[index]


def test_the_planner_renders_counts_beyond_exact_max_through_the_dict_path() -> None:
    """Refused by ``fastrender``, counts of 5e12 still become the exact entry (every rate 0.5)."""
    from stratmancer_jobs.jobs.history.plan import _build

    big = 5 * 10**12
    state = GroupState("MID")
    state.tiers["GOLD"].counts = Counts(
        2 * big, [big, big], [big, big], [[0, big], [0, 0]], [[0, big], [0, 0]]
    )
    state.tiers["GOLD"].counts.vs = [[0, big], [big, 0]]
    state.keys = [3, 4]
    fresh = _build(state, "MID", ["GOLD", "MID"], HistorySettings(1, 1, 1))
    for key in ("GOLD", "MID"):
        fragment = fresh[key].fragment
        assert fragment is not None
        assert json.loads(fragment) == {
            "avg_wr": 0.5,
            "champ_wr": {"3": 0.5, "4": 0.5},
            "counter_wr": {"3": {"4": 0.5}, "4": {"3": 0.5}},
            "n_matches": 2 * big,
            "pair_wr": {"3,4": 0.5},
        }
