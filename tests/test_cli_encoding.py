"""Output under a Latin-1 terminal (issue 9, item 9): characters it lacks degrade to '?', never crash.

Each test runs the CLI as a real subprocess whose stdout and stderr really are Latin-1 text streams
(``PYTHONIOENCODING=latin-1``, what Python picks under ``LANG=en_US.ISO-8859-1``), and reads the
raw bytes back, so an encoding failure would show as a traceback and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

JOB_ID = "refresh_model_registry"
CUT = "x" * 60 + "…"  # what state.bounded() leaves of a long message: the tool's own ellipsis


def _cli(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("STRATMANCER_", "PYTHONIOENCODING"))}
    full.update(PYTHONPATH=str(REPO), NO_COLOR="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), *args],
        capture_output=True,
        env=full,
        timeout=60,
        check=False,
    )


def _failed_state(root: Path) -> None:
    """A state whose last error message ends in the tool's own '…', as after a long error was cut."""
    record = {
        "success_count": 0,
        "error_count": 1,
        "skipped_count": 0,
        "last_status": "error",
        "last_started": "2026-11-29T10:00:00+00:00",
        "last_finished": "2026-11-29T10:00:01+00:00",
        "last_error": "2026-11-29T10:00:01+00:00",
        "last_error_message": CUT,
        "last_duration_s": 1.0,
        "consecutive_failures": 1,
        "runs": [
            {"started": "2026-11-29T10:00:00+00:00", "duration_s": 1.0, "status": "error", "summary": CUT}
        ],
    }
    (root / "state").mkdir()
    (root / "state/jobs_state.json").write_text(
        json.dumps({"schema_version": 1, "jobs": {JOB_ID: record}}), encoding="utf-8"
    )


@pytest.mark.parametrize("args", [("status",), ("status", JOB_ID), ("status", "refresh-registry")])
def test_status_on_a_latin1_stdout_replaces_the_ellipsis(root: Path, args: tuple[str, ...]) -> None:
    """`status` and `status JOB` print the cut message with '?' for '…' on a Latin-1 stdout, exit 0."""
    _failed_state(root)
    done = _cli(root, *args, env={"PYTHONIOENCODING": "latin-1"})
    assert b"Traceback" not in done.stderr and b"UnicodeEncodeError" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert b"x" * 20 in done.stdout  # the message is there ...
    assert "…".encode() not in done.stdout and b"x?" in done.stdout  # ... with the ellipsis replaced


def _latin1_locale(tmp_path: Path) -> dict[str, str]:
    """LANG/LC_ALL for en_US.ISO-8859-1, compiled with localedef into ``tmp_path`` (LOCPATH) when the
    machine does not have it installed, so the test runs the same everywhere."""
    env = {"LANG": "en_US.ISO-8859-1", "LC_ALL": "en_US.ISO-8859-1"}
    locpath = tmp_path / "locales"
    locpath.mkdir()
    made = subprocess.run(
        ["localedef", "--no-archive", "-i", "en_US", "-f", "ISO-8859-1", str(locpath / "en_US.ISO-8859-1")],
        capture_output=True,
        check=False,
    )
    if made.returncode in (0, 1) and (locpath / "en_US.ISO-8859-1").is_dir():  # 1: warnings only
        env["LOCPATH"] = str(locpath)
    return env


def test_status_under_a_real_latin1_locale(root: Path, tmp_path: Path) -> None:
    """With LANG/LC_ALL=en_US.ISO-8859-1 (a real locale) `status JOB` degrades the same way."""
    env = _latin1_locale(tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.stdout.encoding)"],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"}, **env},
        check=False,
    )
    if probe.stdout.strip().lower().replace("-", "").replace("_", "") not in ("iso88591", "latin1"):
        pytest.skip(f"locale en_US.ISO-8859-1 not installed (stdout encoding {probe.stdout.strip()})")
    _failed_state(root)
    done = _cli(root, "status", JOB_ID, env=env)
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr and b"x?" in done.stdout


@pytest.mark.parametrize("encoding", ["latin-1", "latin-1:strict"])
@pytest.mark.parametrize("log_format", ["human", "json"])
def test_log_lines_on_a_latin1_stderr_degrade(tmp_path: Path, log_format: str, encoding: str) -> None:
    """A log line naming a path Latin-1 cannot encode is written escaped, with no logging traceback."""
    # CPython keeps stderr on errors="backslashreplace" even when PYTHONIOENCODING asks for strict,
    # and the CLI leaves that (more informative than '?') in place: a guard, it did not fail before.
    degraded = b"\\u0434\\u0435"
    root = tmp_path / "дерево…"
    for sub in ("state", "ml_pipeline/models/modelcards", "ml_pipeline/models/trained"):
        (root / sub).mkdir(parents=True)
    (root / "state/jobs_state.json").write_text("{not json", encoding="utf-8")  # quarantined and logged
    done = _cli(root, "--log-format", log_format, "refresh-registry", env={"PYTHONIOENCODING": encoding})
    assert b"Traceback" not in done.stderr and b"Logging error" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    recovered = [line for line in done.stderr.splitlines() if b"is not valid JSON" in line]
    assert len(recovered) == 1, done.stderr
    assert degraded in recovered[0]  # the Cyrillic name, degraded
    assert "дерево".encode() not in done.stderr
    if log_format == "json":
        assert json.loads(recovered[0])["event"] == "state_recovered"  # still one valid object per line
    stored = json.loads((root / "state/jobs_state.json").read_text(encoding="utf-8"))
    assert stored["jobs"][JOB_ID]["last_status"] == "success"
    assert "дерево" in stored["recovered_from"]["path"]  # only the terminal output degrades


def test_strict_latin1_stdout_status_degrades(root: Path) -> None:
    """With PYTHONIOENCODING=latin-1:strict, `status JOB` still prints, with '?' for '…'."""
    _failed_state(root)
    done = _cli(root, "status", JOB_ID, env={"PYTHONIOENCODING": "latin-1:strict"})
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr and b"x?" in done.stdout
