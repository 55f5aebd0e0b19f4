"""`status --watch` on real terminals (a pty): TERM=dumb redraws as plain text, every exit restores
the cursor."""

from __future__ import annotations

import os
import pty
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_status_view import _read_for

HIDE, SHOW = "\x1b[?25l", "\x1b[?25h"


def _spawn(root: Path, term: str, *args: str) -> tuple[int, int]:
    """The CLI's `status --watch ARGS` on a new pty with TERM=term; (pid, master fd)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env.update(PYTHONPATH=str(REPO), TERM=term, COLUMNS="100", LINES="30")
    env.pop("NO_COLOR", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the pty
        argv = [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), "status", "--watch", *args]
        os.execve(sys.executable, argv, env)
    return pid, fd


def _wait(pid: int, fd: int, seconds: float = 10) -> tuple[int, str]:
    """Read the rest of the output until the child exits (bounded); its exit code and that output."""
    deadline = time.monotonic() + seconds
    text = ""
    while time.monotonic() < deadline:
        text += _read_for(fd, 0.3, lambda t: False)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            text += _read_for(fd, 0.3, lambda t: False)
            os.close(fd)
            return os.waitstatus_to_exitcode(status), text
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(fd)
    raise AssertionError(f"status --watch did not exit within {seconds}s: {text[-500:]}")


def test_watch_with_term_dumb_prints_a_plain_table_every_interval(root: Path) -> None:
    """TERM=dumb (no cursor control) on a terminal: a fresh plain table every interval, no escape codes."""
    pid, fd = _spawn(root, "dumb", "0.2")
    text = _read_for(fd, 15, lambda t: t.count("job ") >= 3)
    os.kill(pid, signal.SIGINT)
    code, rest = _wait(pid, fd)
    assert text.count("job ") >= 3, text
    assert "\x1b" not in text + rest
    assert code == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_watch_restores_the_cursor_on_every_stop(root: Path, signum: int) -> None:
    """SIGTERM, SIGHUP and Ctrl-C end `status --watch` on a terminal with exit 0 and the cursor shown."""
    pid, fd = _spawn(root, "xterm", "0.2")
    text = _read_for(fd, 15, lambda t: HIDE in t and t.count("refresh-patch") >= 2)
    assert HIDE in text, text
    os.kill(pid, signum)
    code, rest = _wait(pid, fd)
    whole = text + rest
    assert whole.rfind(SHOW) > whole.rfind(HIDE), whole[-300:]
    assert code == 0
