"""A command change hook standing in for the app: it records what it was told, and can stop its runner.

Run as ``python recording_hook.py LOG``. Appends one JSON line to LOG: its pid and, for every path in
``STRATMANCER_CHANGED_PATHS``, the file's text as it is on disk now (null when absent) -- what the app
would load. With ``STRATMANCER_TEST_HOOK_STOP=SIGNAL`` it then sends SIGNAL to the runner (its parent):
the deterministic kill point *during* a hook. After SIGTERM or SIGALRM it waits to be stopped (the
runner must stop the hook's process group); after SIGKILL nobody is left to stop it, so it exits.
Test support only: nothing in the package refers to it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def main() -> int:
    paths = [p for p in os.environ.get("STRATMANCER_CHANGED_PATHS", "").split(os.pathsep) if p]
    line = json.dumps({"pid": os.getpid(), "files": {p: _read(p) for p in paths}})
    with open(sys.argv[1], "a", encoding="utf-8") as log:
        log.write(line + "\n")
    stop = os.environ.get("STRATMANCER_TEST_HOOK_STOP")
    if stop:
        os.kill(os.getppid(), getattr(signal, stop))
        if stop != "SIGKILL":
            time.sleep(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
