"""Counts -> the StratMancer-compatible index entry, and the index's deterministic bytes; pure.

Rounding: a win rate is the exact fraction wins / games rounded half-up to 6 decimal places, computed
in integers (``(2 * 10**6 * wins + games) // (2 * games)``) and then divided by 10**6: the float nearest
to that 6-decimal number, which prints as it (``0.512346``). ``avg_wr`` is the mean of the ``champ_wr``
values, summed with ``math.fsum`` (exact, so independent of order) and rounded to 6 places by ``round``;
0.5 when ``champ_wr`` is empty.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Mapping
from itertools import chain, compress
from operator import add
from typing import Any, Final

import msgspec

from stratmancer_jobs.atomicio import dump_json
from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.jobs.history.counts import Counts

DIGITS: Final = 6
SCALE: Final = 10**DIGITS
ENTRY_KEYS: Final = ("champ_wr", "pair_wr", "counter_wr", "n_matches", "avg_wr")
# The largest count (either sign) the numpy paths take. A group's cell sums at most five of them (its
# tiers less its cross-tier duplicates), a pair's games four cells, so ``2 * 10**6 * won + games`` stays
# below 2**60, far inside int64. Beyond it (four billion games of one champion: only a corrupt or
# planted cache) the integer loops build the entry, exactly.
EXACT_MAX: Final = 2**32

Entry = dict[str, Any]


def win_rate(wins: int, games: int) -> float:
    """``wins / games`` rounded half-up to 6 decimals (the same formula as the inlined ones below)."""
    return (2 * SCALE * wins + games) // (2 * games) / SCALE


_pair_cache: dict[tuple[int, ...], list[list[str]]] = {}


def pair_keys(keys: list[int]) -> list[list[str]]:
    """``"a,b"`` (a < b) for every i < j, row by row; shared by the entries of a group (memoised)."""
    token = tuple(keys)
    cached = _pair_cache.get(token)
    if cached is None:
        cached = [[f"{a},{b}" if a < b else f"{b},{a}" for b in keys[i + 1 :]] for i, a in enumerate(keys)]
        _pair_cache.clear()  # one group at a time: keep memory bounded
        _pair_cache[token] = cached
    return cached


def _fold(matrix: list[list[int]]) -> list[list[int]]:
    """``matrix + transpose(matrix)``: a pair counted as (i, j) or (j, i), either way."""
    return [list(map(add, row, col)) for row, col in zip(matrix, zip(*matrix, strict=True), strict=True)]


def build_entry(counts: Counts, keys: list[int], thresholds: HistorySettings) -> Entry:
    """One tier's or group's entry: exactly the five keys StratMancer's ``HistoryIndex.load`` reads.

    The loops are comprehensions over whole rows (a group entry has ~40,000 cells); the diagonal of
    every matrix is zero, so a champion never pairs with or counters itself. When numpy is already
    imported (a run that counted with it) the rates are computed on whole matrices instead
    (``_build_entry_numpy``, the same entry); a small incremental run does not import it for this.
    """
    if "numpy" in sys.modules and keys:
        with contextlib.suppress(OverflowError):  # counts beyond EXACT_MAX (never in practice): the loops
            return _build_entry_numpy(counts, keys, thresholds)
    return _build_entry_loops(counts, keys, thresholds)


def count_array(values: Any) -> Any:
    """Counts (a list, or a list of rows) as an int64 array; OverflowError when one is beyond
    ``EXACT_MAX`` either way, where int64 arithmetic on them could wrap silently."""
    import numpy as np

    array = np.array(values, dtype=np.int64)  # OverflowError from 2**63 up
    if ((array > EXACT_MAX) | (array < -EXACT_MAX)).any():
        raise OverflowError  # the callers' exact paths take over; no one reads a message
    return array


def rate_cells(won: Any, games: Any, minimum: int) -> tuple[Any, Any]:
    """For numpy arrays (of ``count_array`` counts): the cells shown (``games >= minimum``, ``games > 0``)
    and their rates as the integers ``k`` of ``win_rate`` (rate = k / 10**6)."""
    mask = (games >= minimum) & (games > 0)
    w, g = won[mask], games[mask]
    return mask, (2 * SCALE * w + g) // (2 * g)


def average(rates: list[float]) -> float:
    """``avg_wr``: the unweighted mean of the champion rates, exact (``fsum``) and rounded; 0.5 if none."""
    return round(math.fsum(rates) / len(rates), DIGITS) if rates else 0.5


def written_alike(text: bytes) -> bool:
    """Whether msgspec wrote these floats as ``json.dumps`` does: not when one is below 1e-4, which
    ``repr`` writes in exponent form and msgspec as ``0.0000...`` or ``1e-6``."""
    return b"0.0000" not in text and b"e-" not in text


def _build_entry_numpy(counts: Counts, keys: list[int], thresholds: HistorySettings) -> Entry:
    import numpy as np

    size = len(keys)
    counts.resize(size)
    names = [str(k) for k in keys]

    def rates(won: Any, games: Any, minimum: int) -> tuple[Any, Any]:
        mask, k = rate_cells(won, games, minimum)
        return mask, k / SCALE

    cw, cl, pw, pl, vs = map(count_array, (counts.cw, counts.cl, counts.pw, counts.pl, counts.vs))
    mask, values = rates(cw, cw + cl, thresholds.min_champ_games)
    champ_wr = dict(zip(compress(names, mask.tolist()), values.tolist(), strict=True))

    won_m, games_m = pw + pw.T, pw + pw.T + pl + pl.T
    upper = np.triu_indices(size, 1)  # row by row, as ``pair_keys`` lists them
    mask, values = rates(won_m[upper], games_m[upper], thresholds.min_pair_games)
    flat_names = chain.from_iterable(pair_keys(keys))
    pair_wr = dict(zip(compress(flat_names, mask.tolist()), values.tolist(), strict=True))

    mask, values = rates(vs, vs + vs.T, thresholds.min_counter_games)
    row_sizes = mask.sum(axis=1).tolist()
    value_list = values.tolist()
    counter_wr: dict[str, dict[str, float]] = {}
    start = 0
    for name, row_mask, n in zip(names, mask.tolist(), row_sizes, strict=True):
        if n:
            counter_wr[name] = dict(
                zip(compress(names, row_mask), value_list[start : start + n], strict=True)
            )
            start += n

    return _entry(champ_wr, pair_wr, counter_wr, counts.n)


def _build_entry_loops(counts: Counts, keys: list[int], thresholds: HistorySettings) -> Entry:
    size = len(keys)
    counts.resize(size)
    names = [str(k) for k in keys]
    two = 2 * SCALE

    min_champ = thresholds.min_champ_games
    champ_wr = {
        name: (two * won + games) // (2 * games) / SCALE
        for name, won, lost in zip(names, counts.cw, counts.cl, strict=True)
        if (games := won + lost) >= min_champ
    }

    pair_wr: dict[str, float] = {}
    min_pair = thresholds.min_pair_games
    if size:
        # Each pair was counted in team order: fold (i, j) and (j, i) together.
        won_m = _fold(counts.pw)
        lost_m = _fold(counts.pl)
        pair_names = pair_keys(keys)
        for i in range(size):
            games_row = list(map(add, won_m[i], lost_m[i]))
            pair_wr.update(
                {
                    name: (two * won + games) // (2 * games) / SCALE
                    for name, won, games in zip(
                        pair_names[i], won_m[i][i + 1 :], games_row[i + 1 :], strict=True
                    )
                    if games >= min_pair
                }
            )

    counter_wr: dict[str, dict[str, float]] = {}
    min_counter = thresholds.min_counter_games
    vs_t = list(zip(*counts.vs, strict=True)) if size else []
    for i in range(size):
        row = {
            name: (two * won + games) // (2 * games) / SCALE
            for name, won, lost in zip(names, counts.vs[i], vs_t[i], strict=True)
            if (games := won + lost) >= min_counter
        }
        if row:
            counter_wr[names[i]] = row

    return _entry(champ_wr, pair_wr, counter_wr, counts.n)


def _entry(
    champ_wr: dict[str, float], pair_wr: dict[str, float], counter_wr: dict[str, dict[str, float]], n: int
) -> Entry:
    """One entry in StratMancer's shape; ``avg_wr`` is the unweighted mean of ``champ_wr`` (0.5 if empty)."""
    avg = average(list(champ_wr.values()))
    return {"champ_wr": champ_wr, "pair_wr": pair_wr, "counter_wr": counter_wr, "n_matches": n, "avg_wr": avg}


