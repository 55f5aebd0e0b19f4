"""`status` against hostile files it reads: a bad progress file never hangs or crashes it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stratmancer_jobs.atomicio import atomic_write_json
from stratmancer_jobs.clock import iso
from stratmancer_jobs.procs import process_start_ticks
from stratmancer_jobs.state import JobRecord, RunMarker, State, encode
from tests.conftest import run_proc

JOB = "refresh_history_index"


def _running_state(root: Path) -> Path:
    """A state whose history job is held by this (live) test process; returns the job's progress path."""
    pid = os.getpid()
    marker = RunMarker(pid, iso(datetime.now(UTC)), process_start_ticks(pid))
    state = State(jobs={JOB: JobRecord(running=marker)})
    atomic_write_json(root / "state" / "jobs_state.json", encode(state))
    path = root / "state" / "progress" / f"{JOB}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _plant(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "sparse":
        with open(path, "wb") as handle:
            handle.truncate(64 * 1024**3)  # more than this machine could allocate
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "deep-object":
        path.write_text('{"files_done":' * 50_000 + "1" + "}" * 50_000)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "sparse", "deep", "deep-object"])
def test_a_bad_progress_file_is_progress_unknown(root: Path, kind: str) -> None:
    """A FIFO, a link to /dev/zero, a 64 GiB sparse file or 100k-deep JSON as the progress file: every
    `status` form answers at once, without a traceback, the job shown running without progress."""
    _plant(_running_state(root), kind)
    table = run_proc(root, "status", timeout=20)
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    assert "running" in table.stdout and "%" not in table.stdout
    as_json = run_proc(root, "status", "--json", timeout=20)
    assert as_json.returncode == 0, as_json.stderr
    assert [j["health"] for j in json.loads(as_json.stdout)["jobs"] if j["id"] == JOB] == ["running"]
    check = run_proc(root, "status", "--check", timeout=20)
    assert "Traceback" not in check.stderr and check.stdout.startswith("STRATMANCER JOBS"), check.stderr
    detail = run_proc(root, "status", "refresh-history", timeout=20)
    assert detail.returncode == 0 and "Traceback" not in detail.stderr, detail.stderr
    assert "progress" not in detail.stdout.split("health", 1)[1].split("last status")[0]
