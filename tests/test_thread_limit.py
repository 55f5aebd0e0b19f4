"""A thread refused by a resource limit (`ulimit -v`) is one line naming the limit, not a traceback."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def _tight_limits() -> None:
    """In the child: one processor (no forked worker), thread stacks of 4 GB inside a 1.5 GB address
    space, so every thread start is refused while the rest of the run fits."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    resource.setrlimit(resource.RLIMIT_STACK, (4 * 1024**3, resource.getrlimit(resource.RLIMIT_STACK)[1]))
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 1024**2, resource.getrlimit(resource.RLIMIT_AS)[1]))


def test_a_refused_thread_is_one_line_naming_the_limit(root: Path) -> None:
    """refresh-history under `ulimit -v` with big thread stacks: exit 1, one error line naming
    `ulimit -v` and `ulimit -s`, no traceback; the failure is recorded in the state."""
    shutil.copytree(REPO / "data" / "processed", root / "data" / "processed", dirs_exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), "refresh-history"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        preexec_fn=_tight_limits,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "RuntimeError" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "(ulimit -v) is 1572864 KiB" in errors[0], done.stderr
    assert "(ulimit -s)" in errors[0]
    state = (root / "state" / "jobs_state.json").read_text()
    assert "cannot start a thread" in state
