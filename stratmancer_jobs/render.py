"""Turning a StatusReport into text: a rich table on a terminal, plain columns under cron or pipes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stratmancer_jobs.state import RECENT_RUNS, parse_iso
from stratmancer_jobs.status import JobStatus, StatusReport

HEALTH_STYLE = {"ok": "green", "running": "cyan", "late": "yellow", "failing": "bold red", "never run": "dim"}
RUN_MARK = {"success": "ok", "error": "FAIL", "skipped": "skip"}


def _when(value: object, zone_now: datetime) -> str:
    moment = parse_iso(value)
    if moment is None:
        return "-"
    return moment.astimezone(zone_now.tzinfo).strftime("%Y-%m-%d %H:%M:%S")


def _duration(value: object) -> str:
    return f"{value:.2f}s" if isinstance(value, (int, float)) else "-"


def recent(record: dict[str, Any], limit: int = 10) -> str:
    runs = [r for r in record.get("runs") or [] if isinstance(r, dict)][-limit:]
    return " ".join(RUN_MARK.get(str(r.get("status")), "?") for r in runs) or "-"


def _cells(job: JobStatus, now: datetime) -> list[str]:
    r = job.record
    return [
        job.spec.id,
        job.spec.name,
        f"{job.schedule} ({job.schedule_text})",
        job.next_run.astimezone(now.tzinfo).strftime("%Y-%m-%d %H:%M"),
        _when(r.get("last_finished") or r.get("last_started"), now),
        str(r.get("last_status") or "-"),
        job.health.cell,
        _duration(r.get("last_duration_s")),
        f"{r.get('success_count', 0)}/{r.get('error_count', 0)}/{r.get('skipped_count', 0)}",
        recent(r),
        str(r.get("last_error_message") or "-"),
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
        f"  last status     {r.get('last_status') or '-'}",
        f"  last started    {r.get('last_started') or '-'}",
        f"  last finished   {r.get('last_finished') or '-'}",
        f"  last success    {r.get('last_success') or '-'}",
        f"  last error      {r.get('last_error') or '-'}",
        f"  error message   {r.get('last_error_message') or '-'}",
        f"  duration        {_duration(r.get('last_duration_s'))}",
        f"  summary         {r.get('last_summary') or '-'}",
        f"  counts          success {r.get('success_count', 0)}, error {r.get('error_count', 0)}, "
        f"skipped {r.get('skipped_count', 0)}",
        f"  recent runs ({len(runs)}, oldest first):",
        *runs,
    ]
    return "\n".join(lines) + "\n"


def recent_runs_lines(record: dict[str, Any], limit: int = RECENT_RUNS) -> list[str]:
    """One line per stored run, the last ``limit`` only (a damaged state may hold any number)."""
    runs = record.get("runs")
    kept = [run for run in runs[-limit:] if isinstance(run, dict)] if isinstance(runs, list) else []
    return [
        f"    {run.get('started', '?')}  {RUN_MARK.get(str(run.get('status')), '?'):<4}  "
        f"{_duration(run.get('duration_s')):>8}  {run.get('summary') or ''}"
        for run in kept
    ]
