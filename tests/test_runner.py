"""The runner: outcomes recorded, failures never look like success, locks, timeouts, --if-due."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stratmancer_jobs.config import Settings
from stratmancer_jobs.logs import setup_logging
from stratmancer_jobs.runner import run_job
from stratmancer_jobs.state import read_state
from tests.conftest import FAKE_KEY, start_fake_run, with_fake_job


def _log(secrets: tuple[str, ...] = ()) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    return setup_logging(verbose=True, quiet=False, fmt="human", secrets=secrets, stream=stream), stream


def _record(settings: Settings, job_id: str = "fake_job") -> dict[str, object]:
    record: dict[str, object] = read_state(settings.layout.state_file)["jobs"][job_id]
    return record


def test_success_is_recorded_with_summary_and_metrics(settings: Settings) -> None:
    """A successful job is counted, timed and its summary and metrics kept."""
    spec, settings = with_fake_job(settings, "ok")
    log, stream = _log()
    outcome = run_job(spec, settings, log=log)
    assert (outcome.status, outcome.exit_code, outcome.summary) == ("success", 0, "fake job done")
    record = _record(settings)
    assert record["success_count"] == 1 and record["last_status"] == "success"
    assert record["last_metrics"] == {"things": 3}
    assert record["running"] is None
    lines = stream.getvalue().splitlines()
    assert "fake_job: started Fake Job" in lines[0]
    assert "finished in" in lines[-1] and "next run" in lines[-1]


def test_unexpected_exception_is_error_with_traceback_and_no_secret(settings: Settings) -> None:
    """A raising job exits 1, is recorded as an error, prints a traceback, and never shows the key."""
    os.environ["RIOT_API_KEY"] = FAKE_KEY
    try:
        spec, settings = with_fake_job(settings, "boom")
        from dataclasses import replace

        settings = replace(settings, redact_values=(FAKE_KEY,))
        log, stream = _log((FAKE_KEY,))
        outcome = run_job(spec, settings, log=log)
    finally:
        del os.environ["RIOT_API_KEY"]
    assert (outcome.status, outcome.exit_code) == ("error", 1)
    text = stream.getvalue()
    assert "Traceback" in text and "RuntimeError" in text
    assert FAKE_KEY not in text
    record = _record(settings)
    assert record["error_count"] == 1 and record["last_status"] == "error"
    assert "RuntimeError: exploded" in str(record["last_error_message"])
    assert FAKE_KEY not in settings.layout.state_file.read_text()


def test_tool_error_is_one_line_and_exit_1(settings: Settings) -> None:
    """The tool's own errors are recorded with their message and no traceback."""
    spec, settings = with_fake_job(settings, "bad_input")
    log, stream = _log()
    outcome = run_job(spec, settings, log=log)
    assert outcome.exit_code == 1
    assert "Traceback" not in stream.getvalue()
    assert "matches_GOLD.json is not valid JSON" in str(_record(settings)["last_error_message"])


def test_partial_failure_is_recorded_as_error(settings: Settings) -> None:
    """A job that did part of its work but reports an error is an error (exit 1), summary kept."""
    spec, settings = with_fake_job(settings, "partial")
    outcome = run_job(spec, settings, log=_log()[0])
    assert (outcome.status, outcome.exit_code) == ("error", 1)
    record = _record(settings)
    assert record["last_summary"] == "9 tiers refreshed"
    assert record["last_error_message"] == "matches_GOLD.json: truncated JSON"


_HOLDER = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_second_run_while_lock_is_held_is_skipped(settings: Settings) -> None:
    """With the job's lock held by another process, the run is skipped: exit 0, counted, warned."""
    spec, settings = with_fake_job(settings, "ok")
    lock = settings.layout.job_lock(spec.id)
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock), "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        log, stream = _log()
        outcome = run_job(spec, settings, log=log)
    finally:
        holder.kill()
        holder.wait()
    assert (outcome.status, outcome.exit_code) == ("skipped", 0)
    assert "WARNING" in stream.getvalue() and "skipped" in stream.getvalue()
    record = _record(settings)
    assert record["skipped_count"] == 1 and record["success_count"] == 0
    # the killed holder's lock is free again and the lock file is still there
    assert run_job(spec, settings, log=_log()[0]).status == "success"
    assert lock.exists()


