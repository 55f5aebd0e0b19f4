"""Turning a StatusReport into text: a rich table on a terminal, plain columns under cron or pipes.

The table is one line per job at any width: every cell is ``no_wrap`` with an ellipsis, columns are
dropped by priority when the terminal is narrow and gained (absolute times, the last error) when it is
wide. The English schedule text, the long name and the full error belong to ``job_detail``.
rich is imported only inside the functions that draw with it (plain output under cron never loads it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from stratmancer_jobs.clock import parse_iso
from stratmancer_jobs.health import CRITICAL, WARNING
from stratmancer_jobs.state import RECENT_RUNS, JobRecord, last_completed_status, wall_clock_note
from stratmancer_jobs.status import JobStatus, StatusReport

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

HEALTH_STYLE = {
    "ok": "green",
    "running": "cyan",
    "late": "yellow",
    "warning": "yellow",
    "failing": "bold red",
    "never run": "dim",
    "new": "cyan",
}
UNKNOWN_STYLE = "yellow"  # a state this module does not know (e.g. "warning"): worth a look, not an alarm
RUN_MARK = {"success": "ok", "error": "FAIL", "skipped": "skip", "interrupted": "int"}
RUN_STYLE = {"success": "green", "error": "bold red", "skipped": "yellow", "interrupted": "magenta"}
STRIP_RUNS = 8  # runs in the table's recent strip, oldest first
STRIP_PLAIN = {"success": "+", "error": "x", "skipped": "-", "interrupted": "!"}
STRIP_TTY = {"success": "●", "error": "✗", "skipped": "○", "interrupted": "◌"}
PLAIN_WIDTH = 120  # the plain table's line limit (without --wide): the last error is cut to fit
MIN_ERROR_WIDTH = 12  # narrower than this, the last-error column is not worth showing
ERROR_FIRST_WIDTH = 30  # the last error gets this much room before the absolute times are added
MIN_STRIP = 3  # the recent strip shrinks (keeping the newest runs) down to this before it is dropped


# --- cell text -------------------------------------------------------------------------------------


def _span(seconds: float) -> str:
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def relative(moment: datetime | None, now: datetime) -> str:
    """ "in 42m" for the future, "3m ago" for the past, "-" for never."""
    if moment is None:
        return "-"
    delta = (moment - now).total_seconds()
    return f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} ago"


def took(value: object) -> str:
    """A run's duration, short: 0.04s, 12s, 1m12s, 2h05m."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    if value < 10:
        return f"{value:.2f}s"
    s = int(value)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _duration(value: object) -> str:
    return f"{value:.2f}s" if isinstance(value, (int, float)) else "-"


def _iso(moment: datetime | None, now: datetime, *, seconds: bool) -> str:
    if moment is None:
        return "-"
    text = moment.astimezone(now.tzinfo).isoformat(timespec="seconds" if seconds else "minutes")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _local(moment: datetime | None, now: datetime) -> str:
    return "-" if moment is None else moment.astimezone(now.tzinfo).strftime("%Y-%m-%d %H:%M %Z")


def _last_run(job: JobStatus) -> datetime | None:
    return parse_iso(job.record.last_finished or job.record.last_started)


def state_cell(job: JobStatus) -> str:
    """Health and result in one cell: "ok", "failing x3", "late 2h", "running 72s 45%"."""
    cell = job.health.cell
    p = job.progress
    if p is not None and p.bytes_total:
        cell += f" {100 * p.bytes_done // p.bytes_total}%"
    elif p is not None and p.files_total:
        cell += f" {p.files_done}/{p.files_total}"
    return cell


def state_style(job: JobStatus) -> str:
    if job.health.level >= CRITICAL:
        return "bold red"
    style = HEALTH_STYLE.get(job.health.state, UNKNOWN_STYLE)
    if job.health.level >= WARNING and style in ("green", "cyan"):  # killed, over its limit, clock skew
        return UNKNOWN_STYLE
    return style


def recent(record: JobRecord, limit: int = 10) -> str:
    return " ".join(RUN_MARK.get(str(r.status), "?") for r in record.runs[-limit:]) or "-"


def _strip(record: JobRecord, marks: dict[str, str]) -> str:
    return "".join(marks.get(str(r.status), "?") for r in record.runs[-STRIP_RUNS:]) or "-"


