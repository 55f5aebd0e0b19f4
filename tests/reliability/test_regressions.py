"""Focused regression tests for the defects the reliability scenarios found (one per fix)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stratmancer_jobs.atomicio import atomic_write_text

OTHER_GID = 33 if os.geteuid() == 0 else os.getgid()


def test_atomic_replace_keeps_group_and_mode(tmp_path: Path) -> None:
    """A file readable by a web server through its group stays readable after an atomic replace."""
    target = tmp_path / "history_index.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    os.chown(target, -1, OTHER_GID)
    atomic_write_text(target, "new")
    st = target.stat()
    assert target.read_text() == "new"
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, OTHER_GID)
