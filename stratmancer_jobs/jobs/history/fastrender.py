"""Entries' bytes straight from count matrices, with numpy: no dict of ~44,000 rates is built.

Pure. The result is byte for byte what ``aggregate.render_entry(aggregate.build_entry(...))`` gives
(msgspec, sorted keys, indent 2, nested once), which the tests check on random counts:

* a rate is ``k / 10**6`` for the integer ``k`` of ``aggregate.win_rate``; its shortest ``repr`` is
  ``0.`` and the six digits of ``k`` without trailing zeros, ``0.0`` or ``1.0``. Below ``1e-4``
  (``0 < k < 100``) the writers disagree (``5e-05``): None, and the caller takes the dict path;
* keys sort as strings; a pair's name ``a,b`` sorts as (name of a, name of b), since ``,`` sorts
  before every character of a name; the orders are found once per group (``GroupNames``);
* each cell is one line ``<indent>"<key>": <rate>,\\n`` cut out of a fixed-width byte matrix by a mask
  (row-major order is output order), the last ``,`` of each object dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np

from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.jobs.history.counts import Counts, GroupState

DIGITS: Final = 6
SCALE: Final = 10**DIGITS
_SMALLEST: Final = 100  # k below this (and above 0): a rate under 1e-4, written in exponent form
_PAIRS: Final = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], dtype=np.uint8)  # "00".."99"

Text = tuple[Any, Any]  # (n, width) uint8 matrix of zero-padded byte strings, and their lengths


@dataclass(frozen=True)
class GroupNames:
    """The names of one group's champions, sorted, and its pairs (i < j) in the order the index lists them."""

    order: Any  # champion indices sorted by name
    names: Text  # in that order
    pair_lo: Any  # per pair: the index of the champion whose key is smaller, then the other
    pair_hi: Any
    lo_names: Text
    hi_names: Text

    @classmethod
    def of(cls, keys: Sequence[int]) -> GroupNames:
        texts = [str(k).encode("ascii") for k in keys]
        width = max(map(len, texts), default=0)
        matrix = np.frombuffer(b"".join(t.ljust(width, b"\0") for t in texts), dtype=np.uint8)
        matrix = matrix.reshape(len(texts), width)
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        n = len(keys)
        order = np.array(sorted(range(n), key=texts.__getitem__), dtype=np.int64)
        by_text = np.empty(n, dtype=np.int64)
        by_text[order] = np.arange(n)
        by_key = np.empty(n, dtype=np.int64)
        by_key[sorted(range(n), key=keys.__getitem__)] = np.arange(n)
        i, j = np.triu_indices(n, 1)
        smaller = by_key[i] < by_key[j]
        lo, hi = np.where(smaller, i, j), np.where(smaller, j, i)
        listed = np.argsort(by_text[lo] * n + by_text[hi], kind="stable")
        lo, hi = lo[listed], hi[listed]
        return cls(
            order,
            (matrix[order], lengths[order]),
            lo,
            hi,
            (matrix[lo], lengths[lo]),
            (matrix[hi], lengths[hi]),
        )


@dataclass(frozen=True)
class CountArrays:
    """A ``Counts`` as int64 arrays (OverflowError beyond int64)."""

    n: int
    cw: Any
    cl: Any
    pw: Any
    pl: Any
    vs: Any

    @classmethod
    def of(cls, counts: Counts, size: int) -> CountArrays:
        counts.resize(size)
        parts = (counts.cw, counts.cl, counts.pw, counts.pl, counts.vs)
        return cls(counts.n, *(np.array(part, dtype=np.int64) for part in parts))

    def minus(self, other: CountArrays) -> CountArrays:
        return CountArrays(
            self.n - other.n,
            self.cw - other.cw,
            self.cl - other.cl,
            self.pw - other.pw,
            self.pl - other.pl,
            self.vs - other.vs,
        )

    @classmethod
    def total(cls, parts: Sequence[CountArrays]) -> CountArrays:
        """The sum of ``parts`` (at least one)."""
        first, *rest = parts
        n, cw, cl, pw, pl, vs = (
            first.n,
            first.cw.copy(),
            first.cl.copy(),
            first.pw.copy(),
            first.pl.copy(),
            first.vs.copy(),
        )
        for p in rest:
            n += p.n
            cw += p.cw
            cl += p.cl
            pw += p.pw
            pl += p.pl
            vs += p.vs
        return cls(n, cw, cl, pw, pl, vs)


def _rates(won: Any, games: Any, minimum: int) -> tuple[Any, Any]:
    """The cells shown (``games >= minimum``, ``games > 0``) and their ``k`` (rate = k / 10**6)."""
    mask = (games >= minimum) & (games > 0)
    w, g = won[mask], games[mask]
    return mask, (2 * SCALE * w + g) // (2 * g)


