"""The state file: atomic, locked read-modify-write, no lost updates, corrupt files preserved."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stratmancer_jobs.errors import StateError
from stratmancer_jobs.state import (
    RECENT_RUNS,
    JobRecord,
    StateStore,
    mark_finished,
    mark_skipped,
    read_state,
)
from tests.conftest import REPO

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _finish(record: JobRecord, ok: bool = True) -> JobRecord:
    return mark_finished(
        record,
        ok=ok,
        started=NOW,
        finished=NOW,
        duration_s=0.5,
        summary="done",
        error=None if ok else "bad\ninput " + "x" * 2000,
    )


def test_absent_file_reads_as_empty(tmp_path: Path) -> None:
    """A missing state file is an empty state, not an error."""
    assert read_state(tmp_path / "state.json") == {"schema_version": 1, "jobs": {}}


def test_update_writes_schema_and_every_field(tmp_path: Path) -> None:
    """An update writes schema_version and all per-job fields with offset timestamps."""
    store = StateStore(tmp_path / "state.json")
    store.update("job_a", _finish, NOW)
    data = json.loads(store.path.read_text())
    record = data["jobs"]["job_a"]
    assert data["schema_version"] == 1
    assert record["success_count"] == 1 and record["error_count"] == 0 and record["skipped_count"] == 0
    assert record["last_status"] == "success"
    assert record["last_success"] == "2026-11-28T12:00:00+00:00"
    assert record["last_error"] is None and record["last_error_message"] is None
    assert record["last_duration_s"] == 0.5 and record["last_summary"] == "done"


def test_error_message_is_bounded_and_single_line(tmp_path: Path) -> None:
    """A long multi-line error is stored on one line and cut to a bounded length."""
    store = StateStore(tmp_path / "state.json")
    store.update("job_a", lambda r: _finish(r, ok=False), NOW)
    message = read_state(store.path)["jobs"]["job_a"]["last_error_message"]
    assert "\n" not in message
    assert len(message) <= 500


def test_recent_runs_are_capped(tmp_path: Path) -> None:
    """Only the last RECENT_RUNS runs are kept."""
    store = StateStore(tmp_path / "state.json")
    for _ in range(RECENT_RUNS + 5):
        store.update("job_a", _finish, NOW)
    store.update("job_a", lambda r: mark_skipped(r, at=NOW, reason="busy"), NOW)
    record = read_state(store.path)["jobs"]["job_a"]
    assert len(record["runs"]) == RECENT_RUNS
    assert record["runs"][-1]["status"] == "skipped"
    assert record["success_count"] == RECENT_RUNS + 5 and record["skipped_count"] == 1


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "is empty"),
        (b'{"schema_version": 1, "jobs": {"a": ', "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"schema_version": 99, "jobs": {}}', "schema_version 99"),
        (b'{"schema_version": 1, "jobs": {"a": {"success_count": -3}}}', "not a count"),
    ],
)
def test_corrupt_state_is_named_preserved_and_replaced(tmp_path: Path, content: bytes, needle: str) -> None:
    """A bad state file raises a clear error on read, and an update moves it aside and starts anew."""
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateError) as info:
        read_state(path)
    assert str(path) in str(info.value) and needle in str(info.value)
    notice = StateStore(path).update("job_a", _finish, NOW).notice
    assert notice is not None and "preserved it as" in notice and "counts restart at zero" in notice
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("state.json.corrupt-")]
    assert len(kept) == 1 and kept[0].read_bytes() == content
    data = read_state(path)
    assert data["jobs"]["job_a"]["success_count"] == 1
    assert data["recovered_from"]["path"] == str(kept[0])


def test_state_path_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    """A directory where the state file should be is reported, never removed."""
    path = tmp_path / "state.json"
    path.mkdir()
    with pytest.raises(StateError, match="is a directory"):
        StateStore(path).update("job_a", _finish, NOW)
    assert path.is_dir()


def test_new_files_are_not_world_writable_and_lock_is_kept(tmp_path: Path) -> None:
    """The state and its lock file are created 0o644-ish (never world-writable); the lock file stays."""
    store = StateStore(tmp_path / "state.json")
    store.update("job_a", _finish, NOW)
    for path in (store.path, store.lock_path):
        assert path.exists()
        assert not stat.S_IMODE(path.stat().st_mode) & stat.S_IWOTH


def test_atomic_write_keeps_existing_mode(tmp_path: Path) -> None:
    """Replacing the state keeps the file's existing permission bits."""
    store = StateStore(tmp_path / "state.json")
    store.update("job_a", _finish, NOW)
    os.chmod(store.path, 0o640)
    store.update("job_a", _finish, NOW)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o640


_WORKER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from stratmancer_jobs.state import StateStore, mark_finished
now = datetime.now(UTC)
job = sys.argv[2]
StateStore(Path(sys.argv[1])).update(
    job,
    lambda r: mark_finished(r, ok=True, started=now, finished=now, duration_s=0.0, summary=job, error=None),
    now,
)
"""


def test_twenty_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    """20 real processes recording at once leave exactly 20 outcomes (across two jobs)."""
    path = tmp_path / "state.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(path), f"job_{i % 2}"], env=env)
        for i in range(20)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * 20
    jobs = read_state(path)["jobs"]
    assert jobs["job_0"]["success_count"] == 10
    assert jobs["job_1"]["success_count"] == 10
