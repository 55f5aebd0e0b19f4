"""The job state file: one JSON document, read-modify-written only under a sibling FileLock.

Writes go through atomicio, so readers (``status``) never need the lock. A corrupt, unreadable or
unknown-schema file is never overwritten silently: it is moved aside under a new name, the problem is
reported naming both paths, and counting starts again from an empty state that says where the old
one went (``recovered_from``).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from stratmancer_jobs.atomicio import atomic_write_json, make_dirs
from stratmancer_jobs.clock import file_stamp, iso
from stratmancer_jobs.errors import StateError, StorageError
from stratmancer_jobs.layout import lock_beside
from stratmancer_jobs.smallfile import file_kind
from stratmancer_jobs.state.codec import decode, encodable, encode, load_state
from stratmancer_jobs.state.records import JobRecord, State, first_recorded

STATE_LOCK_TIMEOUT_S = 60.0
FILE_MODE = 0o644


@dataclass(frozen=True)
class Committed:
    """What ``StateStore.update`` wrote, and the notice when a bad file had to be moved aside first."""

    state: State
    notice: str | None


@dataclass(frozen=True)
class StateStore:
    """The state file and its lock; ``update`` is the only way to change it."""

    path: Path

    @property
    def lock_path(self) -> Path:
        return lock_beside(self.path)

    def read(self) -> State:
        return load_state(self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            make_dirs(self.path.parent)
        except OSError as exc:
            raise StorageError(f"cannot create state directory {self.path.parent}: {exc.strerror}") from None
        problem = self.lock_problem()  # a FIFO or device would lock too; status reports it either way
        if problem is not None:
            raise StorageError(problem)
        from filelock import FileLock, Timeout  # here, not at the top: `status` never locks

        lock = FileLock(self.lock_path, timeout=STATE_LOCK_TIMEOUT_S, mode=FILE_MODE)
        try:
            with lock:
                yield
        except Timeout:
            raise StorageError(
                f"state lock {self.lock_path} still held after {STATE_LOCK_TIMEOUT_S:.0f} s"
            ) from None
        except OSError as exc:  # a symlink (ELOOP: not followed), a directory, a file owned by root
            problem = self.lock_problem()
            if problem is None and isinstance(exc, PermissionError):
                problem = (
                    f"cannot lock {self.lock_path}: {exc.strerror}; chown it (or its directory) to the "
                    "user running the jobs, or delete it (it is recreated)"
                )
            raise StorageError(problem or f"cannot lock {self.lock_path}: {exc.strerror}") from None

    def lock_problem(self) -> str | None:
        """Why the state lock file cannot be used (a symlink, a directory, a FIFO ... at its name), with
        the fix, or None; checked without opening it, so that ``status`` can report it too."""
        try:
            mode = os.lstat(self.lock_path).st_mode
        except OSError:  # absent (created on the first lock) or unreachable: the lock itself will say
            return None
        if stat.S_ISREG(mode):
            return None
        kind = "a symbolic link" if stat.S_ISLNK(mode) else file_kind(mode)
        fix = "remove the directory" if stat.S_ISDIR(mode) else "delete it"
        return f"state lock {self.lock_path} is {kind}, not a regular file; {fix} (it is recreated)"

    def _quarantine(self, error: StateError, now: datetime) -> tuple[State, str]:
        target = self.path.with_name(f"{self.path.name}.corrupt-{file_stamp(now)}-{os.getpid()}")
        try:
            os.replace(self.path, target)
        except OSError as exc:
            raise StorageError(f"{error}; could not move it aside to {target}: {exc.strerror}") from None
        state = State(recovered_from={"path": str(target), "reason": str(error), "at": iso(now)})
        notice = f"{error}; preserved it as {target} and started a new state (counts restart at zero)"
        return state, notice

    def update(self, job_id: str, change: Callable[[JobRecord], JobRecord], now: datetime) -> Committed:
        """Replace the job's record by ``change(record)`` under the lock and write atomically.

        Returns the state written (for the metrics file) and a notice when a bad state file had to
        be moved aside (the caller logs it).
        """
        notice: str | None = None
        with self._locked():
            try:
                state = load_state(self.path)
            except StateError as exc:
                if self.path.is_dir():
                    raise
                state, notice = self._quarantine(exc, now)
            state = replace(state, jobs={**state.jobs, job_id: change(state.job(job_id))})
            if state.first_run is None:
                state = replace(state, first_run=first_recorded(state) or iso(now))
            document = encodable(encode(state))
            atomic_write_json(self.path, document)
        return Committed(decode(document), notice)
