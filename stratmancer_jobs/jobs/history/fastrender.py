"""Entries' bytes straight from count matrices, with numpy: no dict of ~44,000 rates is built.

Pure. The result is byte for byte what ``aggregate.render_entry(aggregate.build_entry(...))`` gives
(msgspec, sorted keys, indent 2, nested once), which the tests check on random counts:

* a rate is ``k / 10**6`` for the integer ``k`` of ``aggregate.win_rate``; its shortest ``repr`` is
  ``0.`` and the six digits of ``k`` without trailing zeros, ``0.0`` or ``1.0``. Below ``1e-4``
  (``0 < k < 100``) the writers disagree (``5e-05``): None, and the caller takes the dict path;
* keys sort as strings; a pair's name ``a,b`` sorts as (name of a, name of b), since ``,`` sorts
  before every character of a name; the orders are found once per group (``GroupNames``);
* each cell is one line ``<indent>"<key>": <rate>,\\n``: the rows of a per-group line template (the
  line's head, NUL-padded, 8 bytes for the rate, ``,\\n``) are gathered, the rate is written in as one
  packed uint64 with the bytes past its length zeroed, and every NUL is dropped in one pass (row-major
  order is output order); the last ``,`` of each object is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np

from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.jobs.history.aggregate import (
    DIGITS,
    SCALE,
    average,
    count_array,
    rate_cells,
    written_alike,
)
from stratmancer_jobs.jobs.history.counts import Counts, GroupState

_SMALLEST: Final = 100  # k below this (and above 0): a rate under 1e-4, written in exponent form

Text = tuple[Any, Any]  # (n, width) uint8 matrix of left-aligned byte strings, and their lengths


def _digit_table(width: int) -> tuple[Any, Any]:
    """For i in [0, 10**width]: the last ``width`` digits of i as ASCII packed little-endian (first
    digit in the lowest byte), and how many of them are trailing zeros (``width`` for 0)."""
    i = np.arange(10**width + 1, dtype=np.uint64)
    packed = np.zeros(len(i), dtype=np.uint64)
    zeros = np.zeros(len(i), dtype=np.int64)
    trailing = np.ones(len(i), dtype=bool)
    for place in range(width):  # from the last digit backwards
        digit = i // np.uint64(10**place) % np.uint64(10)
        packed |= (digit + np.uint64(48)) << np.uint64(8 * (width - 1 - place))
        trailing &= digit == 0
        zeros += trailing
    return packed, zeros


# A rate's text is 8 bytes, "0." and the 6 digits of k = 100 * high + low, as one little-endian uint64;
# k = 10**6 is "1.000000" (high = 10000: digits "0000", the "0" before the point made "1").
_HIGH, _HIGH_ZEROS = _digit_table(4)
_LOW, _LOW_ZEROS = _digit_table(2)
_ZERO_POINT: Final = np.uint64(ord("0") | ord(".") << 8)
_FIRST_BYTES: Final = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)  # n low bytes


def _pack(n: int, parts: Sequence[Text | bytes]) -> Text:
    """Each row's parts (constant bytes, or one string per row) joined, left-aligned in one matrix."""
    widths = [len(p) if isinstance(p, bytes) else p[0].shape[1] for p in parts]
    matrix = np.zeros((n, sum(widths)), dtype=np.uint8)
    keep = np.ones(matrix.shape, dtype=bool)
    length = np.zeros(n, dtype=np.int64)
    start = 0
    for part, width in zip(parts, widths, strict=True):
        if isinstance(part, bytes):
            matrix[:, start : start + width] = np.frombuffer(part, dtype=np.uint8)
            length += width
        else:
            matrix[:, start : start + width] = part[0]
            keep[:, start : start + width] = np.arange(width) < part[1][:, None]
            length += part[1]
        start += width
    packed = np.zeros_like(matrix)
    packed[np.arange(matrix.shape[1]) < length[:, None]] = matrix[keep]
    return packed, length


def _template(n: int, head: Sequence[Text | bytes]) -> Text:
    """Line templates: the head left-aligned and NUL-padded, 8 NULs for the rate, then ``,\n``; with
    the heads' lengths. A line's bytes are its template's non-NUL bytes once the rate is filled in."""
    packed, length = _pack(n, head)
    tail = np.zeros((n, DIGITS + 4), dtype=np.uint8)
    tail[:, DIGITS + 2 :] = np.frombuffer(b",\n", dtype=np.uint8)
    return np.concatenate((packed, tail), axis=1), length


@dataclass(frozen=True)
class GroupNames:
    """One group's champions sorted by name, its pairs (i < j) in the order the index lists them, and
    the start of each line that names them (``<indent>"<name>": ``)."""

    order: Any  # champion indices sorted by name
    pair_lo: Any  # per pair: the index of the champion whose key is smaller, then the other
    pair_hi: Any
    champ6: Text  # '      "<name>": ' per champion, in name order (champ_wr, and counter_wr's rows)
    champ8: Text  # '        "<name>": ' (a counter_wr row's cells), as a line template
    pair6: Text  # '      "<a>,<b>": ' per pair, in listing order, as a line template
    row_heads: list[bytes]  # the head of each champion's counter_wr row, in name order

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
        sorted_names = (matrix[order], lengths[order])
        pairs: list[Text | bytes] = [
            b'      "',
            (matrix[lo], lengths[lo]),
            b",",
            (matrix[hi], lengths[hi]),
            b'": ',
        ]
        champ6 = _template(n, [b'      "', sorted_names, b'": '])
        return cls(
            order,
            lo,
            hi,
            champ6,
            _template(n, [b'        "', sorted_names, b'": ']),
            _template(len(lo), pairs),
            [head[:length].tobytes() for head, length in zip(champ6[0], champ6[1].tolist(), strict=True)],
        )