def _error_cell(job: JobStatus) -> str:
    """The last error, only while the last completed run failed (after a success it is history: it
    stays in ``status JOB``)."""
    if last_completed_status(job.record) != "error":
        return "-"
    return _one_line(job.record.last_error_message)


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) if text else "-"


# --- the columns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    tty: Callable[[JobStatus, datetime], str]
    plain: Callable[[JobStatus, datetime, bool], str]
    right: bool = False


COLUMNS = (
    Column("job", "job", lambda j, n: j.spec.command, lambda j, n, w: j.spec.command),
    Column("schedule", "schedule", lambda j, n: j.schedule, lambda j, n, w: j.schedule),
    Column(
        "next",
        "next",
        lambda j, n: relative(j.next_run, n),
        lambda j, n, w: _iso(j.next_run, n, seconds=w),
    ),
    Column("next_at", "next at", lambda j, n: _local(j.next_run, n), lambda j, n, w: ""),
    Column(
        "last",
        "last",
        lambda j, n: relative(_last_run(j), n),
        lambda j, n, w: _iso(_last_run(j), n, seconds=w),
    ),
    Column("last_at", "last at", lambda j, n: _local(_last_run(j), n), lambda j, n, w: ""),
    Column("state", "state", lambda j, n: state_cell(j), lambda j, n, w: state_cell(j)),
    Column(
        "took",
        "took",
        lambda j, n: took(j.record.last_duration_s),
        lambda j, n, w: took(j.record.last_duration_s),
        right=True,
    ),
    Column(
        "runs",
        "runs",
        lambda j, n: f"{j.record.success_count}/{j.record.error_count}/{j.record.skipped_count}",
        lambda j, n, w: f"{j.record.success_count}/{j.record.error_count}/{j.record.skipped_count}",
        right=True,
    ),
    Column(
        "recent",
        "recent",
        lambda j, n: _strip(j.record, STRIP_TTY),
        lambda j, n, w: _strip(j.record, STRIP_PLAIN),
    ),
    Column("error", "last error", lambda j, n: _error_cell(j), lambda j, n, w: _error_cell(j)),
)
BY_KEY = {c.key: c for c in COLUMNS}
BASE = ("job", "schedule", "next", "last", "state", "took", "runs", "recent")
DROP_ORDER = ("recent", "runs", "took", "schedule", "last", "next")  # first dropped when too narrow
EXTRAS = ("last_at", "next_at")  # gained, in this order, when there is room


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def choose_columns(cells: dict[str, list[str]], width: int) -> dict[str, int]:
    """Which columns fit ``width`` (one space between columns) and how wide each is, in table order."""
    natural = {k: max([_cell_len(BY_KEY[k].header)] + [_cell_len(c) for c in cells[k]]) for k in cells}
    keys = list(BASE)

    def used(ks: list[str]) -> int:
        return sum(natural[k] for k in ks) + len(ks) - 1

    over = used(keys) - width
    if over > 0:  # the newest runs matter most: shorten the strip before dropping anything
        natural["recent"] = max(MIN_STRIP, natural["recent"] - over)
    for key in DROP_ORDER:
        if used(keys) <= width:
            break
        keys.remove(key)
    has_error = any(c != "-" for c in cells["error"])
    reserve = ERROR_FIRST_WIDTH + 1 if has_error else 0
    for key in EXTRAS:
        if width - used([*keys, key]) >= reserve:
            keys.append(key)
    widths = {k: natural[k] for k in keys}
    room = width - used(keys) - 1
    if has_error and room >= MIN_ERROR_WIDTH:
        widths["error"] = min(room, natural["error"])
    return {c.key: widths[c.key] for c in COLUMNS if c.key in widths}


def table(report: StatusReport, now: datetime, width: int) -> Table:
    """The status table for a terminal ``width`` columns wide: one line per job, no cell wrapped."""
    from rich.table import Table
    from rich.text import Text

    cells = {c.key: [c.tty(job, now) for job in report.jobs] for c in COLUMNS}
    widths = choose_columns(cells, width)
    w_recent = widths.get("recent", 0)
    out = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, header_style="bold", expand=False)
    for key, w in widths.items():
        col = BY_KEY[key]
        out.add_column(
            col.header, width=w, no_wrap=True, overflow="ellipsis", justify="right" if col.right else "left"
        )
    for i, job in enumerate(report.jobs):
        row: list[str | Text] = []
        for key in widths:
            if key == "state":
                row.append(Text(cells[key][i], style=state_style(job)))
            elif key == "recent":
                row.append(_strip_text(job.record, w_recent))
            elif key == "error":
                row.append(Text(cells[key][i], style="red" if cells[key][i] != "-" else ""))
            else:
                row.append(cells[key][i])
        out.add_row(*row)
    return out