def is_entry(value: Any) -> bool:
    """Whether ``value`` looks like an entry StratMancer can load (used for carried-over entries)."""
    return (
        isinstance(value, dict)
        and all(key in value for key in ENTRY_KEYS)
        and isinstance(value["champ_wr"], dict)
        and isinstance(value["pair_wr"], dict)
        and isinstance(value["counter_wr"], dict)
        and isinstance(value["n_matches"], int)
        and isinstance(value["avg_wr"], int | float)
    )


def render(index: Mapping[str, Entry]) -> bytes:
    """The index as bytes, identical to ``atomicio.dump_json`` (sorted keys, indent 2, final newline)."""
    fragments = {key: render_entry(entry) for key, entry in index.items()}
    if any(fragment is None for fragment in fragments.values()):
        return dump_json(index).encode("utf-8")
    return join_fragments({key: fragment for key, fragment in fragments.items() if fragment is not None})


def render_entry(entry: Entry) -> bytes | None:
    """One entry as it appears inside the index, or None when only ``dump_json`` can write it.

    msgspec produces the same bytes as ``json.dumps(indent=2, sort_keys=True)`` several times faster
    for this data (string keys, floats in [0, 1] with 6 decimals); tests check the equality. A float
    below 1e-4 is the exception (``written_alike``).
    """
    text = msgspec.json.format(msgspec.json.encode(entry, order="sorted"), indent=2)
    if not written_alike(text):
        return None
    return text.replace(b"\n", b"\n  ")


def join_fragments(fragments: Mapping[str, bytes]) -> bytes:
    """The top-level object around rendered entries, keys sorted, as ``dump_json`` writes it."""
    if not fragments:
        return b"{}\n"
    parts: list[bytes] = []
    for key in sorted(fragments):
        parts += (b',\n  "' if parts else b'{\n  "', key.encode("ascii"), b'": ', fragments[key])
    parts.append(b"\n}\n")
    return b"".join(parts)  # one copy of the (tens of MB of) fragments, not two


def entry_stats(entry: Entry) -> dict[str, int]:
    """Sizes for the sidecar and the summary."""
    return {
        "n_matches": int(entry["n_matches"]),
        "champions": len(entry["champ_wr"]),
        "pairs": len(entry["pair_wr"]),
        "counters": sum(len(row) for row in entry["counter_wr"].values()),
    }