def _lines(indent: int, key: list[Text | bytes], k: Any) -> tuple[bytes, Any]:
    """``<indent>"<key>": <k as a rate>,\\n`` for every row, one after the other, and each line's length.

    ``key``: its parts, each a ``Text`` (one string per row) or constant bytes.
    """
    n = len(k)
    widths = [indent + 1, *(len(p) if isinstance(p, bytes) else p[0].shape[1] for p in key), 3, DIGITS + 2, 2]
    edges = np.cumsum([0, *widths]).tolist()
    matrix = np.empty((n, edges[-1]), dtype=np.uint8)
    keep = np.ones((n, edges[-1]), dtype=bool)
    length = np.full(n, indent + 1 + 3 + 2, dtype=np.int64)
    matrix[:, :indent] = ord(" ")
    matrix[:, indent] = ord('"')
    for p, start, stop in zip(key, edges[1:], edges[2:], strict=False):
        if isinstance(p, bytes):
            matrix[:, start:stop] = np.frombuffer(p, dtype=np.uint8)
            length += len(p)
        else:
            matrix[:, start:stop] = p[0]
            keep[:, start:stop] = np.arange(stop - start) < p[1][:, None]
            length += p[1]
    at = edges[-4]
    matrix[:, at : at + 3] = np.frombuffer(b'": ', dtype=np.uint8)
    at += 3
    matrix[:, at] = ord("0")
    matrix[:, at + 1] = ord(".")
    low = np.minimum(k, SCALE - 1)  # 10**6 is written "1.0": its digits are those of 0
    matrix[:, at + 2 : at + 4] = _PAIRS[low // 10_000]
    matrix[:, at + 4 : at + 6] = _PAIRS[low // 100 % 100]
    matrix[:, at + 6 : at + 8] = _PAIRS[low % 100]
    top = k == SCALE
    matrix[top, at] = ord("1")
    matrix[top, at + 2 : at + 8] = ord("0")
    zeros = np.zeros(n, dtype=np.int64)
    for power in range(1, DIGITS):  # trailing zero digits of k (0 and 10**6 both keep "x.0")
        zeros += (k % 10**power) == 0
    value_len = DIGITS + 2 - zeros
    keep[:, at : at + DIGITS + 2] = np.arange(DIGITS + 2) < value_len[:, None]
    length += value_len
    matrix[:, at + DIGITS + 2 :] = np.frombuffer(b",\n", dtype=np.uint8)
    return bytes(matrix[keep].tobytes()), length


def _object(body: bytes, indent: int) -> bytes:
    """``{`` + lines + ``}`` at this indent (the lines' last ``,`` dropped), ``{}`` when empty."""
    if not body:
        return b"{}"
    return b"{\n" + body[:-2] + b"\n" + b" " * (indent - 2) + b"}"


def _take(text: Text, rows: Any) -> Text:
    return text[0][rows], text[1][rows]


def render_arrays(
    counts: CountArrays, names: GroupNames, thresholds: HistorySettings
) -> tuple[bytes, dict[str, int]] | None:
    """The entry's bytes as ``render_entry`` writes them, and its sizes; None when a rate is below
    1e-4 or ``avg_wr`` would print in exponent form (the dict path then writes them as ``json`` does)."""
    order = names.order
    cw, cl = counts.cw[order], counts.cl[order]
    champ_mask, champ_k = _rates(cw, cw + cl, thresholds.min_champ_games)

    lo, hi = names.pair_lo, names.pair_hi
    won = counts.pw[lo, hi] + counts.pw[hi, lo]
    pair_mask, pair_k = _rates(won, won + counts.pl[lo, hi] + counts.pl[hi, lo], thresholds.min_pair_games)

    vs = counts.vs[order][:, order]
    counter_mask, counter_k = _rates(vs, vs + vs.T, thresholds.min_counter_games)

    for k in (champ_k, pair_k, counter_k):
        if ((k > 0) & (k < _SMALLEST)).any():
            return None
    rates = (champ_k / SCALE).tolist()
    avg = round(math.fsum(rates) / len(rates), DIGITS) if rates else 0.5
    avg_text = msgspec.json.encode(avg)
    if b"0.0000" in avg_text or b"e-" in avg_text:
        return None

    champ, _ = _lines(6, [_take(names.names, champ_mask)], champ_k)
    pair, _ = _lines(6, [_take(names.lo_names, pair_mask), b",", _take(names.hi_names, pair_mask)], pair_k)
    rows, cols = np.nonzero(counter_mask)
    cells, line_len = _lines(8, [_take(names.names, cols)], counter_k)
    ends = np.cumsum(line_len).tolist()  # cut the cells into their rows
    per_row = np.bincount(rows, minlength=len(order)).tolist()
    parts: list[bytes] = []
    start, cell = 0, 0
    name_matrix, name_len = names.names
    for r, n in enumerate(per_row):
        if n:
            cell += n
            stop = ends[cell - 1]
            name = name_matrix[r, : name_len[r]].tobytes()
            parts.append(b'      "' + name + b'": ' + _object(cells[start:stop], 8) + b",\n")
            start = stop

    fragment = b"".join(
        (
            b'{\n    "avg_wr": ',
            avg_text,
            b',\n    "champ_wr": ',
            _object(champ, 6),
            b',\n    "counter_wr": ',
            _object(b"".join(parts), 6),
            b',\n    "n_matches": ',
            str(counts.n).encode("ascii"),
            b',\n    "pair_wr": ',
            _object(pair, 6),
            b"\n  }",
        )
    )
    stats = {
        "n_matches": counts.n,
        "champions": len(champ_k),
        "pairs": len(pair_k),
        "counters": len(counter_k),
    }
    return fragment, stats


def render_group(
    state: GroupState, group: str, wanted: Sequence[str], thresholds: HistorySettings
) -> dict[str, tuple[bytes, dict[str, int]] | None]:
    """``render_arrays`` for each wanted key of one group: a tier, or the group itself (its tiers summed,
    cross-tier duplicates taken out, as ``GroupState.group_counts``). OverflowError beyond int64."""
    size = len(state.keys)
    names = GroupNames.of(state.keys)
    arrays: dict[str, CountArrays] = {}

    def tier(name: str) -> CountArrays:
        if name not in arrays:
            arrays[name] = CountArrays.of(state.tiers[name].counts, size)
        return arrays[name]

    out: dict[str, tuple[bytes, dict[str, int]] | None] = {}
    for key in wanted:
        if key == group:
            counts = CountArrays.total([tier(t) for t in state.tiers]).minus(
                CountArrays.of(state.excluded, size)
            )
        else:
            counts = tier(key)
        out[key] = render_arrays(counts, names, thresholds)
    return out