def _strip_text(record: JobRecord, limit: int) -> Text:
    from rich.text import Text

    strip = Text()
    for run in record.runs[-limit:]:
        status = str(run.status)
        strip.append(STRIP_TTY.get(status, "?"), style=RUN_STYLE.get(status, UNKNOWN_STYLE))
    return strip if strip.plain else Text("-")


def print_table(report: StatusReport, console: Console, now: datetime) -> None:
    """Rich table for a terminal, coloured by state, fitted to the console's width."""
    console.print(table(report, now, console.width))


def watch_frame(report: StatusReport, now: datetime, width: int, every_s: float) -> RenderableType:
    """One frame of ``status --watch``: a dim heading line and the table."""
    from rich.console import Group
    from rich.text import Text

    heading = Text(f"{now:%Y-%m-%d %H:%M:%S %Z}  every {every_s:g}s, Ctrl-C to stop", style="dim")
    return Group(heading, table(report, now, width))


# --- plain text ------------------------------------------------------------------------------------


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def plain_table(report: StatusReport, now: datetime, *, wide: bool = False) -> str:
    """The same columns as plain, aligned text (cron mail, pipes, logs): absolute ISO times, one line
    per job, at most PLAIN_WIDTH characters with the last error cut (``wide``: nothing cut)."""
    keys = [k for k in (*BASE, "error")]
    rows = [[BY_KEY[k].header for k in keys]]
    rows += [[BY_KEY[k].plain(job, now, wide) for k in keys] for job in report.jobs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(keys))]
    if not wide:
        over = sum(widths[:-1]) + len(keys) - 1 + MIN_ERROR_WIDTH - PLAIN_WIDTH
        strip = keys.index("recent")
        if over > 0:  # long states or zone offsets: the strip keeps its newest runs first
            keep = max(MIN_STRIP, widths[strip] - over)
            for row in rows[1:]:
                row[strip] = row[strip][-keep:]
            widths[strip] = max(len(row[strip]) for row in rows)
        room = PLAIN_WIDTH - sum(widths[:-1]) - (len(keys) - 1)
        for row in rows[1:]:
            row[-1] = _cut(row[-1], max(1, room))
    lines = [" ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    if not wide:  # whatever else is long (a huge counter, a state with every note), the promise holds
        lines = [_cut(line, PLAIN_WIDTH) for line in lines]
    return "\n".join(lines) + "\n"


# --- one job ---------------------------------------------------------------------------------------


def _iso_and_relative(moment: datetime | None, now: datetime) -> str:
    return f"{moment.astimezone(now.tzinfo).isoformat()} ({relative(moment, now)})" if moment else "-"


def _health_text(job: JobStatus) -> str:
    """ "late (due 13:55 UTC, 3m late, grace 1m)"; a bare "ok" when the detail says no more."""
    h = job.health
    return h.state if h.detail in ("", h.state) else f"{h.state} ({h.detail})"


def detail_rows(job: JobStatus, now: datetime) -> list[tuple[str, str, str]]:
    """``status JOB``'s facts as (label, text, style): the one list both the plain text and the terminal
    view draw, so neither can lack a row the other has. Times keep their zone (ISO offsets)."""
    r = job.record
    counts = f"success {r.success_count}, error {r.error_count}, skipped {r.skipped_count}"
    if r.interrupted_count:
        counts += f", interrupted {r.interrupted_count}"
    limits = f"grace {job.grace_s}s, time limit {job.timeout_s or 'none'}{'s' if job.timeout_s else ''}"
    rows = [
        ("schedule", f"{job.schedule} ({job.schedule_text}), {limits}", ""),
        ("next run", _iso_and_relative(job.next_run, now), ""),
        ("deadline", _iso_and_relative(job.deadline, now), ""),
        ("health", _health_text(job), state_style(job)),
    ]
    if job.progress is not None:
        rows.append(("progress", _progress_text(job), ""))
    if r.running is not None and r.running.host and job.health.state == "running":
        rows.append(("running on", f"{r.running.host} (pid {r.running.pid})", ""))
    rows += [
        ("last status", str(r.last_status or "-"), RUN_STYLE.get(str(r.last_status), "")),
        ("last started", r.last_started or "-", ""),
        ("last finished", r.last_finished or "-", ""),
        ("last success", r.last_success or "-", ""),
        *([("clock", note, "yellow")] if (note := wall_clock_note(r)) else []),
        ("last error", r.last_error or "-", ""),
        ("error message", r.last_error_message or "-", "red" if r.last_error_message else ""),
        ("duration", _duration(r.last_duration_s), ""),
        ("summary", r.last_summary or "-", ""),
        ("warning", r.last_warning or "-", "yellow" if r.last_warning else ""),
        ("pending change", pending_text(job), "yellow" if r.pending_change else ""),
        ("counts", counts, ""),
    ]
    return rows


def job_detail(job: JobStatus, now: datetime) -> str:
    """Everything about one job, with its last RECENT_RUNS runs."""
    runs = recent_runs_lines(job.record)
    lines = [
        f"{job.spec.id} ({job.spec.command}): {job.spec.name}",
        *(f"  {label:<15} {text}" for label, text, _style in detail_rows(job, now)),
        f"  recent runs ({len(runs)}, oldest first):",
        *runs,
    ]
    return "\n".join(lines) + "\n"


def _progress_text(job: JobStatus) -> str:
    p = job.progress
    if p is None:
        return "-"
    return f"{p.files_done}/{p.files_total} files, {p.bytes_done:,}/{p.bytes_total:,} bytes"


def pending_text(job: JobStatus) -> str:
    """The change whose on_change hooks are still owed: since when, how many tries, the last error,
    which hooks."""
    p = job.record.pending_change
    if p is None:
        return "-"
    tries = f", {p.attempts} attempt{'s' if p.attempts != 1 else ''}" if p.attempts else ""
    error = f", last error: {p.last_error}" if p.last_error else ""
    owed = f"; owed by: {', '.join(job.hooks_owed)}" if job.hooks_owed else ""
    return f"hooks owed since {p.first_seen or '?'}{tries}{error}{owed}"


def recent_runs_lines(record: JobRecord, limit: int = RECENT_RUNS) -> list[str]:
    """One line per stored run, the last ``limit`` only."""
    return [
        f"    {run.started}  {RUN_MARK.get(str(run.status), '?'):<4}  "
        f"{_duration(run.duration_s):>8}  {f'[{run.host}] ' if run.host else ''}{run.summary or ''}"
        for run in record.runs[-limit:]
    ]


def detail_view(job: JobStatus, now: datetime) -> RenderableType:
    """``status JOB`` on a terminal: the facts as a key/value block, the recent runs as a small table."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    r = job.record
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("job", f"{job.spec.id} ({job.spec.command}): {job.spec.name}")
    for label, text, style in detail_rows(job, now):
        facts.add_row(label, Text(text, style=style))
    runs = Table(title=f"recent runs ({len(r.runs[-RECENT_RUNS:])}, oldest first)", title_justify="left")
    runs.add_column("started", no_wrap=True)
    runs.add_column("result", no_wrap=True)
    runs.add_column("took", justify="right", no_wrap=True)
    hosts = any(run.host for run in r.runs[-RECENT_RUNS:])
    if hosts:  # several machines share the state (a cluster): say which one ran each run
        runs.add_column("host", no_wrap=True)
    runs.add_column("summary", overflow="fold")
    import statistics

    durations = [d for d in (run.duration_s for run in r.runs) if isinstance(d, (int, float))]
    slow = 2 * statistics.median(durations) if durations else float("inf")
    for run in r.runs[-RECENT_RUNS:]:
        status = str(run.status)
        d = run.duration_s
        d_style = "yellow" if isinstance(d, (int, float)) and d > slow else "dim"
        cells: list[str | Text] = [
            str(run.started),
            Text(RUN_MARK.get(status, "?"), style=RUN_STYLE.get(status, UNKNOWN_STYLE)),
            Text(took(d), style=d_style),
        ]
        if hosts:
            cells.append(run.host or "-")
        runs.add_row(*cells, run.summary or "")
    return Group(facts, Text(), runs)
