"""Hypothesis-generated hostile input next to good data, through the real runner (small counts here)."""

from __future__ import annotations

from pathlib import Path

from tests.reliability import hostile
from tests.reliability.harness import Outcome


def _ok(outcome: Outcome) -> None:
    assert outcome.trials > 0
    assert not outcome.failures, "\n".join(outcome.failures[: hostile.MAX_REPORTED])


def test_hostile_match_files(tmp_path: Path) -> None:
    """Bad records, bad lines, corrupt/empty/symlinked files: good data exact, bad items reported."""
    _ok(hostile.match_files(tmp_path, 60))


def test_hostile_model_cards(tmp_path: Path) -> None:
    """Mutated, raw, NaN, deep and symlinked cards: the good cards stay, each bad card has a reason."""
    _ok(hostile.model_cards(tmp_path, 60))


def test_hostile_http_bodies(tmp_path: Path) -> None:
    """Wrong-shape, binary, NaN, deep and huge versions.json bodies: valid patch or clear error."""
    _ok(hostile.http_bodies(tmp_path, 60))


def test_hostile_environment_at_the_history_cache_manifest(tmp_path: Path) -> None:
    """Every kind of special file at the history cache's manifest: no traceback, hang, crash or write
    through a link (the whole family runs in scripts/reliability.py)."""
    from tests.reliability.scenario_hostile_env import special_files

    _ok(special_files(tmp_path, only=("history_cache/manifest",)))
