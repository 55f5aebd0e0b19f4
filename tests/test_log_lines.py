"""A log a person can read: one line per run, warnings when they appear or change, a run id on
every line, the log file opened per line (logrotate), and on a terminal the summary printed once."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.conftest import REPO, run_proc, write_card
from tests.ddragon_server import closed_port_url

LOG = "logs/stratmancer-jobs.log"
RUN_ID = re.compile(r"^\S+ (INFO|WARNING|ERROR|DEBUG) +refresh_model_registry \[([0-9a-f]{6})\]: ")


def _sample_models(root: Path) -> None:
    """The shipped model cards: the `high` model has no calibrator, a warning on every run."""
    shutil.rmtree(root / "ml_pipeline/models")
    shutil.copytree(REPO / "ml_pipeline/models", root / "ml_pipeline/models")


def _lines(root: Path) -> list[str]:
    return (root / LOG).read_text(encoding="utf-8").splitlines()


def _registry(root: Path, *args: str) -> None:
    done = run_proc(root, "--log-file", LOG, "refresh-registry", *args)
    assert done.stdout == "" and done.stderr == "", done  # under cron nothing else is printed


def test_unchanged_run_writes_exactly_one_line_and_a_warning_only_when_it_changes(root: Path) -> None:
    """First run: its warnings and one success line; an unchanged run: exactly one line; a new
    warning is logged once; every line has the run's id, one id per run; status still has the warning."""
    _sample_models(root)
    _registry(root)
    first = _lines(root)
    assert sum("WARNING" in line for line in first) >= 1
    assert [line for line in first if " INFO " in line and "finished in" in line] == [first[-1]]
    assert len({RUN_ID.match(line).group(2) for line in first}) == 1  # type: ignore[union-attr]

    _registry(root)
    second = _lines(root)[len(first) :]
    assert len(second) == 1, second
    assert RUN_ID.match(second[0]) and " INFO " in second[0] and "finished in" in second[0]
    assert RUN_ID.match(second[0]).group(2) != RUN_ID.match(first[0]).group(2)  # type: ignore[union-attr]
    state = json.loads((root / "state/jobs_state.json").read_text())
    assert state["jobs"]["refresh_model_registry"]["last_warning"]  # the warning stays in status

    (root / "ml_pipeline/models/trained/draft_mid_xgb_20251101_164237.pkl").write_bytes(b"not a pickle")
    _registry(root)
    third = _lines(root)[len(first) + 1 :]
    assert any("WARNING" in line and "draft_mid_xgb_20251101_164237.pkl" in line for line in third), third
    _registry(root)
    assert len(_lines(root)) == len(first) + 1 + len(third) + 1


def test_started_line_only_with_verbose(root: Path) -> None:
    """`started` is a debug line: absent by default, present with -v."""
    write_card(root, "mid", "20251101_164237")
    _registry(root)
    assert not any("started" in line for line in _lines(root))
    done = run_proc(root, "-v", "--log-file", LOG, "refresh-registry")
    assert done.returncode == 0
    assert any(" DEBUG " in line and "started" in line for line in _lines(root))


def test_failed_hook_is_one_line(root: Path) -> None:
    """A run whose hook fails logs it once, in its one ERROR line; the retry run (nothing else new)
    writes exactly that one line."""
    write_card(root, "mid", "20251101_164237")
    (root / "config/jobs.toml").write_text(
        "[patch]\nmax_attempts = 1\ninstant_retries = true\n"
        f'[[jobs.refresh_model_registry.on_change]]\nurl = "{closed_port_url()}/reload"\n'
    )
    for _ in range(2):
        done = run_proc(root, "--log-file", LOG, "refresh-registry")
        assert done.returncode == 1
    lines = _lines(root)
    assert sum("on_change[0]" in line for line in lines) == 2, lines  # once per run
    retry = [line for line in lines if RUN_ID.match(line).group(2) == RUN_ID.match(lines[-1]).group(2)]  # type: ignore[union-attr]
    assert len(retry) == 1 and " ERROR " in retry[0] and "on_change[0]" in retry[0], retry


def test_log_file_is_opened_per_line_so_logrotate_can_move_it_mid_run(root: Path) -> None:
    """A hook renaming the log during the run (logrotate's create) sends the run's last line to the
    new file; after copytruncate the next line starts the emptied file (no hole of NULs)."""
    write_card(root, "mid", "20251101_164237")
    (root / "logs").mkdir()
    (root / LOG).write_text("old line\n")
    mover = [sys.executable, "-c", "import os; os.rename('logs/stratmancer-jobs.log', 'logs/rotated.log')"]
    (root / "config/jobs.toml").write_text(
        f"[[jobs.refresh_model_registry.on_change]]\ncommand = {json.dumps(mover)}\n"
    )
    done = run_proc(root, "--log-file", LOG, "refresh-registry")
    assert done.returncode == 0, done.stderr
    rotated = (root / "logs/rotated.log").read_text()
    assert rotated.startswith("old line\n") and "finished in" not in rotated  # the lines before the hook
    assert len(_lines(root)) == 1 and "finished in" in _lines(root)[0]  # the line after it

    os.truncate(root / LOG, 0)  # copytruncate
    (root / "config/jobs.toml").write_text("")
    _registry(root)
    data = (root / LOG).read_bytes()
    assert b"\0" not in data and data.count(b"\n") == 1


def _run_in_pty(root: Path, *args: str) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal, as a person at a terminal would."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a 160-column terminal
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env.update(PYTHONPATH=str(REPO), COLUMNS="120", TERM="dumb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), *args],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(primary)
    return proc.returncode, out.decode("utf-8", "replace")


def test_terminal_shows_the_summary_once_with_one_duration(root: Path) -> None:
    """On a terminal (stdout and stderr a pty) a success prints its summary once, with one duration."""
    write_card(root, "mid", "20251101_164237")
    code, text = _run_in_pty(root, "refresh-registry")
    assert code == 0, text
    assert text.count("active") >= 1 and len(re.findall(r"\d+\.\d\d ?s\b", text)) == 1, text
    assert "finished in" not in text  # the log's success line is not shown beside the summary


def test_terminal_status_table_is_headed_by_the_root_and_the_zone(root: Path) -> None:
    """The status table on a terminal starts with a line naming the root and the zone."""
    (root / "config/jobs.toml").write_text('timezone = "Europe/Paris"\n')
    code, text = _run_in_pty(root, "status")
    assert code == 0, text
    first = text.strip().splitlines()[0]
    assert first.startswith("stratmancer-jobs status: ") and first.endswith("/deploy (Europe/Paris)"), text
    assert len(first) <= 80 or str(root) in first  # a long root is cut at its start to fit
