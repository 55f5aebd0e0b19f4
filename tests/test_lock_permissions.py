"""A job lock that cannot be opened (issue 9, item 7): one clear line, exit 1, the failure recorded.

Two real ways to make the open fail, both through a real CLI subprocess:

* a lock file owned by another user, mode 0644, opened by a process without the right to override
  file permissions. Tests run as root, and root ignores file modes (CAP_DAC_OVERRIDE), so the CLI is
  started with ``setpriv --bounding-set -dac_override``: still uid 0 (so it can read the interpreter
  under /root through CAP_DAC_READ_SEARCH and write the root-owned state directory), but opening
  ``nobody``'s 0644 lock file for writing fails with a genuine EACCES, exactly like a user's cron job
  facing the root-owned lock file left by one earlier ``sudo`` run. When not root, the test makes the
  lock file unwritable instead (a non-root process cannot override modes at all);
* a directory where the lock file should be (EISDIR), which fails for every user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

JOB_ID = "refresh_model_registry"


def _state(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "state" / "jobs_state.json").read_text(encoding="utf-8"))
    return data


def _cli(root: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "stratmancer_jobs", "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _unprivileged_prefix() -> tuple[str, ...]:
    """Command prefix that makes file modes bind even for root; empty when not root."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be made to bind")
    probe = subprocess.run(
        [setpriv, "--bounding-set", "-dac_override", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop CAP_DAC_OVERRIDE here: {probe.stderr!r}")
    return (setpriv, "--bounding-set", "-dac_override")


def _foreign_lock(root: Path) -> Path:
    """A lock file this test's CLI run may not open for writing."""
    lock = root / "state" / "locks" / f"{JOB_ID}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_bytes(b"")
    if os.geteuid() == 0:
        os.chown(lock, 65534, 65534)  # nobody: another user, as after a `sudo -u` run
    lock.chmod(0o644 if os.geteuid() == 0 else 0o444)
    return lock


def test_lock_file_owned_by_another_user_is_one_line_exit_1_and_recorded(root: Path) -> None:
    """A foreign 0644 lock file: one line naming it and the fix, exit 1, a failure in the state."""
    prefix = _unprivileged_prefix()
    lock = _foreign_lock(root)
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", f"open({str(lock)!r}, 'r+b')"], capture_output=True, check=False
    )
    assert probe.returncode != 0 and b"PermissionError" in probe.stderr  # the setup really bites

    done = _cli(root, "refresh-registry", prefix=prefix)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr
    assert str(lock) in errors[0]
    assert "chown it to the user running the jobs or delete it" in errors[0]
    record = _state(root)["jobs"][JOB_ID]
    assert record["last_status"] == "error"
    assert record["error_count"] == 1 and record["success_count"] == 0
    assert str(lock) in record["last_error_message"]
    assert record.get("running") is None

    status = _cli(root, "status", "--check")
    assert status.returncode == 2, status.stdout  # failing is critical, not "ok" until late
    assert "Traceback" not in status.stderr


def test_directory_in_place_of_the_lock_file_is_one_line_exit_1_and_recorded(root: Path) -> None:
    """A directory at state/locks/JOB.lock: one line naming it and the fix, exit 1, recorded as a failure."""
    lock = root / "state" / "locks" / f"{JOB_ID}.lock"
    lock.mkdir(parents=True)

    done = _cli(root, "refresh-registry")

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr
    assert str(lock) in errors[0] and "is a directory; delete it" in errors[0]
    record = _state(root)["jobs"][JOB_ID]
    assert record["last_status"] == "error" and record["error_count"] == 1
    assert "is a directory" in record["last_error_message"]
    assert lock.is_dir()  # reported, never removed behind the operator's back


def test_lock_failure_with_an_unwritable_state_still_exits_1_without_traceback(root: Path) -> None:
    """With the state file unusable too (a directory), the lock failure is still one line and exit 1."""
    (root / "state" / "locks" / f"{JOB_ID}.lock").mkdir(parents=True)
    (root / "state" / "jobs_state.json").mkdir()

    done = _cli(root, "refresh-registry")

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "is a directory; delete it" in done.stderr
    assert "could not record the failure" in done.stderr


def test_lock_error_other_than_permission_suggests_no_chown(root: Path) -> None:
    """An open failure that is not about ownership (read-only file system) names the file but not chown."""
    import errno

    from stratmancer_jobs.config import load_settings
    from stratmancer_jobs.jobtable import find_job
    from stratmancer_jobs.runner import _lock_failure_message

    settings = load_settings(root, {"TZ": "UTC"})
    exc = OSError(errno.EROFS, os.strerror(errno.EROFS))
    message = _lock_failure_message(find_job(JOB_ID), settings, exc)
    assert message == f"cannot open job lock {root}/state/locks/{JOB_ID}.lock: {os.strerror(errno.EROFS)}"
