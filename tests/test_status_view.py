# ruff: noqa: E501
"""What people see of `status`: the table at every width, the plain text, one job, --watch in a pty,
completion, quiet success, and the progress file a running job publishes."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from inline_snapshot import snapshot
from rich.cells import cell_len
from rich.console import Console
from typer.testing import Result

from stratmancer_jobs import progressfile, render, runner
from stratmancer_jobs.config import Settings
from stratmancer_jobs.health import Health
from stratmancer_jobs.jobs import Progress
from stratmancer_jobs.status import read_progress
from tests.conftest import REPO, with_fake_job, write_card
from tests.status_fixtures import LONG_ERROR, NOW, sample_report

Invoke = Callable[..., Result]
COMMANDS = ("refresh-history", "refresh-registry", "refresh-patch", "refresh-news")


def _draw(settings: Settings, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    render.print_table(sample_report(settings), console, NOW)
    return console.export_text()


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_table_fits_the_width_one_line_per_job(settings: Settings, width: int) -> None:
    """At 80, 100, 120 and 200 columns no line is longer than the console, and each job is one line."""
    lines = _draw(settings, width).splitlines()
    assert all(cell_len(line) <= width for line in lines), lines
    assert len(lines) == 1 + len(COMMANDS), lines  # a wrapped cell would add a line
    for line, command in zip(lines[1:], COMMANDS, strict=True):
        assert line.startswith(command + " "), line
    for cell in ("in 42m", "1h ago", "running 72s 45%", "failing x3", "never run", "12/3/0"):
        assert cell in "\n".join(lines)


def test_wider_terminals_gain_the_last_error_then_absolute_times(settings: Settings) -> None:
    """80 columns: no error column; 100: the error cut with an ellipsis; 200: absolute times too."""
    narrow, mid, wide = (_draw(settings, w) for w in (80, 100, 200))
    assert "last error" not in narrow and "last error" in mid and "Data Dragon unre…" in mid
    assert "next at" not in mid and "2026-11-30 03:00" in wide and "last at" in wide
    assert LONG_ERROR not in wide


def test_table_at_80_columns_snapshot(settings: Settings) -> None:
    """The 80-column table, pinned."""
    text = "\n".join(line.rstrip() for line in _draw(settings, 80).splitlines())
    assert text == snapshot("""\
job              schedule     next   last    state            took   runs recent
refresh-history  0 * * * *    in 42m 1h ago  running 72s 45% 4.20s  2/0/0 ●●
refresh-registry */5 * * * *  in 2m  2m ago  ok              0.31s 40/0/1 ○●●●●●
refresh-patch    0 3 * * *    in 12h 11h ago failing x3      1m12s 12/3/0 ●✗✗✗
refresh-news     */15 * * * * in 12m -       never run           -  0/0/0 -\
""")


def test_plain_output_snapshot_and_width(settings: Settings) -> None:
    """Plain text: same columns, ISO times, one line per job, at most 120 characters, the error cut."""
    text = render.plain_table(sample_report(settings), NOW)
    assert all(len(line) <= render.PLAIN_WIDTH for line in text.splitlines())
    assert text == snapshot("""\
