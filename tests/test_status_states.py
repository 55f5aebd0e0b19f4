"""What `status` shows never hides a problem and never cries wolf, through the real CLI: late and a
warning together, lateness from the due time, the same rows on a terminal and in a pipe, the last
error only while failing, the 120-column promise, `new` after installation, Ctrl-C as `interrupted`."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import Result

from stratmancer_jobs.atomicio import atomic_write_json
from stratmancer_jobs.clock import iso
from stratmancer_jobs.render import PLAIN_WIDTH
from stratmancer_jobs.state import JobRecord, RunEntry, RunMarker, State, encode
from tests.conftest import REPO, write_card
from tests.ddragon_server import DDragonServer, json_reply
from tests.test_status_view import _read_for

Invoke = Callable[..., Result]
REGISTRY = "refresh_model_registry"
LONG = "Data Dragon unreachable: " + "connection refused by ddragon.leagueoflegends.com; " * 8


def _write_state(root: Path, state: State) -> None:
    atomic_write_json(root / "state" / "jobs_state.json", encode(state))


def _json_job(cli: Invoke, job_id: str) -> Any:
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    return doc, next(j for j in doc["jobs"] if j["id"] == job_id)


def _late_with_warning(now: datetime) -> State:
    """The registry (every 5 minutes, grace 1 minute): the last success, with a warning, was at the fire
    time 10 minutes before the current one, so the run due 5 minutes later was missed (5-10 minutes)."""
    last = now.replace(second=0, microsecond=0) - timedelta(minutes=10 + now.minute % 5)
    record = JobRecord(
        success_count=1,
        last_status="success",
        last_started=iso(last),
        last_finished=iso(last),
        last_success=iso(last),
        last_warning="high: no servable model: calibrator missing",
        runs=(RunEntry(iso(last), "success", 0.2, "ok"),),
    )
    return State(jobs={REGISTRY: record}, first_run=iso(last - timedelta(days=1)))


def test_a_late_job_with_a_warning_shows_both_and_lateness_from_its_due_time(cli: Invoke, root: Path) -> None:
    """Late and warned: the table, the --check line and --json show both; lateness counts from the due
    time and names it with its zone and the grace ("due 13:55 UTC, 7m late, grace 1m")."""
    now = datetime.now(UTC)
    state = _late_with_warning(now)
    _write_state(root, state)
    last = datetime.fromisoformat(state.jobs[REGISTRY].last_success or "")
    due = last + timedelta(minutes=5)
    check = cli("status", "--check")
    assert check.exit_code == 1, check.output
    line = check.stdout.split(f"{REGISTRY}=", 1)[1].split("refresh_patch_meta=")[0]
    assert f"due {due:%H:%M} UTC, " in line and " late, grace 1m" in line, line
    assert "warning: high: no servable model" in line, line
    minutes = int((now - due).total_seconds() // 60)
    assert f", {minutes}m late," in line or f", {minutes + 1}m late," in line, line
    table = cli("status").stdout
    assert "+warning" in table
    _doc, job = _json_job(cli, REGISTRY)
    assert job["health"] == "late" and job["health_level"] == "warning"
    assert "warning: high" in job["health_detail"] and job["last_warning"].startswith("high")


def test_terminal_and_plain_status_job_show_the_same_rows(cli: Invoke, root: Path) -> None:
    """`status JOB` drawn on a real terminal (pty) and piped has the same labelled rows with the same
    values (pending change and warning included), and no `ok (ok)`."""
    now = datetime.now(UTC)
    state = _late_with_warning(now)
    _write_state(root, state)
    plain = cli("status", "refresh-registry")
    assert plain.exit_code == 0, plain.output
    rows = {}
    for line in plain.stdout.splitlines()[1:]:
        if line.startswith("  ") and not line.startswith("    ") and "recent runs" not in line:
            label, value = line[2:17].strip(), line[18:].strip()
            rows[label] = value
    assert {"warning", "pending change", "deadline", "health", "counts"} <= set(rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env.update(PYTHONPATH=str(REPO), TERM="xterm", COLUMNS="250", LINES="60")
    pid, fd = pty.fork()
    if pid == 0:
        argv = [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), "status", "refresh-registry"]
        os.execve(sys.executable, argv, env)
    text = _read_for(fd, 20, lambda t: "recent runs" in t and t.rstrip().endswith("┘"))
    os.waitpid(pid, 0)
    os.close(fd)
    import re

    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")
    lines = {" ".join(line.split()) for line in screen.splitlines()}
    for label, value in rows.items():
        expected = " ".join(f"{label} {value}".split())
        if label in ("next run", "deadline"):  # relative parts may tick between the two draws
            expected = expected.split(" (")[0]
        assert any(line.startswith(expected) for line in lines), (label, value, screen[-3000:])
    assert "ok (ok)" not in plain.stdout


def test_plain_table_stays_within_120_columns_with_every_job_failing(cli: Invoke, root: Path) -> None:
    """Every job failing with a long error, killed markers and huge counters, in a zone with a
    half-hour offset: every line of the plain table is at most 120 characters, one line per job."""
    now = datetime.now(UTC)
    jobs = {}
    for job_id in ("refresh_history_index", REGISTRY, "refresh_patch_meta"):
        jobs[job_id] = JobRecord(
            success_count=2**40,
            error_count=2**40,
            skipped_count=2**40,
            last_status="error",
            last_started=iso(now - timedelta(minutes=3)),
            last_finished=iso(now - timedelta(minutes=2)),
            last_error=iso(now - timedelta(minutes=2)),
            last_error_message=LONG,
            consecutive_failures=2**40,
            last_duration_s=123456.7,
            running=RunMarker(999999, iso(now - timedelta(minutes=1)), 1),
            runs=tuple(RunEntry(iso(now - timedelta(hours=i)), "error", 1.0, LONG) for i in range(20)),
        )
    _write_state(root, State(jobs=jobs))
    result = cli("status", env={"STRATMANCER_TZ": "America/St_Johns"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4, lines
    assert all(len(line) <= PLAIN_WIDTH for line in lines), [len(line) for line in lines]
    assert all("failing x" in line for line in lines[1:])


def test_the_last_error_column_is_empty_after_a_success(cli: Invoke, root: Path) -> None:
    """A failure then a success: the table's last-error column is '-', `status JOB` keeps the error."""
    write_card(root, "mid", "20251101_164237")
    cards = root / "ml_pipeline/models/modelcards"
    cards.rename(root / "moved")
    assert cli("refresh-registry").exit_code == 1
    failing = [line for line in cli("status").stdout.splitlines() if line.startswith("refresh-registry")]
    assert failing[0].split()[-1] != "-"
    (root / "moved").rename(cards)
    assert cli("refresh-registry").exit_code == 0
    line = next(line for line in cli("status").stdout.splitlines() if line.startswith("refresh-registry"))
    assert line.rstrip().endswith(" -"), line
    assert "modelcards" in cli("status", "refresh-registry").stdout