@dataclass(frozen=True)
class CountArrays:
    """A ``Counts`` as int64 arrays (OverflowError beyond ``aggregate.EXACT_MAX``)."""

    n: int
    cw: Any
    cl: Any
    pw: Any
    pl: Any
    vs: Any

    @classmethod
    def of(cls, counts: Counts, size: int) -> CountArrays:
        counts.resize(size)
        rows = (count_array(part) for part in (counts.cw, counts.cl))
        matrices = (count_array(part).reshape(size, size) for part in (counts.pw, counts.pl, counts.vs))
        return cls(counts.n, *rows, *matrices)

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


def _lines(template: Text, rows: Any, k: Any) -> tuple[bytes, Any]:
    """The line of each template row in ``rows`` with its rate ``k``, one after the other, and each
    line's length. The rate's bytes past its length are zeroed, so that every NUL is dropped."""
    n = len(k)
    matrix = template[0][rows]
    at = matrix.shape[1] - DIGITS - 4
    high, low = k // 100, k % 100
    value = (
        _ZERO_POINT
        + (k == SCALE).astype(np.uint64)
        + (_HIGH[high] << np.uint64(16))
        + (_LOW[low] << np.uint64(48))
    )
    value_len = (
        DIGITS + 2 - np.minimum(np.where(low == 0, 2 + _HIGH_ZEROS[high], _LOW_ZEROS[low]), DIGITS - 1)
    )
    value &= _FIRST_BYTES[value_len]
    matrix[:, at : at + 8] = value.astype("<u8").view(np.uint8).reshape(n, 8)
    return bytes(matrix[matrix != 0].tobytes()), template[1][rows] + value_len + 2


def _object(body: bytes, indent: int) -> tuple[bytes | memoryview, ...]:
    """The parts of ``{`` + lines + ``}`` at this indent (the last ``,`` dropped), ``{}`` when empty."""
    if not body:
        return (b"{}",)
    return b"{\n", memoryview(body)[:-2], b"\n" + b" " * (indent - 2) + b"}"


def render_arrays(
    counts: CountArrays, names: GroupNames, thresholds: HistorySettings
) -> tuple[bytes, dict[str, int]] | None:
    """The entry's bytes as ``render_entry`` writes them, and its sizes; None when a rate is below
    1e-4 or ``avg_wr`` would print in exponent form (the dict path then writes them as ``json`` does)."""
    order = names.order
    cw, cl = counts.cw[order], counts.cl[order]
    champ_mask, champ_k = rate_cells(cw, cw + cl, thresholds.min_champ_games)

    lo, hi = names.pair_lo, names.pair_hi
    won = counts.pw[lo, hi] + counts.pw[hi, lo]
    pair_mask, pair_k = rate_cells(
        won, won + counts.pl[lo, hi] + counts.pl[hi, lo], thresholds.min_pair_games
    )

    vs = counts.vs[order][:, order]
    counter_mask, counter_k = rate_cells(vs, vs + vs.T, thresholds.min_counter_games)

    for k in (champ_k, pair_k, counter_k):
        if ((k > 0) & (k < _SMALLEST)).any():
            return None
    avg_text = msgspec.json.encode(average((champ_k / SCALE).tolist()))
    if not written_alike(avg_text):
        return None

    champ, _ = _lines(names.champ6, champ_mask, champ_k)
    pair, _ = _lines(names.pair6, pair_mask, pair_k)
    rows, cols = np.nonzero(counter_mask)
    cells, line_len = _lines(names.champ8, cols, counter_k)
    ends = np.cumsum(line_len).tolist()  # cut the cells into their rows
    per_row = np.bincount(rows, minlength=len(order)).tolist()
    cell_view = memoryview(cells)
    counter: list[bytes | memoryview] = []
    start, cell = 0, 0
    for head, n in zip(names.row_heads, per_row, strict=True):
        if n:
            cell += n
            stop = ends[cell - 1]
            counter += (
                b",\n" if counter else b"{\n",
                head,
                b"{\n",
                cell_view[start : stop - 2],
                b"\n      }",
            )
            start = stop
    counter.append(b"\n    }" if counter else b"{}")

    fragment = b"".join(
        (
            b'{\n    "avg_wr": ',
            avg_text,
            b',\n    "champ_wr": ',
            *_object(champ, 6),
            b',\n    "counter_wr": ',
            *counter,
            b',\n    "n_matches": ',
            str(counts.n).encode("ascii"),
            b',\n    "pair_wr": ',
            *_object(pair, 6),
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
    cross-tier duplicates taken out, as ``GroupState.group_counts``). OverflowError beyond
    ``aggregate.EXACT_MAX``, where the caller's dict path computes exactly."""
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