job              schedule     next              last              state           took  runs   recent   last error
refresh-history  0 * * * *    2026-11-29T15:00Z 2026-11-29T13:00Z running 72s 45% 4.20s 2/0/0  ++       -
refresh-registry */5 * * * *  2026-11-29T14:20Z 2026-11-29T14:15Z ok              0.31s 40/0/1 ++-+++++ -
refresh-patch    0 3 * * *    2026-11-30T03:00Z 2026-11-29T03:01Z failing x3      1m12s 12/3/0 +xxx     Data Dragon unr…
refresh-news     */15 * * * * 2026-11-29T14:30Z -                 never run       -     0/0/0  -        -
""")


def test_plain_wide_shows_every_column_in_full(settings: Settings) -> None:
    """--wide: the whole error and times to the second, still one line per job."""
    text = render.plain_table(sample_report(settings), NOW, wide=True)
    assert LONG_ERROR.strip() in text and "2026-11-29T03:01:12Z" in text
    assert len(text.splitlines()) == 1 + len(COMMANDS)


def test_unknown_state_is_yellow_and_known_ones_keep_their_colour(settings: Settings) -> None:
    """A state render.py does not know (the coming "warning") is drawn yellow; failing stays red."""
    job = sample_report(settings).jobs[1]
    warned = type(job)(**{**job.__dict__, "health": Health("warning", 1, "model card warnings", "warning")})
    assert render.state_style(warned) == "yellow"
    assert render.state_style(sample_report(settings).jobs[2]) == "bold red"


def test_job_detail_on_a_terminal_is_drawn_with_rich(settings: Settings) -> None:
    """`status JOB` on a TTY: key/value facts with the whole error, and a table of recent runs."""
    console = Console(file=io.StringIO(), width=100, record=True, color_system=None)
    console.print(render.detail_view(sample_report(settings).jobs[2], NOW))
    text = console.export_text()
    assert "At 03:00 every day" in text and "Refresh Patch Metadata" in text
    assert "recent runs (4, oldest first)" in text and "FAIL" in text
    assert "connection refused by ddragon.leagueoflegends.com; connection refused b" in " ".join(text.split())


def test_status_plain_and_wide_through_the_cli(cli: Invoke, root: Path) -> None:
    """Without a TTY `status` prints the plain table (no escape codes); --wide adds nothing cut."""
    write_card(root, "mid", "20251101_164237")
    assert cli("refresh-registry").exit_code == 0
    for args in (("status",), ("status", "--wide")):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert "refresh-registry" in result.stdout and "\x1b[" not in result.stdout
        assert len(result.stdout.splitlines()) == 4


def test_success_is_quiet_without_a_tty(cli: Invoke, root: Path) -> None:
    """Under cron (stdout not a TTY) a successful run prints nothing on stdout; the log line says it."""
    write_card(root, "mid", "20251101_164237")
    result = cli("refresh-registry")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "Model registry refreshed" in result.stderr


def test_progress_file_is_throttled_and_removed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner writes progress at most once a second while the job runs, and removes it at the end."""
    path = settings.layout.job_progress("fake_job")
    seen: list[Progress] = []
    report = progressfile.progress_recorder(path, seen.append)
    for i in range(50):
        report(Progress(i, 50, i, 50))
    assert len(seen) == 50  # the CLI's bar still sees every report
    assert json.loads(path.read_text())["files_done"] == 0  # only the first one was written
    monkeypatch.setattr(progressfile, "PROGRESS_EVERY_S", 0.0)
    report = progressfile.progress_recorder(path, None)
    report(Progress(7, 9, 70, 90))
    spec, fake_settings = with_fake_job(settings, "progressing")
    assert read_progress(fake_settings, spec) == Progress(7, 9, 70, 90)
    import logging

    outcome = runner.run_job(spec, fake_settings, log=logging.getLogger("test"), options={"seconds": 0.4})
    assert outcome.status == "success"
    assert not path.exists()


def test_completion_lists_the_job_names(root: Path) -> None:
    """Bash completion of `status refresh-` offers the three job commands."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env.update(
        PYTHONPATH=str(REPO),
        _STRATMANCER_JOBS_COMPLETE="complete_bash",
        COMP_WORDS="stratmancer-jobs status refresh-",
        COMP_CWORD="2",
    )
    done = subprocess.run(
        [sys.executable, "-m", "stratmancer_jobs"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refresh-history", "refresh-registry", "refresh-patch"]


SLOW_JOB = """
import logging, sys
from pathlib import Path
from dataclasses import replace
from stratmancer_jobs.config import load_settings
from stratmancer_jobs.jobtable import JOBS
from stratmancer_jobs.runner import run_job
settings = load_settings(Path(sys.argv[1]), {"TZ": "UTC"})
spec = replace(JOBS[0], module="tests.fake_jobs:progressing")
run_job(spec, settings, log=logging.getLogger("slow"), options={"seconds": 20})
"""


def _read_for(fd: int, seconds: float, until: Callable[[str], bool]) -> str:
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until(out.decode("utf-8", "replace")):
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out.decode("utf-8", "replace")


def test_watch_in_a_pty_shows_progress_and_exits_0_on_ctrl_c(root: Path) -> None:
    """`status --watch 0.3` in a real pty redraws a running job with changing progress; SIGINT exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env.update(PYTHONPATH=str(REPO), TERM="xterm", COLUMNS="100", LINES="30")
    slow = subprocess.Popen([sys.executable, "-c", SLOW_JOB, str(root)], env=env, cwd=REPO)
    try:
        progress_file = root / "state" / "progress" / "refresh_history_index.json"
        deadline = time.monotonic() + 20
        while not progress_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert progress_file.exists()
        pid, fd = pty.fork()
        if pid == 0:  # the child: the CLI on the pty
            os.execve(
                sys.executable,
                [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), "status", "--watch", "0.3"],
                env,
            )
        import re

        def percents(text: str) -> set[str]:
            return set(re.findall(r"running \d+s (\d+)%", text))

        text = _read_for(fd, 20, lambda t: len(percents(t)) >= 2)
        assert len(percents(text)) >= 2, text[-2000:]
        os.kill(pid, signal.SIGINT)
        _read_for(fd, 2, lambda t: False)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    finally:
        slow.kill()
        slow.wait()


def test_watch_without_a_tty_prints_one_plain_table_per_interval(root: Path) -> None:
    """`status --watch 0.2 | ...` (a log, a pipe): whole plain tables as they come, flushed; SIGINT exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env.update(PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), "status", "--watch", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline().decode() for _ in range(9)]  # two tables: header + 3 jobs, a blank line
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert lines[0].startswith("job ") and lines[4] == "\n" and lines[5] == lines[0]
    assert "\x1b" not in "".join(lines)  # plain text, no cursor movement or colour
