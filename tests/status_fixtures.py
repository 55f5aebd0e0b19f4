"""A frozen clock and a state with a success, a failure, a running and a never-run job (render tests)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from stratmancer_jobs.atomicio import atomic_write_json
from stratmancer_jobs.config import JobSchedule, Settings
from stratmancer_jobs.jobtable import JOBS, JobSpec
from stratmancer_jobs.state import JobRecord, RunEntry, RunMarker, State, encode
from stratmancer_jobs.status import StatusReport, build_report

NOW = datetime(2026, 11, 29, 14, 17, 30, tzinfo=UTC)
LONG_ERROR = "Data Dragon unreachable: " + ("connection refused by ddragon.leagueoflegends.com; " * 6)[:275]
NEVER = JobSpec("refresh_news_feed", "Refresh News Feed", "refresh-news", "*/15 * * * *", 60, 120, "x:run")


def _run(started: str, status: str, duration: float, summary: str) -> RunEntry:
    return RunEntry(started=started, status=status, duration_s=duration, summary=summary)


def sample_state() -> State:
    """history running (after two successes), registry ok (with a skip), patch failing with a long error."""
    history = JobRecord(
        success_count=2,
        last_status="success",
        last_started="2026-11-29T13:00:00+00:00",
        last_finished="2026-11-29T13:00:04.200000+00:00",
        last_success="2026-11-29T13:00:04.200000+00:00",
        last_duration_s=4.2,
        last_summary="History index refreshed",
        running=RunMarker(pid=4242, started="2026-11-29T14:16:18+00:00"),
        runs=(
            _run("2026-11-29T12:00:00+00:00", "success", 3.9, "History index refreshed"),
            _run("2026-11-29T13:00:00+00:00", "success", 4.2, "History index refreshed"),
        ),
    )
    registry = JobRecord(
        success_count=40,
        skipped_count=1,
        last_status="success",
        last_started="2026-11-29T14:15:00+00:00",
        last_finished="2026-11-29T14:15:00.310000+00:00",
        last_success="2026-11-29T14:15:00.310000+00:00",
        last_duration_s=0.31,
        last_summary="Model registry refreshed: 3 models",
        runs=tuple(
            _run(f"2026-11-29T{13 + (m // 60)}:{m % 60:02d}:00+00:00", s, 0.3, "Model registry refreshed")
            for m, s in zip(range(30, 80, 5), ["success"] * 4 + ["skipped"] + ["success"] * 5, strict=True)
        ),
    )
    patch = JobRecord(
        success_count=12,
        error_count=3,
        last_status="error",
        last_started="2026-11-29T03:00:00+00:00",
        last_finished="2026-11-29T03:01:12+00:00",
        last_success="2026-11-26T03:00:02+00:00",
        last_error="2026-11-29T03:01:12+00:00",
        last_error_message=LONG_ERROR,
        last_duration_s=72.4,
        consecutive_failures=3,
        runs=(
            _run("2026-11-26T03:00:00+00:00", "success", 2.1, "patch 16.23"),
            _run("2026-11-27T03:00:00+00:00", "error", 70.2, "error"),
            _run("2026-11-28T03:00:00+00:00", "error", 71.0, "error"),
            _run("2026-11-29T03:00:00+00:00", "error", 72.4, "error"),
        ),
    )
    jobs = {"refresh_history_index": history, "refresh_model_registry": registry, "refresh_patch_meta": patch}
    return State(jobs=jobs)


def sample_report(settings: Settings, *, progress: bool = True) -> StatusReport:
    """The sample state under ``settings``' root, read back at NOW (the running pid counts as alive)."""
    atomic_write_json(settings.layout.state_file, encode(sample_state()))
    if progress:
        progress_doc = {"files_done": 4, "files_total": 9, "bytes_done": 450, "bytes_total": 1000}
        atomic_write_json(settings.layout.job_progress("refresh_history_index"), progress_doc)
    jobs = dict(settings.jobs)
    jobs[NEVER.id] = JobSchedule(NEVER.default_schedule, NEVER.default_grace_s, NEVER.default_timeout_s)
    settings = replace(settings, jobs=jobs)
    return build_report(settings, NOW, (*JOBS, NEVER), alive=lambda marker: True)
