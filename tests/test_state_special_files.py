"""A FIFO or a link to /dev/zero at the state file: every command ends promptly with one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_proc, write_card


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_special_state_file_neither_hangs_nor_reads_without_end(root: Path, kind: str) -> None:
    """status names the state file as not a regular file; a job run moves it aside and records the run."""
    write_card(root, "mid", "20251020_120000")
    state = root / "state/jobs_state.json"
    state.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(state)
    else:
        state.symlink_to("/dev/zero")
    shown = run_proc(root, "status", timeout=30)
    assert "Traceback" not in shown.stderr + shown.stdout
    assert f"{state}: not a regular file" in shown.stdout + shown.stderr, shown.stdout + shown.stderr
    ran = run_proc(root, "refresh-registry", timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert state.is_file() and not state.is_symlink()  # replaced by a real state file, /dev/zero untouched
    assert "refresh_model_registry" in state.read_text("utf-8")
