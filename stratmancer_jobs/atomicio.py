"""The one way this tool writes a file: temp file beside the target, fsync, ``os.replace``, fsync the dir.

Readers never see a half-written file, and a crash (even SIGKILL) leaves either the old or the new
content. An existing target's permission bits, owner and group are kept so that another user reading
the output (a web server, the trainer) keeps its access; new files get ``0o644`` (not world-writable).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from stratmancer_jobs.errors import StorageError
from stratmancer_jobs.procs import pid_alive

DEFAULT_MODE = 0o644
DIR_MODE = 0o755


def make_dirs(directory: Path) -> None:
    """``mkdir -p`` whose new directories are never group- or world-writable, whatever the umask.

    Under ``umask 000`` a plain ``mkdir`` makes ``state/`` 0777, and anyone could then replace the
    state or lock files in it. A stricter umask still applies. Raises OSError.
    """
    missing: list[Path] = []
    current = Path(directory)
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not path.is_dir():  # a file where the directory belongs
                raise
            # else a concurrent run made it first


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied or read-only file system"
    return exc.strerror or str(exc)


def _keep_owner(tmp_name: str, existing: os.stat_result) -> None:
    """Give the new file the replaced file's owner and group (a reader such as a web server may rely
    on its group); when this user may not set the owner (not root), keep at least the group."""
    st = os.stat(tmp_name)
    if (st.st_uid, st.st_gid) == (existing.st_uid, existing.st_gid):
        return
    try:
        os.chown(tmp_name, existing.st_uid, existing.st_gid)
    except PermissionError:
        with contextlib.suppress(PermissionError):
            os.chown(tmp_name, -1, existing.st_gid)


def _remove_dead_temps(directory: Path, name: str) -> None:
    """Delete this target's temp files left by a writer that was killed mid-write (its pid is gone).

    Without this every SIGKILL inside a write (OOM killer, reboot, timeout) leaves a copy of the file
    behind for good. A live writer's temp file (its pid exists, even a reused pid) is never touched.
    """
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[a-z0-9_]+\.tmp$")
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not pid_alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically; raise StorageError naming the path on failure.

    The temp file's name (``.{name}.{pid}.XXXXXXXX.tmp``) starts with a dot and ends in ``.tmp`` so
    that directory scanners (the history job, node_exporter's ``*.prom`` collector) never pick it up;
    the pid lets a later write remove what a killed writer left.
    """
    path = Path(path)
    directory = path.parent
    if path.is_dir() and not path.is_symlink():
        raise StorageError(f"cannot write {path}: it is a directory")
    try:
        make_dirs(directory)
    except OSError as exc:
        raise StorageError(f"cannot create directory {directory}: {_describe(exc)}") from None
    try:
        existing: os.stat_result | None = path.lstat()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise StorageError(f"cannot stat {path}: {_describe(exc)}") from None
    if existing is not None and stat.S_ISLNK(existing.st_mode):
        existing = None  # a symlink at the name is replaced like a missing file: its target is never read
    if mode is None:
        mode = stat.S_IMODE(existing.st_mode) if existing is not None else DEFAULT_MODE
    tmp_name: str | None = None
    try:
        _remove_dead_temps(directory, path.name)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if existing is not None:
                _keep_owner(tmp_name, existing)
            os.chmod(tmp_name, mode)  # after chown, which may clear set-id bits
            os.replace(tmp_name, path)
            tmp_name = None
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {_describe(exc)}") from None
    _fsync_dir(directory)


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def dump_json(obj: Any) -> str:
    """Serialise deterministically: sorted keys, two-space indent, trailing newline, no NaN."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(path: Path, obj: Any, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``obj`` as deterministic JSON, atomically."""
    atomic_write_text(path, dump_json(obj), mode=mode)
