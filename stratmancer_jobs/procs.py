"""Whether a recorded process still lives (running markers, temp files left by a killed writer)."""

from __future__ import annotations

import os


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
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
