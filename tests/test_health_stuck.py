"""Runs that hide lateness (stopped, hung, a reused pid) and successes recorded with the clock ahead."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import Result

from stratmancer_jobs.clock import iso
from stratmancer_jobs.config import JobSchedule, Settings
from stratmancer_jobs.health import CRITICAL, OK, WARNING, compute_health
from stratmancer_jobs.procs import marker_alive, process_start_ticks
from stratmancer_jobs.runner import run_job
from stratmancer_jobs.state import (
    MAX_CLOCK_SKEW_S,
    JobRecord,
    RunMarker,
    StateStore,
    empty_record,
    mark_finished,
    mark_started,
    read_state,
)
from stratmancer_jobs.status import build_report
from tests.conftest import start_fake_run, with_fake_job, write_card

Invoke = Callable[..., Result]
UTCZ = ZoneInfo("UTC")
HOURLY = JobSchedule("0 * * * *", 300, 1800)
HOURLY_NO_LIMIT = JobSchedule("0 * * * *", 300, 0)
DAILY = JobSchedule("0 3 * * *", 3600, 600)
T0 = datetime(2026, 1, 1, 3, 0, 20, tzinfo=UTC)


def _alive(marker: object) -> bool:
    return True


def _succeeded(at: datetime) -> JobRecord:
    record = empty_record()
    record = mark_finished(record, ok=True, started=at, finished=at, duration_s=1.0, summary="s", error=None)
    return record


@pytest.fixture
def stopped_sleep() -> Iterator[subprocess.Popen[bytes]]:
    """A real `sleep` process, stopped with SIGSTOP; killed and reaped afterwards."""
    proc = subprocess.Popen(["sleep", "600"])
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_run_past_twice_its_limit_is_critical() -> None:
    """A daily job 'running' for 3 days with a 600 s limit is critical (stuck), not a warning."""
    record = _succeeded(T0)
    record = mark_started(record, pid=4242, started=T0 + timedelta(days=1))
    h = compute_health(record, DAILY, UTCZ, T0 + timedelta(days=4), _alive)
    assert (h.state, h.level) == ("running", CRITICAL)
    assert "more than twice its 600s limit" in h.detail and h.cell == "running 3d (stuck)"
    just_over = compute_health(record, DAILY, UTCZ, T0 + timedelta(days=1, seconds=900), _alive)
    assert (just_over.state, just_over.level) == ("running", WARNING)


def test_running_job_late_by_twice_its_interval_is_critical_without_a_limit() -> None:
    """With no time limit, a run that keeps an hourly job without success for hours is critical."""
    t = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    record = _succeeded(t)
    record = mark_started(record, pid=4242, started=t + timedelta(minutes=59, seconds=40))
    fine = compute_health(record, HOURLY_NO_LIMIT, UTCZ, t + timedelta(hours=2), _alive)
    assert (fine.state, fine.level) == ("running", OK)
    stuck = compute_health(record, HOURLY_NO_LIMIT, UTCZ, t + timedelta(hours=3, minutes=10), _alive)
    assert (stuck.state, stuck.level) == ("running", CRITICAL)
    assert "late by 2h05m, more than twice the 60m interval" in stuck.detail


def test_first_run_stuck_without_a_limit_is_critical() -> None:
    """A job that never succeeded and whose first run hangs becomes critical after two intervals."""
    record = empty_record()
    started = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    record = mark_started(record, pid=4242, started=started)
    assert compute_health(record, HOURLY_NO_LIMIT, UTCZ, started + timedelta(hours=1), _alive).level == OK
    late = compute_health(record, HOURLY_NO_LIMIT, UTCZ, started + timedelta(hours=4), _alive)
    assert (late.state, late.level) == ("running", CRITICAL)


def test_marker_records_the_process_start_time(stopped_sleep: subprocess.Popen[bytes]) -> None:
    """mark_started stores field 22 of /proc/<pid>/stat, which matches the live process only."""
    ticks = process_start_ticks(stopped_sleep.pid)
    fields = Path(f"/proc/{stopped_sleep.pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert ticks is not None and ticks == int(fields[19])
    record = empty_record()
    record = mark_started(record, pid=stopped_sleep.pid, started=T0)
    assert record.running is not None and record.running.pid_starttime == ticks
    assert marker_alive(record.running)


def test_reused_pid_is_a_dead_marker(stopped_sleep: subprocess.Popen[bytes]) -> None:
    """A marker naming a live pid with another start time is the run's pid reused: status says killed."""
    ticks = process_start_ticks(stopped_sleep.pid)
    assert ticks is not None
    marker = RunMarker(pid=stopped_sleep.pid, started=iso(T0), pid_starttime=ticks + 1)
    assert not marker_alive(marker)
    assert marker_alive(replace(marker, pid_starttime=ticks))
    assert marker_alive(RunMarker(pid=stopped_sleep.pid, started=iso(T0)))  # old markers: pid only
    record = replace(_succeeded(T0), running=marker)
    h = compute_health(record, DAILY, UTCZ, T0 + timedelta(hours=1))
    assert h.cell == "ok (killed)" and f"(pid {stopped_sleep.pid}) was killed" in h.detail


