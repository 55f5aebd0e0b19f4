"""Fault injection for the reliability scenarios, loaded only by child processes whose PYTHONPATH
starts with this directory. Nothing in the package knows about it; without the variables it does nothing.

* ``STRATMANCER_TEST_SLOW_WRITES=S``: sleep S seconds before every ``os.fsync`` and ``os.replace``, so
  that a SIGKILL at a random moment often lands inside an atomic write (temp file written, not renamed).
* ``STRATMANCER_TEST_FAULT=ENOSPC:DIR``: ``os.fsync`` of a file under DIR fails with ENOSPC (disk full).
* ``STRATMANCER_TEST_FAULT=EROFS:DIR``: creating a file under DIR fails with EROFS (read-only mount).
* ``STRATMANCER_TEST_FAULT=RAISE:DIR``: writing any file outside DIR raises an unexpected RuntimeError
  whose message carries ``RIOT_API_KEY`` (a forced failure inside a job, secrets check).
* ``STRATMANCER_TEST_FAULT=CONFIG:``: loading the configuration raises such a RuntimeError, outside the
  runner (an uncaught exception in the CLI).
* ``STRATMANCER_TEST_FAULT_AFTER=N``: with ``ENOSPC:PATH``, the first N such fsyncs succeed (PATH may
  be a file: then its temp files are meant, e.g. the state file's: N=1 lets the run start, then the
  change's intent cannot be stored).
* ``STRATMANCER_TEST_STOP=POINT:SIGNAL[:PATH]``: the process sends itself SIGNAL (``SIGKILL``,
  ``SIGTERM``, or ``SIGALRM``: the --timeout alarm) at one exact point of a run, once:
  ``before-rename:SIG:PATH`` as ``os.replace`` is about to put PATH in place (the job's change is then
  already stored as owed, the output not yet committed), ``after-rename:SIG:PATH`` right after it, and
  ``after-hooks:SIG`` right after the on_change hooks returned. The kill point *during* a hook is the
  recording hook's own (``recording_hook.py``).
"""

from __future__ import annotations

import errno
import os
import signal
import tempfile
import time
from typing import Any


def _under(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def _matches(path: str, where: str) -> bool:
    """PATH under the directory ``where``, or one of the temp files of the file ``where``."""
    if os.path.isdir(where):
        return _under(path, where)
    name = os.path.basename(where)
    return os.path.dirname(path) == os.path.dirname(os.path.realpath(where)) and (
        os.path.basename(path) == name or os.path.basename(path).startswith(f".{name}.")
    )


def _install() -> None:
    slow = float(os.environ.get("STRATMANCER_TEST_SLOW_WRITES") or 0)
    kind, _, where = (os.environ.get("STRATMANCER_TEST_FAULT") or "").partition(":")
    spared = [int(os.environ.get("STRATMANCER_TEST_FAULT_AFTER") or 0)]
    point, _, rest = (os.environ.get("STRATMANCER_TEST_STOP") or "").partition(":")
    stop_name, _, stop_path = rest.partition(":")
    stops = [getattr(signal, stop_name)] if point else []
    real_fsync, real_replace, real_mkstemp = os.fsync, os.replace, tempfile.mkstemp

    def stop_here(at: str, dst: Any = None) -> None:
        if stops and point == at and (dst is None or os.path.realpath(dst) == os.path.realpath(stop_path)):
            os.kill(os.getpid(), stops.pop())

    def fsync(fd: Any) -> None:
        if slow:
            time.sleep(slow)
        if kind == "ENOSPC" and isinstance(fd, int) and _matches(_fd_path(fd), where):
            if spared[0] <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            spared[0] -= 1
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if slow:
            time.sleep(slow)
        stop_here("before-rename", dst)
        real_replace(src, dst, **kwargs)
        stop_here("after-rename", dst)

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        directory = kwargs.get("dir") or (args[2] if len(args) > 2 else None)
        if kind == "EROFS" and directory is not None and _under(str(directory), where):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(directory))
        return real_mkstemp(*args, **kwargs)

    os.fsync, os.replace = fsync, replace
    tempfile.mkstemp = mkstemp  # type: ignore[assignment]
    if kind == "RAISE":
        from stratmancer_jobs import atomicio

        real_write = atomicio.atomic_write_bytes

        def exploding_write(path: Any, data: bytes, **kwargs: Any) -> None:
            if not _under(str(path), where):
                key = os.environ.get("RIOT_API_KEY", "")
                raise RuntimeError(f"forced failure writing {path} with key {key}")
            real_write(path, data, **kwargs)

        atomicio.atomic_write_bytes = exploding_write  # type: ignore[assignment]
    elif kind == "CONFIG":
        from stratmancer_jobs import config

        def exploding_settings(*args: Any, **kwargs: Any) -> Any:
            secret_local = os.environ.get("RIOT_API_KEY", "")
            raise RuntimeError(f"forced failure loading the configuration ({secret_local})")

        config.load_settings = exploding_settings  # type: ignore[assignment]
    if point == "after-hooks":
        from stratmancer_jobs.hooks import run

        real_run_hooks = run.run_hooks

        def run_hooks_then_stop(*args: Any, **kwargs: Any) -> Any:
            report = real_run_hooks(*args, **kwargs)
            stop_here("after-hooks")
            return report

        run.run_hooks = run_hooks_then_stop  # type: ignore[assignment]


_install()
