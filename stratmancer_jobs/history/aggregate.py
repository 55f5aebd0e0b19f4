"""Counts -> the StratMancer-compatible index entry, and the index's deterministic bytes; pure.

Rounding: every win rate is ``round(wins / games, 6)`` (6 decimal places, Python's round-half-even on
the binary double). ``avg_wr`` is the mean of the rounded ``champ_wr`` values, summed with ``math.fsum``
(exact, so independent of order) and rounded the same way; 0.5 when ``champ_wr`` is empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from stratmancer_jobs.atomicio import dump_json
from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.history.counts import Counts

DIGITS: Final = 6
ENTRY_KEYS: Final = ("champ_wr", "pair_wr", "counter_wr", "n_matches", "avg_wr")

Entry = dict[str, Any]


def build_entry(counts: Counts, keys: list[int], thresholds: HistorySettings) -> Entry:
    """One tier's or group's entry: exactly the five keys StratMancer's ``HistoryIndex.load`` reads."""
    size = len(keys)
    counts.resize(size)
    names = [str(k) for k in keys]

    champ_wr: dict[str, float] = {}
    min_champ = thresholds.min_champ_games
    for i, (won, lost) in enumerate(zip(counts.cw, counts.cl, strict=True)):
        games = won + lost
        if games >= min_champ:
            champ_wr[names[i]] = round(won / games, DIGITS)

    pair_wr: dict[str, float] = {}
    min_pair = thresholds.min_pair_games
    pw_t = list(zip(*counts.pw, strict=True)) if size else []
    pl_t = list(zip(*counts.pl, strict=True)) if size else []
    for i in range(size):
        wins_row = [a + b for a, b in zip(counts.pw[i], pw_t[i], strict=True)]
        loss_row = [a + b for a, b in zip(counts.pl[i], pl_t[i], strict=True)]
        key_i = keys[i]
        for j in range(i + 1, size):
            won = wins_row[j]
            games = won + loss_row[j]
            if games >= min_pair:
                key_j = keys[j]
                pair = f"{key_i},{key_j}" if key_i < key_j else f"{key_j},{key_i}"
                pair_wr[pair] = round(won / games, DIGITS)

    counter_wr: dict[str, dict[str, float]] = {}
    min_counter = thresholds.min_counter_games
    vs_t = list(zip(*counts.vs, strict=True)) if size else []
    for i in range(size):
        row: dict[str, float] = {}
        for j, (won, lost) in enumerate(zip(counts.vs[i], vs_t[i], strict=True)):
            games = won + lost
            if games >= min_counter and j != i:
                row[names[j]] = round(won / games, DIGITS)
        if row:
            counter_wr[names[i]] = row

    values = list(champ_wr.values())
    avg = round(math.fsum(values) / len(values), DIGITS) if values else 0.5
    return {
        "champ_wr": champ_wr,
        "pair_wr": pair_wr,
        "counter_wr": counter_wr,
        "n_matches": counts.n,
        "avg_wr": avg,
    }


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


def _plain_floats(index: Mapping[str, Entry]) -> bool:
    """True when every float is 0 or >= 1e-4, where msgspec and ``repr`` print floats the same way."""
    for entry in index.values():
        tables: list[Any] = [entry["champ_wr"], entry["pair_wr"], *entry["counter_wr"].values()]
        for table in tables:
            if min(filter(None, table.values()), default=1.0) < 1e-4:
                return False
    return True


def render(index: Mapping[str, Entry]) -> bytes:
    """The index as bytes, identical to ``atomicio.dump_json`` (sorted keys, indent 2, final newline).

    msgspec produces the same bytes about ten times faster for this data (string keys, floats in
    [0, 1] with 6 decimals); tests check the equality. Floats below 1e-4, which ``repr`` writes in
    exponent form, take the ``dump_json`` path.
    """
    if not _plain_floats(index):
        return dump_json(index).encode("utf-8")
    compact = msgspec.json.encode(index, order="sorted")
    return msgspec.json.format(compact, indent=2) + b"\n"
