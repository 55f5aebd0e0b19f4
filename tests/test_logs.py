"""Log lines: on stderr as it is when they are written, so a progress bar can keep them above itself."""

from __future__ import annotations

import io
import sys

import pytest

from stratmancer_jobs.jobs import Progress
from stratmancer_jobs.logs import setup_logging
from stratmancer_jobs.progressbar import progress_sink


def test_log_lines_follow_a_redirected_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stderr replaced after set-up (as rich's progress bar does while drawing) receives the lines."""
    log = setup_logging(verbose=False, quiet=False, fmt="human", secrets=())
    redirected = io.StringIO()
    monkeypatch.setattr(sys, "stderr", redirected)
    log.warning("tier GOLD kept its last entry")
    assert "tier GOLD kept its last entry" in redirected.getvalue()


def test_log_line_during_a_progress_bar_is_printed_above_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the bar draws on a terminal-like stderr, a log line goes through rich's redirect, whole."""
    log = setup_logging(verbose=False, quiet=False, fmt="human", secrets=())
    screen = io.StringIO()
    screen.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", screen)
    with progress_sink(enabled=True) as sink:
        assert sink is not None
        sink(Progress(0, 2, 0, 100))
        assert sys.stderr is not screen  # rich redirects stderr while the bar is live
        log.warning("matches_GOLD.json: truncated JSON")
        sink(Progress(2, 2, 100, 100))
    assert sys.stderr is screen
    assert "matches_GOLD.json: truncated JSON" in screen.getvalue()
