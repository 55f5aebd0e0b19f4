"""Whether a recorded process still lives (running markers, temp files left by a killed writer)."""

from __future__ import annotations

import os
from typing import Protocol

STARTTIME_FIELD = 22  # /proc/<pid>/stat: starttime, in clock ticks since boot (proc(5))


def pid_alive(pid: object) -> bool:
    """True when ``pid`` names a live, non-zombie process on this machine (another user's counts)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:  # larger than a C pid_t: no such process
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def process_start_ticks(pid: int) -> int | None:
    """The process's start time (field 22 of ``/proc/<pid>/stat``); None without /proc or such a pid.

    A pid is reused once its process is gone; the pair (pid, start time) names one process for good.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except (OSError, ValueError):
        return None
    # the command name (field 2) is in parentheses and may hold spaces or ")": split after the last ")"
    fields = data.rsplit(b")", 1)[-1].split()
    try:
        return int(fields[STARTTIME_FIELD - 3])
    except (IndexError, ValueError):
        return None


class Marker(Protocol):
    """A running marker (``state.RunMarker``): the pid and, where /proc exists, its start time."""

    @property
    def pid(self) -> int: ...

    @property
    def pid_starttime(self) -> int | None: ...


def marker_alive(marker: Marker) -> bool:
    """True when a running marker's process is alive and is the process that wrote the marker.

    A marker records ``pid`` and, where /proc exists, ``pid_starttime``: a live pid whose start time
    differs is another process that got the same pid after the run died (the marker is dead).
    """
    pid = marker.pid
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    recorded = marker.pid_starttime
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        actual = process_start_ticks(pid)
        if actual is not None and actual != recorded:
            return False
    return True
