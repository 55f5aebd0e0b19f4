"""Turning a StatusReport into text: a rich table on a terminal, plain columns under cron or pipes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from stratmancer_jobs.clock import parse_iso
from stratmancer_jobs.state import RECENT_RUNS, JobRecord
from stratmancer_jobs.status import JobStatus, StatusReport

if TYPE_CHECKING:
    from rich.console import Console

HEALTH_STYLE = {"ok": "green", "running": "cyan", "late": "yellow", "failing": "bold red", "never run": "dim"}
RUN_MARK = {"success": "ok", "error": "FAIL", "skipped": "skip"}


def _when(value: object, zone_now: datetime) -> str:
    moment = parse_iso(value)
    if moment is None:
        return "-"
    return moment.astimezone(zone_now.tzinfo).strftime("%Y-%m-%d %H:%M:%S")


def _duration(value: object) -> str:
    return f"{value:.2f}s" if isinstance(value, (int, float)) else "-"


def recent(record: JobRecord, limit: int = 10) -> str:
    return " ".join(RUN_MARK.get(str(r.status), "?") for r in record.runs[-limit:]) or "-"


def _cells(job: JobStatus, now: datetime) -> list[str]:
    r = job.record
    return [
        job.spec.id,
        job.spec.name,
        f"{job.schedule} ({job.schedule_text})",
        job.next_run.astimezone(now.tzinfo).strftime("%Y-%m-%d %H:%M"),
        _when(r.last_finished or r.last_started, now),
        str(r.last_status or "-"),
        job.health.cell,
        _duration(r.last_duration_s),
        f"{r.success_count}/{r.error_count}/{r.skipped_count}",
        recent(r),
        str(r.last_error_message or "-"),
    ]


HEADERS = [
    "job",
    "name",
    "schedule",
    "next run",
    "last run",
    "result",
    "health",
    "duration",
    "ok/err/skip",
    "recent",
    "last error",
]


def print_table(report: StatusReport, console: Console, now: datetime) -> None:
    """Rich table for a terminal, coloured by health."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="stratmancer-jobs", show_lines=False)
    for header in HEADERS:
        table.add_column(header, overflow="fold")
    for job in report.jobs:
        cells = _cells(job, now)
        style = HEALTH_STYLE.get(job.health.state, "")
        row: list[str | Text] = list(cells)
        row[6] = Text(cells[6], style=style)
        table.add_row(*row)
    console.print(table)


def plain_table(report: StatusReport, now: datetime) -> str:
    """The same columns as plain, aligned text (for cron mail, pipes and logs)."""
    rows = [HEADERS] + [_cells(job, now) for job in report.jobs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def job_detail(job: JobStatus, now: datetime) -> str:
    """Everything about one job, with its last RECENT_RUNS runs."""
    r = job.record
    runs = recent_runs_lines(r)
    lines = [
        f"{job.spec.id} ({job.spec.command}): {job.spec.name}",
        f"  schedule        {job.schedule} ({job.schedule_text})",
        f"  next run        {job.next_run.isoformat()}",
        f"  health          {job.health.state} ({job.health.detail})",
        f"  last status     {r.last_status or '-'}",
        f"  last started    {r.last_started or '-'}",
        f"  last finished   {r.last_finished or '-'}",
        f"  last success    {r.last_success or '-'}",
        f"  last error      {r.last_error or '-'}",
        f"  error message   {r.last_error_message or '-'}",
        f"  duration        {_duration(r.last_duration_s)}",
        f"  summary         {r.last_summary or '-'}",
        f"  counts          success {r.success_count}, error {r.error_count}, skipped {r.skipped_count}",
        f"  recent runs ({len(runs)}, oldest first):",
        *runs,
    ]
    return "\n".join(lines) + "\n"


def recent_runs_lines(record: JobRecord, limit: int = RECENT_RUNS) -> list[str]:
    """One line per stored run, the last ``limit`` only."""
    return [
        f"    {run.started}  {RUN_MARK.get(str(run.status), '?'):<4}  "
        f"{_duration(run.duration_s):>8}  {run.summary or ''}"
        for run in record.runs[-limit:]
    ]