def test_timeout_stops_a_sleeping_job_and_frees_the_lock(settings: Settings) -> None:
    """A job past its maximum run time is stopped in its sleep (it never gets to write its marker),
    recorded 'timed out after N s', lock released."""
    spec, settings = with_fake_job(settings, "sleepy", timeout_s=1)
    marker = settings.layout.root / "slept"
    outcome = run_job(spec, settings, log=_log()[0], options={"seconds": 30, "marker": str(marker)})
    assert not marker.exists()
    assert (outcome.status, outcome.exit_code) == ("error", 1)
    assert _record(settings)["last_error_message"] == "timed out after 1 s"
    assert run_job(spec, settings, log=_log()[0], options={"seconds": 0}).status == "success"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed timeout itself
def test_timeout_swallowed_in_a_finalizer_is_still_recorded(settings: Settings) -> None:
    """A timeout that lands where Python swallows exceptions (a __del__) still fails the run."""
    spec, settings = with_fake_job(settings, "swallowed", timeout_s=0)
    settings = replace(settings, run_timeout_s=0.3)
    outcome = run_job(spec, settings, log=_log()[0], options={"seconds": 1})
    assert (outcome.status, outcome.exit_code, outcome.error) == ("error", 1, "timed out after 0.3 s")
    assert _record(settings)["last_error_message"] == "timed out after 0.3 s"


def test_timeout_wrapped_by_the_interrupted_code_is_still_recorded(settings: Settings) -> None:
    """A timeout that the interrupted code re-raises as another exception is recorded as the timeout."""
    spec, settings = with_fake_job(settings, "wrapping", timeout_s=0)
    settings = replace(settings, run_timeout_s=0.3)
    outcome = run_job(spec, settings, log=_log()[0], options={"seconds": 5})
    assert (outcome.status, outcome.exit_code, outcome.error) == ("error", 1, "timed out after 0.3 s")


def test_timeout_flag_overrides_config(settings: Settings) -> None:
    """An explicit timeout_s wins over the configured one."""
    spec, settings = with_fake_job(settings, "sleepy", timeout_s=0)
    settings = replace(settings, run_timeout_s=0.5)  # what load_settings makes of --timeout 0.5
    outcome = run_job(spec, settings, log=_log()[0], options={"seconds": 30})
    assert outcome.error == "timed out after 0.5 s"


def test_if_due_runs_when_a_scheduled_time_was_missed(settings: Settings) -> None:
    """--if-due runs a job that never succeeded, then not again until the next scheduled time passes."""
    spec, settings = with_fake_job(settings, "ok")
    t0 = datetime(2026, 11, 28, 12, 1, tzinfo=UTC)
    first = run_job(spec, settings, log=_log()[0], if_due=True, clock=lambda: t0)
    assert first.status == "success"
    later = t0 + timedelta(minutes=2)  # no */5 boundary passed since 12:01
    second = run_job(spec, settings, log=_log()[0], if_due=True, clock=lambda: later)
    assert (second.status, second.exit_code) == ("not_due", 0)
    assert second.summary is not None and "not due" in second.summary
    missed = t0 + timedelta(minutes=9)  # 12:05 passed
    assert run_job(spec, settings, log=_log()[0], if_due=True, clock=lambda: missed).status == "success"
    assert _record(settings)["success_count"] == 2


def test_running_marker_is_visible_while_job_runs(settings: Settings, root: Path) -> None:
    """While a job runs in another process, the state names its pid; after a kill -9 it is not alive."""
    from stratmancer_jobs.procs import pid_alive

    proc, running = start_fake_run(root, seconds=30)
    try:
        assert running["pid"] == proc.pid
        assert pid_alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert not pid_alive(proc.pid)


@pytest.mark.parametrize("fmt", ["json"])
def test_json_log_lines_parse(settings: Settings, fmt: str) -> None:
    """--log-format json gives one JSON object per line with time, level, job, event, duration, summary."""
    import json

    spec, settings = with_fake_job(settings, "ok")
    stream = io.StringIO()
    log = setup_logging(verbose=False, quiet=False, fmt=fmt, secrets=(), stream=stream)
    run_job(spec, settings, log=log)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["end"]  # `start` is a debug line (-v)
    end = events[-1]
    assert end["job"] == "fake_job" and end["level"] == "info"
    assert end["summary"] == "fake job done" and isinstance(end["duration"], float)
    assert datetime.fromisoformat(end["time"]).tzinfo is not None
