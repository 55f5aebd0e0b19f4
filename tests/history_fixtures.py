"""Helpers for the history tests: hand-built matches, collector-style files, a StratMancer-like loader."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratmancer_jobs.config import Settings, load_settings
from stratmancer_jobs.jobs.history.job import HistoryOutcome, refresh_history


def match(mid: str | None, blue: Any, red: Any, blue_win: Any, **extra: Any) -> dict[str, Any]:
    """A collector-style record; ``extra`` adds or replaces fields."""
    record: dict[str, Any] = {
        "match_id": mid,
        "patch": "15.21",
        "elo_rank": "GOLD",
        "game_duration": 1800,
        "blue_picks": blue,
        "red_picks": red,
        "blue_bans": [1, 2, 3, 4, 5],
        "red_bans": [6, 7, 8, 9, 10],
        "blue_win": blue_win,
        "champion_stats": [{"champion_id": c, "kills": 3, "deaths": 2} for c in [*blue, *red]],
    }
    if mid is None:
        del record["match_id"]
    record.update(extra)
    return record


TEAMS = [
    ([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]),
    ([6, 2, 11, 4, 12], [1, 7, 13, 9, 5]),
    ([3, 8, 11, 14, 15], [2, 6, 12, 10, 16]),
]


def games(prefix: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` deterministic games cycling through a few drafts."""
    out = []
    for i in range(start, start + n):
        blue, red = TEAMS[i % len(TEAMS)]
        out.append(match(f"{prefix}{i}", blue, red, i % 3 != 0))
    return out


def processed(root: Path) -> Path:
    path = root / "data" / "processed"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_array(root: Path, tier: str, records: list[Any]) -> Path:
    """The whole tier file rewritten as the collector does: ``json.dump(records, indent=2)``."""
    path = processed(root) / f"matches_{tier}.json"
    path.write_text(json.dumps(records, indent=2))
    return path


def append_lines(root: Path, tier: str, records: list[Any]) -> Path:
    """Append records to ``matches_<tier>.jsonl``, one per line."""
    path = processed(root) / f"matches_{tier}.jsonl"
    with path.open("a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def low_thresholds(root: Path) -> None:
    """``config/jobs.toml`` with every threshold at 1 game, so that tiny fixtures show every cell."""
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    lines = ["[history]", "min_champ_games = 1", "min_pair_games = 1", "min_counter_games = 1", ""]
    (config / "jobs.toml").write_text("\n".join(lines))


@contextlib.contextmanager
def numpy_for_every_file() -> Iterator[None]:
    """Check and count even small files with numpy (the path of large files), for a module's tests;
    the other history tests keep the plain loop of small appends, so both are held to the full
    rebuild."""
    from stratmancer_jobs.jobs.history import records

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(records, "VECTOR_MIN", 1)
        yield


def settings_for(root: Path) -> Settings:
    return load_settings(root, env={})


def refresh(root: Path, *, full: bool = False, parallel: bool = False) -> HistoryOutcome:
    settings = settings_for(root)
    log = logging.getLogger("tests.history")
    return refresh_history(settings.layout, settings.history, full=full, log=log, parallel=parallel)


def index_bytes(root: Path) -> bytes:
    return (root / "ml_pipeline" / "history_index.json").read_bytes()


def index(root: Path) -> dict[str, Any]:
    return dict(json.loads(index_bytes(root)))


def full_rebuild_bytes(root: Path, scratch: Path) -> bytes:
    """The index a from-scratch rebuild of ``root``'s inputs gives, computed in ``scratch``."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(processed(root), processed(scratch), dirs_exist_ok=True)
    if (root / "config").is_dir():
        shutil.copytree(root / "config", scratch / "config")
    refresh(scratch, full=True)
    return index_bytes(scratch)


class StratMancerHistoryIndex:
    """Loads the index the way StratMancer's ``HistoryIndex.load`` does: the five keys of every entry."""

    def __init__(self, path: Path) -> None:
        with path.open() as handle:
            data = json.load(handle)
        self.elos: dict[str, dict[str, Any]] = {}
        for elo, payload in data.items():
            self.elos[elo] = {
                "champ_wr": {int(k): float(v) for k, v in payload["champ_wr"].items()},
                "pair_wr": {
                    tuple(int(x) for x in k.split(",")): float(v) for k, v in payload["pair_wr"].items()
                },
                "counter_wr": {
                    int(c): {int(e): float(v) for e, v in row.items()}
                    for c, row in payload["counter_wr"].items()
                },
                "n_matches": int(payload["n_matches"]),
                "avg_wr": float(payload["avg_wr"]),
            }


_CAP_VERSION_3 = 0x20080522
_DAC_BITS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


@contextlib.contextmanager
def permissions_enforced() -> Iterator[None]:
    """File permissions deny reads to this thread even as root: ``chmod 000`` gives a real EACCES.

    Root reads a mode-000 file through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH. Capabilities are per
    thread on Linux: they are cleared from this thread's effective set (threads it starts inherit
    that) and set back afterwards (they stay in the permitted set, so that is allowed). Not root:
    permissions are enforced already.
    """
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # {effective, permitted, inheritable} x 2 words
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    saved = list(data)
    data[0] &= ~_DAC_BITS
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    try:
        yield
    finally:
        data[:] = saved
        if libc.capset(header, data) != 0:
            raise OSError(ctypes.get_errno(), "capset (restoring)")
