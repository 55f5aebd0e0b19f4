"""Exact counting over a dense champion index, with match_id deduplication; pure.

Counts of one elo group live together (``GroupState``): one ``Counts`` per tier, the group's own
numbers being the sum of its tiers minus ``excluded`` (records counted by a tier whose match_id an
earlier tier of the same group already counted). Champions get a dense index in order of first
appearance so that counters are lists of lists, incremented by plain indexing: several times faster
than dicts keyed by tuples, and cheap to store.

Pairs are counted in the order the two champions appear in the team (``pw[i][j]`` or ``pw[j][i]``);
the two cells are added when the index is built, so no per-record sorting is needed.

A file's records are counted at once with numpy (``bincount`` over the dense indices of all winners,
losers, pairs and match-ups): the only per-record Python work left is pulling the picks out of the
decoded records into arrays (in C, through ``map``/``chain``) and, when ids repeat, the dedup loop.
Champion keys beyond 64 bits (hostile input) fall back to the plain loop.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, groupby
from typing import Any, Final

from stratmancer_jobs.jobs.history.records import DUPLICATE, VECTOR_CHUNK, Match, Team, vectorise
from stratmancer_jobs.jobs.history.tiers import GROUPS, KINDS, TIER_INDEX
from stratmancer_jobs.patchver import normalize_patch

MatchId = str | int


_BLUE: Final = operator.attrgetter("blue_picks")
_RED: Final = operator.attrgetter("red_picks")
_WIN: Final = operator.attrgetter("blue_win")
_ID: Final = operator.attrgetter("match_id")
_CREATED: Final = operator.attrgetter("game_creation")
_PATCH: Final = operator.attrgetter("patch")
_DIRECT: Final = 1 << 20  # champion keys below this are looked up in a table, others searched
# the 10 (i, j) slot pairs of a team, i listed first
_PAIR_A: Final = (0, 0, 0, 0, 1, 1, 1, 2, 2, 3)
_PAIR_B: Final = (1, 2, 3, 4, 2, 3, 4, 3, 4, 4)


def _add_rows(rows: list[list[int]], delta: Any) -> list[list[int]]:
    return [list(map(operator.add, row, d)) for row, d in zip(rows, delta.tolist(), strict=True)]


class Reorder(Exception):
    """An appended record would have come first in a full rebuild: the group must be rebuilt."""


@dataclass
class Counts:
    """Win/loss counters: per champion, per same-team pair, and per (winner's champion, loser's champion)."""

    n: int = 0
    cw: list[int] = field(default_factory=list)  # games won by champion i
    cl: list[int] = field(default_factory=list)  # games lost by champion i
    pw: list[list[int]] = field(default_factory=list)  # i and j won together (i listed first)
    pl: list[list[int]] = field(default_factory=list)  # i and j lost together (i listed first)
    vs: list[list[int]] = field(default_factory=list)  # i's team beat a team with j

    def resize(self, size: int) -> None:
        """Grow every counter to ``size`` champions (zeros for the new ones)."""
        old = len(self.cw)
        if size <= old:
            return
        extra = size - old
        self.cw.extend([0] * extra)
        self.cl.extend([0] * extra)
        for matrix in (self.pw, self.pl, self.vs):
            for row in matrix:
                row.extend([0] * extra)
            matrix.extend([0] * size for _ in range(extra))

    def count(self, pos: dict[int, int], winners: Sequence[Team], losers: Sequence[Team]) -> None:
        """Add matches given as (winning team, losing team); every champion must be in ``pos``."""
        cw, cl, pw, pl, vs = self.cw, self.cl, self.pw, self.pl, self.vs
        for w, lo in zip(winners, losers, strict=True):
            w0, w1, w2, w3, w4 = [pos[c] for c in w]
            l0, l1, l2, l3, l4 = [pos[c] for c in lo]
            cw[w0] += 1
            cw[w1] += 1
            cw[w2] += 1
            cw[w3] += 1
            cw[w4] += 1
            cl[l0] += 1
            cl[l1] += 1
            cl[l2] += 1
            cl[l3] += 1
            cl[l4] += 1
            r = pw[w0]
            r[w1] += 1
            r[w2] += 1
            r[w3] += 1
            r[w4] += 1
            r = pw[w1]
            r[w2] += 1
            r[w3] += 1
            r[w4] += 1
            r = pw[w2]
            r[w3] += 1
            r[w4] += 1
            pw[w3][w4] += 1
            r = pl[l0]
            r[l1] += 1
            r[l2] += 1
            r[l3] += 1
            r[l4] += 1
            r = pl[l1]
            r[l2] += 1
            r[l3] += 1
            r[l4] += 1
            r = pl[l2]
            r[l3] += 1
            r[l4] += 1
            pl[l3][l4] += 1
            for a in (w0, w1, w2, w3, w4):
                r = vs[a]
                r[l0] += 1
                r[l1] += 1
                r[l2] += 1
                r[l3] += 1
                r[l4] += 1
        self.n += len(winners)

    def count_positions(self, w: Any, lo: Any) -> None:
        """Add matches given as (n, 5) arrays of dense indices: the winning and the losing team."""
        import numpy as np  # imported when counting only: a no-change run does not pay for it

        size = len(self.cw)
        cells = size * size
        self.cw = list(map(operator.add, self.cw, np.bincount(w.ravel(), minlength=size).tolist()))
        self.cl = list(map(operator.add, self.cl, np.bincount(lo.ravel(), minlength=size).tolist()))
        for name, team in (("pw", w), ("pl", lo)):
            flat = (team[:, _PAIR_A] * size + team[:, _PAIR_B]).ravel()
            delta = np.bincount(flat, minlength=cells).reshape(size, size)
            setattr(self, name, _add_rows(getattr(self, name), delta))
        flat = (w[:, :, None] * size + lo[:, None, :]).ravel()
        self.vs = _add_rows(self.vs, np.bincount(flat, minlength=cells).reshape(size, size))
        self.n += len(w)

    def check(self, size: int) -> None:
        """ValueError unless every counter is a count for ``size`` champions between 0 and ``n``: a
        champion, a pair or a match-up is in a match at most once, so more than ``n`` is corrupt."""
        if self.n < 0 or len(self.cw) != size or len(self.cl) != size:
            raise ValueError("a champion counter has the wrong size")
        for matrix in (self.pw, self.pl, self.vs):
            if len(matrix) != size or any(len(row) != size for row in matrix):
                raise ValueError("a matrix has the wrong size")
        rows = [self.cw, self.cl, *self.pw, *self.pl, *self.vs]
        if size and min(map(min, rows)) < 0:
            raise ValueError("negative count")
        if size and max(map(max, rows)) > self.n:
            raise ValueError("a count above the number of matches")


def sum_counts(parts: Iterable[Counts], minus: Counts, size: int) -> Counts:
    """The sum of ``parts`` minus ``minus``, all resized to ``size`` champions."""
    total = Counts()
    total.resize(size)
    for part in parts:
        part.resize(size)
        _add(total, part, 1)
    minus.resize(size)
    _add(total, minus, -1)
    return total


def _add(total: Counts, part: Counts, sign: int) -> None:
    if not part.n and sign < 0:
        return
    op = operator.add if sign > 0 else operator.sub
    total.n = op(total.n, part.n)
    total.cw = list(map(op, total.cw, part.cw))
    total.cl = list(map(op, total.cl, part.cl))
    total.pw = [list(map(op, x, y)) for x, y in zip(total.pw, part.pw, strict=True)]
    total.pl = [list(map(op, x, y)) for x, y in zip(total.pl, part.pl, strict=True)]
    total.vs = [list(map(op, x, y)) for x, y in zip(total.vs, part.vs, strict=True)]


@dataclass
class TierCounts:
    """One tier: its counters, skip counts, and the ids it counted that its group counted elsewhere."""

    counts: Counts = field(default_factory=Counts)
    skipped: Counter[str] = field(default_factory=Counter)
    # match_id -> kind index, for ids whose group occurrence is in another tier of the group
    extra_seen: dict[MatchId, int] = field(default_factory=dict)
    # the freshness figures: the newest game_creation (epoch ms) of the records counted, and how many
    # counted records carry each patch (a max and sums: an append extends them exactly)
    newest: int | None = None
    patches: Counter[str] = field(default_factory=Counter)
    # the records read by the last run that read any of this tier (valid or not), and the invalid ones
    read: int = 0
    read_invalid: Counter[str] = field(default_factory=Counter)


def newest_created(records: Sequence[Match]) -> int | None:
    """The largest int ``game_creation`` of ``records`` (None when none has one); one C-level ``max``
    when every record has an int, as the collector writes them."""
    try:
        value = max(map(_CREATED, records), default=None)
    except TypeError:  # None, a string, ... beside the ints: keep the ints
        value = None
    if type(value) is int:  # the maximum is an int: every other int is below it
        return value
    return max((v for v in map(_CREATED, records) if type(v) is int), default=None)


def patch_counts(records: Sequence[Match]) -> Counter[str]:
    """How many of ``records`` carry each patch (``"16.23"``, ``"16.09"`` counted as ``"16.9"``); a
    value that is not a ``MAJOR.MINOR`` string is not counted. Counted in C, then the few distinct
    values are checked."""
    counts: Counter[Any] = Counter()
    try:
        # a collector writes a patch's matches one after another: counting runs of equal values
        # (compared, not hashed, in C) is ~3x faster than hashing every value into a Counter
        for value, run in groupby(map(_PATCH, records)):
            counts[value] += len(list(run))
    except TypeError:  # an unhashable value (a list, an object)
        counts = Counter(p for p in map(_PATCH, records) if type(p) is str)
    out: Counter[str] = Counter()
    for value, n in counts.items():
        patch = normalize_patch(value)
        if patch is not None:
            out[patch] += n
    return out


def later(a: int | None, b: int | None) -> int | None:
    """The larger of two optional creation times."""
    return b if a is None else a if b is None else max(a, b)


@dataclass
class GroupState:
    """Everything counted so far for one elo group; ``seen`` maps match_id -> rank of the counted copy."""

    group: str
    keys: list[int] = field(default_factory=list)
    pos: dict[int, int] = field(default_factory=dict)
    tiers: dict[str, TierCounts] = field(default_factory=dict)
    excluded: Counts = field(default_factory=Counts)
    seen: dict[MatchId, int] = field(default_factory=dict)
    excluded_patches: Counter[str] = field(default_factory=Counter)  # ``patches`` of ``excluded``
    read_now: set[str] = field(default_factory=set)  # tiers read by this run (not stored)

    def __post_init__(self) -> None:
        for tier in GROUPS[self.group]:
            self.tiers.setdefault(tier, TierCounts())

    def _grow(self, champions: Iterable[int]) -> None:
        new = sorted(set(champions) - self.pos.keys())
        if not new:
            return
        for champ in new:
            self.pos[champ] = len(self.keys)
            self.keys.append(champ)
        size = len(self.keys)
        for tier in self.tiers.values():
            tier.counts.resize(size)
        self.excluded.resize(size)

    def add(self, tier: str, kind: str, records: Sequence[Match], skipped: Counter[str]) -> int:
        """Count a file's valid records in file order; returns how many were counted.

        A match_id counts once per tier (its first valid occurrence in canonical order) and once per
        group. Raises Reorder when an earlier-ordered copy turns up after a later one was counted,
        which only an incremental run can see; the caller then rebuilds the group.
        """
        tier_state = self.tiers[tier]
        kind_index = KINDS.index(kind)
        tier_index = TIER_INDEX[tier]
        rank = tier_index * 2 + kind_index
        seen = self.seen
        ids = list(map(_ID, records))
        unique = set(ids)
        if None not in unique and len(unique) == len(ids) and seen.keys().isdisjoint(unique):
            # The usual case: distinct ids never seen in the group: every record counts (no loop).
            seen.update(dict.fromkeys(ids, rank))
            kept, excluded, duplicates = records, list[Match](), 0
        else:
            kept, excluded, duplicates = self._dedup(tier_state, records, kind_index, tier_index, rank)
        self._count(tier_state.counts, kept)
        if excluded:
            self._count(self.excluded, excluded)
            self.excluded_patches.update(patch_counts(excluded))
        if kept:
            tier_state.newest = later(tier_state.newest, newest_created(kept))
            tier_state.patches.update(patch_counts(kept))
        if records or skipped:
            if tier not in self.read_now:  # the first read of the tier in this run: a new share
                self.read_now.add(tier)
                tier_state.read, tier_state.read_invalid = 0, Counter()
            tier_state.read += len(records) + skipped.total()
            tier_state.read_invalid.update(skipped)
        tier_state.skipped.update(skipped)
        if duplicates:
            tier_state.skipped[DUPLICATE] += duplicates
        return len(kept)

    def _count(self, counts: Counts, records: Sequence[Match]) -> None:
        """Count ``records`` into ``counts``, growing the champion index first; numpy counts them
        ``VECTOR_CHUNK`` at a time, so that its arrays stay small whatever the file's size."""
        n = len(records)
        if not n:
            return
        if not vectorise(n):  # a small append: the plain loop beats importing numpy
            self._count_loop(counts, records)
            return
        for start in range(0, n, VECTOR_CHUNK):
            self._count_numpy(counts, records[start : start + VECTOR_CHUNK])

    def _count_numpy(self, counts: Counts, records: Sequence[Match]) -> None:
        import numpy as np

        n = len(records)

        try:
            blue = np.fromiter(chain.from_iterable(map(_BLUE, records)), np.int64, 5 * n).reshape(n, 5)
            red = np.fromiter(chain.from_iterable(map(_RED, records)), np.int64, 5 * n).reshape(n, 5)
        except (OverflowError, ValueError):  # a champion key beyond 64 bits: the plain loop
            self._count_loop(counts, records)
            return
        every = np.concatenate((blue.ravel(), red.ravel()))
        low, high = int(every.min()), int(every.max())
        if low >= 0 and high < _DIRECT:  # real keys (1..~1000): a direct lookup table
            key_list = np.flatnonzero(np.bincount(every)).tolist()
            self._grow(key_list)
            lut = np.zeros(high + 1, dtype=np.int64)
            lut[key_list] = [self.pos[k] for k in key_list]
            blue, red = lut[blue], lut[red]
        else:
            keys = np.unique(every)
            key_list = keys.tolist()
            self._grow(key_list)
            lut = np.array([self.pos[k] for k in key_list], dtype=np.int64)
            blue, red = lut[np.searchsorted(keys, blue)], lut[np.searchsorted(keys, red)]
        won = np.fromiter(map(_WIN, records), bool, n)[:, None]
        counts.count_positions(np.where(won, blue, red), np.where(won, red, blue))

    def _count_loop(self, counts: Counts, records: Sequence[Match]) -> None:
        winners = [m.blue_picks if m.blue_win else m.red_picks for m in records]
        losers = [m.red_picks if m.blue_win else m.blue_picks for m in records]
        self._grow(chain(chain.from_iterable(winners), chain.from_iterable(losers)))
        counts.count(self.pos, winners, losers)

    def _dedup(
        self, tier_state: TierCounts, records: Sequence[Match], kind_index: int, tier_index: int, rank: int
    ) -> tuple[list[Match], list[Match], int]:
        """The records that count, those the group already counted from another tier, and duplicates."""
        seen, extra = self.seen, tier_state.extra_seen
        kept: list[Match] = []
        excluded: list[Match] = []
        duplicates = 0
        for m in records:
            mid = m.match_id
            if mid is not None:
                first = seen.get(mid)
                if first is None:
                    seen[mid] = rank
                elif first // 2 == tier_index:
                    if first > rank:
                        raise Reorder(mid)
                    duplicates += 1
                    continue
                else:
                    other = extra.get(mid)
                    if other is not None:
                        if other > kind_index:
                            raise Reorder(mid)
                        duplicates += 1
                        continue
                    if first > rank:
                        raise Reorder(mid)
                    extra[mid] = kind_index
                    excluded.append(m)
            kept.append(m)
        return kept, excluded, duplicates

    def newest(self) -> int | None:
        """The newest game_creation over the records any tier of the group counted."""
        newest: int | None = None
        for tier in self.tiers.values():
            newest = later(newest, tier.newest)
        return newest

    def group_patches(self) -> Counter[str]:
        """Matches per patch as the group counts them: its tiers' summed, cross-tier duplicates out."""
        total: Counter[str] = Counter()
        for tier in self.tiers.values():
            total.update(tier.patches)
        total.subtract(self.excluded_patches)
        return +total

    def group_counts(self) -> Counts:
        """The group's own counters: its tiers summed, cross-tier duplicates taken out."""
        return sum_counts((t.counts for t in self.tiers.values()), self.excluded, len(self.keys))
