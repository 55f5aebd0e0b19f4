"""The process-level reliability scenarios at small counts (``scripts/reliability.py`` runs them large).

Each scenario returns its failures as readable lines; the assertion shows them all.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.reliability import scenarios
from tests.reliability.harness import JOBS, Outcome


def _ok(outcome: Outcome) -> None:
    assert outcome.trials > 0
    assert not outcome.failures, "\n".join(outcome.failures)


def test_load_counts_add_up_and_status_never_tears(tmp_path: Path) -> None:
    """3 jobs x 4 processes + 4 status readers at once: every run counted once, nothing torn."""
    _ok(scenarios.load(tmp_path, per_job=4, readers=4))


@pytest.mark.parametrize("cmd", list(JOBS))
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, cmd: str) -> None:
    """SIGKILL mid-run (also inside slowed-down writes): files old or new, lock free, next run fine."""
    _ok(scenarios.crashes(tmp_path, cmd, trials=4, seed=len(cmd)))


def test_sigterm_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    """SIGTERM mid-run (history here; every job in the script): files old or new, lock free."""
    _ok(scenarios.crashes(tmp_path, "refresh-history", trials=3, seed=7, sig=signal.SIGTERM))


def test_timeouts_at_random_moments_lose_nothing(tmp_path: Path) -> None:
    """--timeout stopping refresh-history inside slowed writes: recorded, files intact, lock free."""
    _ok(scenarios.timeouts(tmp_path, trials=3, seed=1))


def test_collector_rewriting_in_place_never_kills_the_job(tmp_path: Path) -> None:
    """refresh-history while the collector truncates and rewrites a 5 MB tier file (no SIGBUS)."""
    _ok(scenarios.collector_rewrites(tmp_path, 4))


def test_corrupt_history_cache_falls_back_to_exact_numbers(tmp_path: Path) -> None:
    """Damaged manifest or group files, or no cache dir: the next index equals a --full rebuild."""
    _ok(scenarios.corrupt_cache(tmp_path))


def test_corrupt_state_is_preserved_and_reported(tmp_path: Path) -> None:
    """Empty, truncated, garbage, wrong-schema, bad-count and non-object state files."""
    _ok(scenarios.corrupt_state(tmp_path))


def test_storage_faults_fail_clearly_and_keep_files(tmp_path: Path) -> None:
    """Read-only output dir, disk full (real mounts where allowed), state dir, lock dir missing/file."""
    _ok(scenarios.storage_faults(tmp_path))


def test_storage_faults_simulated_at_the_write_call(tmp_path: Path) -> None:
    """The same faults injected at the write call (EROFS at create, ENOSPC at fsync)."""
    _ok(scenarios.storage_faults(tmp_path, real_mounts=False))


def test_planted_key_appears_nowhere(tmp_path: Path) -> None:
    """Forced failures in every job and in the CLI with a planted RIOT_API_KEY."""
    _ok(scenarios.secrets(tmp_path))


def test_paths_cannot_escape_the_root(tmp_path: Path) -> None:
    """Symlinks, '..' and absolute names in cards, tier files, config, lock and state files."""
    _ok(scenarios.paths(tmp_path))


def test_permissions_are_kept_and_never_world_writable(tmp_path: Path) -> None:
    """Mode and group survive replacement; umask 000 creates nothing world-writable; locks kept."""
    _ok(scenarios.permissions(tmp_path))
