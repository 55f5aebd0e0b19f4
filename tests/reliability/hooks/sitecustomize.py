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
"""

from __future__ import annotations

import errno
import os
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


def _install() -> None:
    slow = float(os.environ.get("STRATMANCER_TEST_SLOW_WRITES") or 0)
    kind, _, where = (os.environ.get("STRATMANCER_TEST_FAULT") or "").partition(":")
    real_fsync, real_replace, real_mkstemp = os.fsync, os.replace, tempfile.mkstemp

    def fsync(fd: Any) -> None:
        if slow:
            time.sleep(slow)
        if kind == "ENOSPC" and isinstance(fd, int) and _under(_fd_path(fd), where):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if slow:
            time.sleep(slow)
        real_replace(src, dst, **kwargs)

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


_install()
