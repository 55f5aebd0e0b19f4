"""Delivery under faults through the real CLI (issue 19): a full state disk, the time limit, durations.

* the change's intent cannot be stored (state disk full): the output is not replaced, the run fails
  with one clear line, and once there is space again the next run writes and announces it;
* ``--timeout`` bounds the hooks too: a hook stopped by the limit leaves the change pending and its
  process group gone;
* the recorded duration (state, log line, metrics) is the whole run's, hooks included.

The disk-full fault is injected by ``tests/reliability/hooks/sitecustomize.py`` (test support only).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from tests.reliability.harness import run_cli
from tests.reliability.scenario_delivery import alive, calls, hooked_root, unseen

REGISTRY = "ml_pipeline/model_registry.json"


def _record(root: Path) -> Any:
    return json.loads((root / "state/jobs_state.json").read_text())["jobs"]["refresh_model_registry"]


def _change_cards(root: Path, serial: int) -> None:
    for card in sorted((root / "ml_pipeline/models/modelcards").glob("modelcard_*.json")):
        data = json.loads(card.read_bytes())
        data["metrics"]["serial"] = serial
        card.write_text(json.dumps(data), encoding="utf-8")


def _hook(root: Path, script: str, timeout_s: int = 60) -> Path:
    """The registry's one hook: ``python -c script`` (it gets the pid file's path as argv[1])."""
    pid_file = root / "hook.pid"
    argv = [sys.executable, "-c", script, str(pid_file)]
    (root / "config/jobs.toml").write_text(
        f"[[jobs.refresh_model_registry.on_change]]\ncommand = {json.dumps(argv)}\n"
        f"timeout_seconds = {timeout_s}\n",
        encoding="utf-8",
    )
    return pid_file


def test_state_disk_full_before_the_commit_keeps_the_old_output(tmp_path: Path) -> None:
    """The state file can be written when the run starts, not when the change is to be recorded: the
    registry is not replaced, one line says why, no hook runs; with space again the change is
    written and the hook tells the app the new registry."""
    root, log = hooked_root(tmp_path, "refresh-registry")
    assert run_cli(root, "-q", "refresh-registry").returncode == 0
    told = len(calls(log))
    before = (root / REGISTRY).read_bytes()
    _change_cards(root, 1)
    full = {
        "STRATMANCER_TEST_FAULT": f"ENOSPC:{root / 'state/jobs_state.json'}",
        "STRATMANCER_TEST_FAULT_AFTER": "1",  # the running marker is written, then the disk is full
    }
    failed = run_cli(root, "-q", "refresh-registry", env=full, hooks=True)
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert (root / REGISTRY).read_bytes() == before, "nothing may be on disk that the app will not hear of"
    assert len(calls(log)) == told
    reasons = [line for line in failed.stderr.splitlines() if "not replaced" in line]
    assert len(reasons) == 1, failed.stderr
    assert "no space left on device" in reasons[0] and str(root / REGISTRY) in reasons[0]

    again = run_cli(root, "-q", "refresh-registry")
    assert again.returncode == 0, again.stderr
    assert (root / REGISTRY).read_bytes() != before
    assert len(calls(log)) == told + 1
    assert unseen(root, "refresh-registry", log, exact=True) is None
    assert _record(root)["pending_change"] is None


def test_timeout_stops_a_hook_and_leaves_the_change_pending(tmp_path: Path) -> None:
    """--timeout 1.5 with an 8 s command hook: exit 1 in about 1.5 s, 'timed out ... while running the
    on_change hooks' recorded with the whole run's duration, the hook gone, the change still owed."""
    root, _ = hooked_root(tmp_path, "refresh-registry")
    pid_file = _hook(
        root, "import sys, os, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(8)"
    )
    t0 = time.monotonic()
    run = run_cli(root, "-q", "refresh-registry", "--timeout", "1.5", timeout=30)
    took = time.monotonic() - t0
    assert run.returncode == 1, run.stderr
    assert took < 6, f"the run took {took:.1f} s: the limit did not stop the hook"
    record = _record(root)
    assert "timed out after 1.5 s while running the on_change hooks" in record["last_error_message"]
    assert record["pending_change"] is not None and record["pending_change"]["attempts"] == 1
    assert 1.5 <= record["last_duration_s"] < 6
    assert not alive(int(pid_file.read_text())), "the hook's process group must be stopped"


def test_recorded_duration_includes_the_hooks(tmp_path: Path) -> None:
    """A hook taking 1.2 s: the state's duration, the log's 'finished in' and the metrics gauge all
    count it (the whole run's wall time)."""
    root, _ = hooked_root(tmp_path, "refresh-registry")
    _hook(root, "import time; time.sleep(1.2)")
    metrics = root / "metrics/stratmancer.prom"
    run = run_cli(root, "--metrics-file", str(metrics), "refresh-registry")
    assert run.returncode == 0, run.stderr
    assert _record(root)["last_duration_s"] >= 1.2
    logged = re.search(r"finished in (\d+\.\d+)s", run.stderr)
    assert logged is not None and float(logged.group(1)) >= 1.2, run.stderr
    gauge = re.search(
        r'^stratmancer_job_last_run_duration_seconds\{[^}]*"refresh_model_registry"[^}]*\} (\S+)$',
        metrics.read_text(),
        re.MULTILINE,
    )
    assert gauge is not None and float(gauge.group(1)) >= 1.2
