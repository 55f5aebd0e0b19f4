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


def thread_start_refused(exc: BaseException) -> str | None:
    """One line for a thread that could not be started (``RuntimeError: can't start new thread``),
    naming the limit that refused it; None for any other exception.

    Under ``ulimit -v`` every thread reserves its stack (``ulimit -s``) out of the address space, so a
    tight limit refuses the thread while the rest of the run still fits: a limit to raise, not a bug.
    """
    if not (isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)):
        return None
    import resource

    def kib(value: int) -> str:
        return "unlimited" if value == resource.RLIM_INFINITY else f"{value // 1024} KiB"

    space = resource.getrlimit(resource.RLIMIT_AS)[0]
    stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
    if space != resource.RLIM_INFINITY:
        return (
            f"cannot start a thread: the address-space limit (ulimit -v) is {kib(space)} and each thread "
            f"reserves a stack of {kib(stack)} (ulimit -s); raise the first or lower the second"
        )
    return "cannot start a thread: out of memory or a process/thread limit (ulimit -u, cgroup pids.max)"
