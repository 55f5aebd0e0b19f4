"""Runs name the machine that ran them: several nodes may share one state file (Kubernetes, NFS)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import Result

from stratmancer_jobs.clock import utc_now
from stratmancer_jobs.state import RunEntry, StateStore, mark_finished, mark_started


def test_each_run_records_its_host_and_status_job_shows_it(
    root: Path, cli: Callable[..., Result], state_json: Callable[[], dict[str, Any]]
) -> None:
    """A CLI run stores `host` in its run entry, the JSON start log line names it, `status JOB` shows it."""
    result = cli("-v", "--log-format", "json", "refresh-registry")  # the start line is a debug line
    assert result.exit_code == 0, result.output
    host = socket.gethostname()
    runs = state_json()["jobs"]["refresh_model_registry"]["runs"]
    assert [run["host"] for run in runs] == [host]
    start = next(json.loads(line) for line in result.output.splitlines() if '"event": "start"' in line)
    assert start["host"] == host and f"on {host} (pid " in start["message"]
    detail = cli("status", "refresh-registry")
    assert f"[{host}] " in detail.output


def test_host_survives_a_rewrite_and_a_bad_host_is_dropped(tmp_path: Path) -> None:
    """The marker's and the entries' host round-trip through the file; a non-string host reads as unknown."""
    store = StateStore(tmp_path / "state.json")
    now = utc_now()
    store.update("job", lambda r: mark_started(r, pid=1, started=now, host="node-a"), now)
    assert store.read().jobs["job"].running is not None
    assert store.read().jobs["job"].running.host == "node-a"  # type: ignore[union-attr]
    finish: dict[str, Any] = dict(ok=True, started=now, finished=now, duration_s=1.0, summary="s", error=None)
    store.update("job", lambda r: mark_finished(r, **finish, host="node-b"), now)
    assert store.read().jobs["job"].runs[-1] == RunEntry(
        store.read().jobs["job"].runs[-1].started, "success", 1.0, "s", "node-b"
    )
    document = json.loads(store.path.read_text())
    document["jobs"]["job"]["runs"][0]["host"] = 42
    store.path.write_text(json.dumps(document))
    assert store.read().jobs["job"].runs[-1].host is None