def test_dead_pid_is_a_dead_marker() -> None:
    """A marker whose process has exited (and been reaped) is not alive."""
    proc = subprocess.Popen(["true"])
    ticks = process_start_ticks(proc.pid)
    proc.wait()
    assert not marker_alive(RunMarker(pid=proc.pid, started=iso(T0), pid_starttime=ticks))
    assert process_start_ticks(proc.pid) is None


def test_sigstopped_run_of_the_tool_turns_critical(settings: Settings) -> None:
    """A real run of the tool stopped with SIGSTOP: running at first, critical days later, never hidden."""
    spec, fake = with_fake_job(settings, "sleepy", timeout_s=600)
    proc, running = start_fake_run(settings.layout.root, seconds=60, timeout_s=600)
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        started = datetime.fromisoformat(running["started"])
        soon = build_report(fake, started + timedelta(seconds=30), (spec,)).jobs[0].health
        assert (soon.state, soon.level) == ("running", OK)
        later = build_report(fake, started + timedelta(days=3), (spec,))
        assert later.jobs[0].health.state == "running" and later.level == CRITICAL
        assert "STRATMANCER JOBS CRITICAL" in later.check_line() and "stuck" in later.jobs[0].health.cell
    finally:
        proc.kill()
        proc.wait()
    gone = build_report(fake, started + timedelta(days=3), (spec,)).jobs[0].health
    assert gone.cell.endswith("(killed)") and gone.level == WARNING  # never run, and that run was killed


def test_status_check_with_a_stopped_marker_process_is_critical(
    cli: Invoke, root: Path, stopped_sleep: subprocess.Popen[bytes]
) -> None:
    """status --check through the CLI: a stopped process holding a 3-day-old marker exits 2."""
    store = StateStore(root / "state/jobs_state.json")
    now = datetime.now(UTC)
    old = now - timedelta(days=3)

    def change(record: JobRecord) -> JobRecord:
        record = mark_finished(
            record, ok=True, started=old, finished=old, duration_s=1.0, summary="s", error=None
        )
        return mark_started(record, pid=stopped_sleep.pid, started=old + timedelta(minutes=1))

    store.update("refresh_patch_meta", change, now)
    check = cli("status", "--check")
    assert check.exit_code == 2, check.output
    assert "refresh_patch_meta=running (running for 2d" in check.stdout and "limit" in check.stdout
    shown = json.loads(cli("status", "--json").stdout)["jobs"][2]
    assert shown["health"] == "running" and set(shown["running"]) == {"pid", "started", "host"}


def test_future_last_success_is_reported_and_not_a_success() -> None:
    """A success stamped 19 days ahead is 'clock skew' and late, not ok; within the skew it is ok."""
    now = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    ahead = _succeeded(now + timedelta(days=19))
    h = compute_health(ahead, HOURLY, UTCZ, now, _alive)
    assert h.state == "late" and h.level >= WARNING
    assert h.detail.startswith("clock skew: last success 2026-01-20T12:30:00+00:00 is in the future")
    assert h.cell.endswith("(clock skew)")
    slightly = _succeeded(now + timedelta(seconds=MAX_CLOCK_SKEW_S - 10))
    assert compute_health(slightly, HOURLY, UTCZ, now, _alive).state == "ok"


def test_if_due_runs_when_the_last_success_is_in_the_future(settings: Settings) -> None:
    """--if-due does not trust a success recorded in the future: the job runs; the newer success is
    kept (last_success never moves backwards) and the run just done counts as the last success."""
    spec, fake = with_fake_job(settings, "ok")
    now = datetime(2026, 1, 1, 12, 7, tzinfo=UTC)
    future = now + timedelta(days=19)
    StateStore(fake.layout.state_file).update(
        spec.id,
        lambda r: mark_finished(
            r, ok=True, started=future, finished=future, duration_s=1.0, summary="s", error=None
        ),
        future,
    )
    log = logging.getLogger("test_health_stuck")
    outcome = run_job(spec, fake, log=log, if_due=True, clock=lambda: now)
    assert outcome.status == "success", outcome
    record = read_state(fake.layout.state_file)["jobs"][spec.id]
    assert (record["last_success"], record["last_finished"]) == (iso(future), iso(now))
    assert run_job(spec, fake, log=log, if_due=True, clock=lambda: now).status == "not_due"
    near = now + timedelta(seconds=MAX_CLOCK_SKEW_S - 60)  # a little ahead: within the allowed skew
    StateStore(fake.layout.state_file).update(
        spec.id,
        lambda r: mark_finished(
            r, ok=True, started=near, finished=near, duration_s=1.0, summary="s", error=None
        ),
        near,
    )
    assert run_job(spec, fake, log=log, if_due=True, clock=lambda: now).status == "not_due"


def test_status_check_shows_clock_skew_through_the_cli(cli: Invoke, root: Path) -> None:
    """status --check and status JOB name the clock skew when a last success lies in the future."""
    write_card(root, "mid", "20251101_164237")
    assert cli("refresh-registry").exit_code == 0
    path = root / "state/jobs_state.json"
    data = json.loads(path.read_text())
    data["jobs"]["refresh_model_registry"]["last_success"] = iso(datetime.now(UTC) + timedelta(days=19))
    path.write_text(json.dumps(data))
    check = cli("status", "--check")
    assert check.exit_code in (1, 2) and "clock skew: last success" in check.stdout
    assert "clock skew" in cli("status", "refresh-registry").stdout