def test_json_carries_what_status_job_shows(cli: Invoke, root: Path) -> None:
    """--json has schema_version, grace and time limit, the deadline, the health level and reason, the
    warning, the interrupted count, the pending change and the deployment's first run."""
    _write_state(root, _late_with_warning(datetime.now(UTC)))
    doc, job = _json_job(cli, REGISTRY)
    assert doc["schema_version"] == 2 and doc["first_run"]
    assert job["grace_seconds"] == 60 and job["timeout_seconds"] == 240
    assert job["deadline"] and job["health_level"] == "warning" and job["health_detail"].startswith("due ")
    for key in ("last_warning", "interrupted_count", "pending_change", "progress", "schedule_text"):
        assert key in job, key


def test_after_installation_check_is_ok_while_the_patch_job_is_new(cli: Invoke, root: Path) -> None:
    """After the first runs of history and registry, the never-run patch job is `new` and `status
    --check` exits 0; it becomes `never run` (a warning) only once its first due time plus grace passed."""
    shutil.copytree(REPO / "data" / "processed", root / "data" / "processed", dirs_exist_ok=True)
    for elo in ("low", "mid", "high"):
        write_card(root, elo, "20251101_164237")
    assert cli("refresh-history").exit_code == 0
    assert cli("refresh-registry").exit_code == 0
    check = cli("status", "--check")
    assert check.exit_code == 0, check.output
    assert "refresh_patch_meta=new" in check.stdout
    state_file = root / "state" / "jobs_state.json"
    doc = json.loads(state_file.read_text())
    doc["first_run"] = iso(datetime.now(UTC) - timedelta(days=2))  # installed two days ago
    state_file.write_text(json.dumps(doc))
    later = cli("status", "--check")
    assert later.exit_code == 1 and "refresh_patch_meta=never run" in later.stdout, later.output


def _patch_run(root: Path, server: DDragonServer) -> subprocess.Popen[str]:
    """`refresh-patch` as a real process against a Data Dragon that answers after 30 s; returned once
    the state names it as running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env.update(PYTHONPATH=str(REPO), STRATMANCER_DDRAGON_URL=server.base_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), "refresh-patch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state_file = root / "state" / "jobs_state.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state_file.exists() and '"running": {' in state_file.read_text():
            time.sleep(0.3)  # into the fetch
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the patch run never showed as running")


def test_ctrl_c_is_interrupted_not_failing_and_sigterm_stays_a_failure(
    cli: Invoke, root: Path, server: DDragonServer
) -> None:
    """Ctrl-C of a manual run exits 130, is recorded as interrupted (counted apart, no failure) and
    leaves `--check` below critical; SIGTERM from a supervisor is still a failure (critical)."""
    server.script("/api/versions.json", json_reply(["16.23.1"], delay_s=30))
    proc = _patch_run(root, server)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    record = json.loads((root / "state" / "jobs_state.json").read_text())["jobs"]["refresh_patch_meta"]
    assert record["last_status"] == "interrupted" and record["interrupted_count"] == 1
    assert record["error_count"] == 0 and record["consecutive_failures"] == 0
    assert record["runs"][-1]["status"] == "interrupted"
    check = cli("status", "--check")
    assert check.exit_code < 2, check.output
    assert "refresh_patch_meta=new" in check.stdout
    assert "!" in next(line for line in cli("status").stdout.splitlines() if line.startswith("refresh-patch"))
    proc = _patch_run(root, server)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    record = json.loads((root / "state" / "jobs_state.json").read_text())["jobs"]["refresh_patch_meta"]
    assert record["last_status"] == "error" and record["error_count"] == 1
    assert cli("status", "--check").exit_code == 2
