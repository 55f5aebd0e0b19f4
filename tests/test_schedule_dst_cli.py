"""DST's repeated hour through the real CLI: a zone file whose clocks fell back half an hour ago.

The CLI reads the real clock, so the test makes the zone instead of the time: a TZif file (the tz
database's binary format) written here, whose offset drops by an hour 30 minutes before now, chosen
so that the hour that repeats starts at a whole hour of wall time. The CLI finds it through
PYTHONTZPATH, as it finds any zone.
"""

from __future__ import annotations

import os
import struct
import time
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stratmancer_jobs.state import StateStore, mark_finished
from tests.conftest import run_proc

ZONE = "Test/FallBack"


def write_tzif(path: Path, changes: list[tuple[int, int, bool, str]]) -> None:
    """A version 1 TZif file: each change is (UTC epoch seconds, offset seconds, is DST, abbreviation)."""
    names = b""
    types = b""
    for _, offset, dst, abbr in changes:
        types += struct.pack(">lBB", offset, int(dst), len(names))
        names += abbr.encode("ascii") + b"\0"
    counts = struct.pack(">6l", 0, 0, 0, len(changes), len(changes), len(names))
    times = b"".join(struct.pack(">l", when) for when, *_ in changes)
    indices = bytes(range(len(changes)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"TZif" + b"\0" + bytes(15) + counts + times + indices + types + names)


def _fell_back(tz_dir: Path) -> datetime:
    """Write ZONE, whose clocks went back an hour at the returned moment (about 30 minutes ago), from
    daylight time to standard time, and the repeated hour's wall time starts on the hour."""
    back = int(time.time()) // 60 * 60 - 30 * 60
    standard = -4 * 3600 - (back % 3600)  # wall time at `back` (standard) is a whole hour
    write_tzif(
        tz_dir / ZONE,
        [(back - 40 * 86400, standard + 3600, True, "XDT"), (back, standard, False, "XST")],
    )
    return datetime.fromtimestamp(back, UTC)


def test_a_run_missed_in_the_repeated_hour_is_due_and_late(root: Path, tmp_path: Path) -> None:
    """After a success at the first 01:00, the second 01:00 (half an hour ago) is missed: `status`
    names it late and `--if-due` runs the job instead of calling it not due."""
    tz_dir = tmp_path / "zones"
    back = _fell_back(tz_dir)
    first = back - timedelta(hours=1)  # the first occurrence of the repeated wall hour
    (root / "config/jobs.toml").write_text(
        '[jobs.refresh_history_index]\nschedule = "0 * * * *"\ngrace_seconds = 120\n', encoding="utf-8"
    )
    StateStore(root / "state/jobs_state.json").update(
        "refresh_history_index",
        lambda r: mark_finished(
            r,
            ok=True,
            started=first,
            finished=first + timedelta(seconds=5),
            duration_s=5.0,
            summary="ok",
            error=None,
        ),
        first,
    )
    env = {"PYTHONTZPATH": os.pathsep.join([str(tz_dir), *zoneinfo.TZPATH]), "STRATMANCER_TZ": ZONE}
    shown = run_proc(root, "status", "refresh-history", env=env, timeout=60)
    assert "Traceback" not in shown.stderr, shown.stderr
    assert "late" in shown.stdout, shown.stdout
    assert "XST" in shown.stdout  # the missed run is the second 01:00, in standard time
    check = run_proc(root, "status", "--check", env=env, timeout=60)
    assert check.returncode == 1, check.stdout + check.stderr
    due = run_proc(root, "-v", "refresh-history", "--if-due", env=env, timeout=120)  # -v: the start line
    assert "Traceback" not in due.stderr, due.stderr
    assert "not due" not in due.stdout + due.stderr
    assert "started Refresh History Index" in due.stderr, due.stderr
