"""Exact counting over a dense champion index, with match_id deduplication; pure.

Counts of one elo group live together (``GroupState``): one ``Counts`` per tier, the group's own
numbers being the sum of its tiers minus ``excluded`` (records counted by a tier whose match_id an
earlier tier of the same group already counted). Champions get a dense index in order of first
appearance so that counters are lists of lists, incremented by plain indexing: several times faster
than dicts keyed by tuples, and cheap to store.

Pairs are counted in the order the two champions appear in the team (``pw[i][j]`` or ``pw[j][i]``);
the two cells are added when the index is built, so no per-record sorting is needed.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain

from stratmancer_jobs.jobs.history.records import DUPLICATE, Match, Team
from stratmancer_jobs.jobs.history.tiers import GROUPS, KINDS, TIER_INDEX

MatchId = str | int


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

    def check(self, size: int) -> None:
        """ValueError unless every counter is a non-negative count for ``size`` champions."""
        if self.n < 0 or len(self.cw) != size or len(self.cl) != size:
            raise ValueError("a champion counter has the wrong size")
        for matrix in (self.pw, self.pl, self.vs):
            if len(matrix) != size or any(len(row) != size for row in matrix):
                raise ValueError("a matrix has the wrong size")
        if min(self.cw + self.cl, default=0) < 0:
            raise ValueError("negative count")


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


@dataclass
class GroupState:
    """Everything counted so far for one elo group; ``seen`` maps match_id -> rank of the counted copy."""

    group: str
    keys: list[int] = field(default_factory=list)
    pos: dict[int, int] = field(default_factory=dict)
    tiers: dict[str, TierCounts] = field(default_factory=dict)
    excluded: Counts = field(default_factory=Counts)
    seen: dict[MatchId, int] = field(default_factory=dict)

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
        seen, extra = self.seen, tier_state.extra_seen
        winners: list[Team] = []
        losers: list[Team] = []
        ex_winners: list[Team] = []
        ex_losers: list[Team] = []
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
                    if m.blue_win:
                        ex_winners.append(m.blue_picks)
                        ex_losers.append(m.red_picks)
                    else:
                        ex_winners.append(m.red_picks)
                        ex_losers.append(m.blue_picks)
            if m.blue_win:
                winners.append(m.blue_picks)
                losers.append(m.red_picks)
            else:
                winners.append(m.red_picks)
                losers.append(m.blue_picks)
        self._grow(chain(chain.from_iterable(winners), chain.from_iterable(losers)))
        tier_state.counts.count(self.pos, winners, losers)
        if ex_winners:
            self.excluded.count(self.pos, ex_winners, ex_losers)
        tier_state.skipped.update(skipped)
        if duplicates:
            tier_state.skipped[DUPLICATE] += duplicates
        return len(winners)

    def group_counts(self) -> Counts:
        """The group's own counters: its tiers summed, cross-tier duplicates taken out."""
        return sum_counts((t.counts for t in self.tiers.values()), self.excluded, len(self.keys))
