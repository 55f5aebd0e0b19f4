"""The one runner every job goes through: lock, time, run, record, log, publish metrics.

A job never does its own bookkeeping. The runner takes the job's own lock without waiting (a second
run of the same job is *skipped*: warned, counted, exit 0), enforces the maximum run time with a
real-time timer, records the outcome in the state file and never lets a failure look like success.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from filelock import FileLock, Timeout

from stratmancer_jobs.atomicio import make_dirs
from stratmancer_jobs.clock import utc_now
from stratmancer_jobs.config import MAX_TIMEOUT_S, Settings, deployment_root
from stratmancer_jobs.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    JobError,
    JobTerminated,
    JobTimeout,
    PartialFailure,
    StorageError,
    StratmancerError,
)
from stratmancer_jobs.freshness import Observed
from stratmancer_jobs.hooks.deliver import Delivery, deliver_change, owe, stopped_delivery
from stratmancer_jobs.jobs import Change as JobChange
from stratmancer_jobs.jobs import JobContext, JobResult, ProgressSink, load_job
from stratmancer_jobs.jobtable import JobSpec
from stratmancer_jobs.layout import Layout
from stratmancer_jobs.logs import RepeatedWarnings, redact, secret_values
from stratmancer_jobs.procs import thread_start_refused
from stratmancer_jobs.progressfile import clear_progress, progress_recorder
from stratmancer_jobs.schedule import is_due, next_run
from stratmancer_jobs.state import (
    FILE_MODE,
    JobRecord,
    State,
    StateStore,
    counted_success,
    empty_state,
    mark_failed_unrun,
    mark_finished,
    mark_interrupted,
    mark_skipped,
    mark_started,
)

Clock = Callable[[], datetime]
Status = Literal["success", "error", "skipped", "not_due"]


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one invocation; ``exit_code`` follows the README's contract."""

    status: Status
    exit_code: int
    summary: str | None = None
    error: str | None = None
    duration_s: float = 0.0


def _job_lock(settings: Settings, spec: JobSpec) -> FileLock:
    lock_dir = settings.layout.lock_dir
    try:
        make_dirs(lock_dir)
    except OSError as exc:
        raise StorageError(f"cannot create lock directory {lock_dir}: {exc.strerror}") from None
    return FileLock(settings.layout.job_lock(spec.id), timeout=0, mode=FILE_MODE)


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[list[JobError]]:
    """Raise JobTimeout in the running code after ``seconds`` (0 = no limit); SIGTERM becomes JobError.

    Yields the errors the signals raised so far, so that the body can tell a signal that was caught
    or wrapped by the code it interrupted. Signals are the only way to stop arbitrary Python code in
    this process, and they only work in the main thread; elsewhere (never in the CLI) the limit is
    not enforced.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield []
        return

    # A signal can land where Python prints an exception and carries on (a finalizer, a weakref or
    # thread-pool callback): remember it, and raise it again when the job returns as if nothing happened.
    fired: list[JobError] = []

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        fired.append(JobTimeout(f"timed out after {seconds:g} s"))
        raise fired[-1]

    def on_term(signum: int, frame: FrameType | None) -> None:
        fired.append(JobTerminated("terminated by SIGTERM"))
        raise fired[-1]

    old_alarm = signal.signal(signal.SIGALRM, on_alarm)
    old_term = signal.signal(signal.SIGTERM, on_term)
    if seconds > 0:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        try:
            yield fired
        except Exception as exc:
            # the signal's error wrapped by the code it interrupted (an import's __set_name__ wraps it
            # in RuntimeError): the run still timed out or was terminated
            if fired and exc is not fired[0]:
                raise fired[0] from exc
            raise
        if fired:
            raise fired[0]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_alarm)
        signal.signal(signal.SIGTERM, old_term)


def _extra(spec: JobSpec, event: str, **fields: Any) -> dict[str, Any]:
    return {"job": spec.id, "event": event, **fields}


def _log_traceback(log: logging.Logger, spec: JobSpec) -> None:
    """Called in an ``except`` block: the unexpected exception's traceback goes to the log."""
    log.error("unexpected error, traceback follows", exc_info=True, extra=_extra(spec, "traceback"))


def _log_notice(log: logging.Logger, spec: JobSpec, notice: str | None) -> None:
    if notice:
        log.error(notice, extra=_extra(spec, "state_recovered"))


def run_job(
    spec: JobSpec,
    settings: Settings,
    *,
    log: logging.Logger,
    options: Mapping[str, Any] | None = None,
    progress: ProgressSink | None = None,
    if_due: bool = False,
    hooks: bool = True,
    clock: Clock = utc_now,
) -> RunOutcome:
    """Run one job through the lock, the timer and the state file; never raises StratmancerError.

    The time limit is ``settings.time_limit(spec)`` (the --timeout flag is resolved in config). With
    ``if_due`` the job runs only when a scheduled time was missed since its last success. ``progress``
    is handed to the job as ``ctx.progress``. A KeyboardInterrupt is recorded, then re-raised.
    With ``hooks`` false (``--no-hooks``) the job's on_change hooks are not run; a change stays pending.
    """
    store = StateStore(settings.layout.state_file)
    limit = settings.time_limit(spec)
    if not (math.isfinite(limit) and 0 <= limit <= MAX_TIMEOUT_S):  # setitimer would overflow
        bad = f"timeout must be between 0 and {MAX_TIMEOUT_S} seconds (0 = no limit), got {limit!r}"
        log.error(bad, extra=_extra(spec, "error"))
        return RunOutcome("error", EXIT_USAGE, error=bad)
    if if_due:
        not_due = _not_due(spec, settings, store, clock())
        if not_due is not None:
            log.info(not_due, extra=_extra(spec, "not_due"))
            return RunOutcome("not_due", EXIT_OK, summary=not_due)
    try:
        lock = _job_lock(settings, spec)
        lock.acquire()
    except Timeout:
        return _record_skip(spec, settings, store, log, clock)
    except StratmancerError as exc:
        log.error(str(exc), extra=_extra(spec, "error"))
        return RunOutcome("error", exc.exit_code, error=str(exc))
    except OSError as exc:  # e.g. a lock file left by a `sudo` run, owned by root
        return _record_lock_failure(spec, settings, store, log, clock, exc)
    try:
        return _run_locked(spec, settings, store, log, options or {}, progress, limit, clock, hooks)
    finally:
        lock.release()


def _not_due(spec: JobSpec, settings: Settings, store: StateStore, now: datetime) -> str | None:
    """None when the job is due; otherwise the one-line note saying why it is not run."""
    record = _read_quietly(store).job(spec.id)
    last_success = counted_success(record, now)  # a success recorded in the future does not count
    schedule = settings.job(spec).schedule
    if is_due(schedule, settings.timezone, last_success, now):
        return None
    upcoming = next_run(schedule, settings.timezone, now).isoformat()
    return f"{spec.id} not due: last success {record.last_success}, next scheduled run {upcoming}"


def _record_skip(
    spec: JobSpec, settings: Settings, store: StateStore, log: logging.Logger, clock: Clock
) -> RunOutcome:
    now = clock()
    holder = _read_quietly(store).job(spec.id).running
    since = f" (pid {holder.pid}, since {holder.started})" if holder else ""
    reason = f"skipped: another run of {spec.id} is in progress{since}"
    log.warning(reason, extra=_extra(spec, "skipped", status="skipped"))
    try:
        committed = store.update(
            spec.id, lambda r: mark_skipped(r, at=now, reason=reason, host=socket.gethostname()), now
        )
    except StratmancerError as exc:
        log.error(str(exc), extra=_extra(spec, "error"))
        return RunOutcome("skipped", exc.exit_code, error=str(exc))
    _log_notice(log, spec, committed.notice)
    _publish_metrics(settings, log, spec, committed.state)
    return RunOutcome("skipped", EXIT_OK, summary=reason)


def _lock_failure_message(spec: JobSpec, settings: Settings, exc: OSError) -> str:
    """One line naming the lock file (or its directory) that cannot be opened, and the fix."""
    path = Path(settings.layout.job_lock(spec.id))
    reason = exc.strerror or type(exc).__name__
    if path.is_dir() and not path.is_symlink():
        return f"cannot open job lock {path}: it is a directory; delete it (the lock file is recreated)"
    if not isinstance(exc, PermissionError):  # e.g. ENOSPC, EROFS: no ownership fix to suggest
        return f"cannot open job lock {path}: {reason}"
    if os.path.lexists(path):
        return (
            f"cannot open job lock {path}: {reason}; chown it to the user running the jobs "
            "or delete it (it is recreated)"
        )
    return (
        f"cannot create job lock {path}: {reason}; chown the directory {path.parent} "
        "to the user running the jobs"
    )


def _record_lock_failure(
    spec: JobSpec, settings: Settings, store: StateStore, log: logging.Logger, clock: Clock, exc: OSError
) -> RunOutcome:
    """The job's lock cannot be opened: one clear line, a failed run in the state if it is writable.

    The running marker is left as it is: without the lock nothing is known about another run.
    """
    message = redact(_lock_failure_message(spec, settings, exc), settings.redact_values)
    log.error(f"{message}; the job was not run", extra=_extra(spec, "error", status="error"))
    now = clock()
    state: State | None = None
    try:
        committed = store.update(spec.id, lambda r: mark_failed_unrun(r, at=now, error=message), now)
    except StratmancerError as state_exc:
        log.error(f"could not record the failure: {state_exc}", extra=_extra(spec, "error"))
    else:
        _log_notice(log, spec, committed.notice)
        state = committed.state
    _publish_metrics(settings, log, spec, state)
    return RunOutcome("error", EXIT_FAILED, error=message)


def record_refused_run(
    spec: JobSpec, root: Path | None, env: Mapping[str, str], error: str, clock: Clock = utc_now
) -> None:
    """Record a run refused for its configuration (exit 2) as a failed run of ``spec``, so that
    ``status`` and ``--check`` show it (a half-written jobs.toml otherwise leaves no trace).

    Only when the state is reachable: the root resolves and its ``state/`` directory already exists (a
    mistyped root gets nothing created in it). Not recording is silent: the refusal itself has been
    reported, on one line, by the caller.
    """
    try:
        layout = Layout(deployment_root(root, env))
    except StratmancerError:
        return
    if not layout.state_dir.is_dir():
        return
    now = clock()
    message = redact(f"not run, configuration error: {error}", secret_values(env))
    with contextlib.suppress(StratmancerError):
        StateStore(layout.state_file).update(
            spec.id, lambda r: mark_failed_unrun(r, at=now, error=message), now
        )


def _read_quietly(store: StateStore) -> State:
    try:
        return store.read()
    except StratmancerError:
        return empty_state()


def _run_locked(
    spec: JobSpec,
    settings: Settings,
    store: StateStore,
    log: logging.Logger,
    options: Mapping[str, Any],
    progress: ProgressSink | None,
    limit: float,
    clock: Clock,
    hooks: bool = True,
) -> RunOutcome:
    t0 = time.monotonic()  # the whole run's wall time, hooks included: took, the log, the metrics
    started = clock()
    host = socket.gethostname()  # the marker, the start line and the run entry name the same machine
    try:
        begun = store.update(
            spec.id, lambda r: mark_started(r, pid=os.getpid(), started=started, host=host), started
        )
    except StratmancerError as exc:
        log.error(f"{exc}; the job was not run", extra=_extra(spec, "error"))
        return RunOutcome("error", exc.exit_code, error=str(exc))
    _log_notice(log, spec, begun.notice)
    log.debug(f"started {spec.name} on {host} (pid {os.getpid()})", extra=_extra(spec, "start", host=host))
    summary: str | None = None
    metrics: dict[str, float | str] | None = None
    error: str | None = None
    exit_code = EXIT_OK
    interrupted = False
    result: JobResult | None = None
    # what the hooks are owed: an earlier run's change still pending (a run that finds one delivers
    # it), then every change this run's job announces before committing it (write-ahead)
    owed = begun.state.job(spec.id).pending_change
    delivery: Delivery | None = None  # None: the hooks did not run, the pending change stored stays
    in_hooks = False
    inputs: Observed | None = None  # what the run saw of its inputs (freshness checks)
    progress_file = settings.layout.job_progress(spec.id)

    def before_commit(change: JobChange) -> None:
        nonlocal owed
        owed = owe(spec, settings, store, change, clock()) or owed

    repeats = RepeatedWarnings(_read_warnings(settings, spec))
    log.getChild(spec.id).addFilter(repeats)
    try:
        with _time_limit(limit) as fired:
            try:
                func = load_job(spec)
                ctx = JobContext(
                    settings=settings,
                    now=started,
                    log=log.getChild(spec.id),
                    options=options,
                    progress=progress_recorder(progress_file, progress),
                    before_commit=before_commit,
                )
                try:
                    result = func(ctx)
                finally:
                    clear_progress(progress_file)
                summary, metrics, inputs = result.summary, dict(result.metrics), result.inputs
            except PartialFailure as exc:  # part of the work was done: its summary and metrics count too
                summary, metrics = exc.summary, dict(exc.metrics)
                inputs = exc.inputs if isinstance(exc.inputs, Observed) else None
                error, exit_code = str(exc), exc.exit_code
            except (JobTimeout, JobTerminated):
                raise
            except StratmancerError as exc:
                error, exit_code = str(exc), exc.exit_code
            except Exception as exc:
                if fired:  # the time limit's or SIGTERM's error, wrapped by the code it interrupted
                    raise fired[0] from exc
                error, exit_code = thread_start_refused(exc) or f"{type(exc).__name__}: {exc}", EXIT_FAILED
                if not thread_start_refused(exc):  # a limit to raise is one line; anything else is a bug
                    _log_traceback(log, spec)
            if fired:  # swallowed where Python prints an exception and carries on (a finalizer)
                raise fired[0]
            # whatever output is committed (this run's, even a failed one's, or an earlier run's still
            # owed): tell the app, at least once, within the time limit, before the outcome is recorded
            in_hooks = True
            delivery = deliver_change(spec, settings, log, owed, enabled=hooks)
            if delivery.error is not None:
                error = delivery.error if error is None else f"{error}; {delivery.error}"
                exit_code = exit_code or EXIT_FAILED
    except (JobTimeout, JobTerminated, KeyboardInterrupt) as exc:
        # stopped: no more hooks are started; what is owed stays owed for the next run
        stop = str(exc) if isinstance(exc, JobError) else "interrupted (KeyboardInterrupt)"
        if in_hooks:
            stop += " while running the on_change hooks"
            delivery = delivery or stopped_delivery(owed, stop)
        if owed is not None and (delivery is None or delivery.pending is not None):
            stop += "; the change stays pending"
        error = stop if error is None else f"{error}; {stop}"
        exit_code = exc.exit_code if isinstance(exc, JobError) else EXIT_FAILED
        interrupted = isinstance(exc, KeyboardInterrupt)
    except Exception as exc:  # only from the hooks: the job's own errors are caught above
        stop = f"unexpected error while running the on_change hooks: {type(exc).__name__}: {exc}"
        _log_traceback(log, spec)
        delivery = delivery or stopped_delivery(owed, stop)
        error = stop if error is None else f"{error}; {stop}"
        exit_code = exit_code or EXIT_FAILED
    log.getChild(spec.id).removeFilter(repeats)
    _write_warnings(settings, spec, repeats)
    finished = clock()
    if error is not None:
        error = redact(error, settings.redact_values)
    if summary:
        summary = redact(summary, settings.redact_values)
    warning = redact(result.warning, settings.redact_values) if result and result.warning else None
    ok = error is None
    state: State | None = None
    duration = time.monotonic() - t0
    try:
        committed = store.update(
            spec.id,
            lambda r: _finished(
                r,
                delivery,
                interrupted=interrupted,
                ok=ok,
                started=started,
                finished=finished,
                duration_s=duration,
                summary=summary,
                error=error,
                metrics=metrics,
                warning=warning,
                host=host,
                inputs=inputs,
            ),
            finished,
        )
        _log_notice(log, spec, committed.notice)
        state = committed.state
    except StratmancerError as exc:
        log.error(f"could not record the outcome: {exc}", extra=_extra(spec, "error"))
        error = error or str(exc)
        exit_code = exit_code or exc.exit_code
    upcoming = next_run(settings.job(spec).schedule, settings.timezone, finished).isoformat()
    if error is None:
        log.info(
            f"finished in {duration:.2f}s: {summary}; next run {upcoming}",
            extra=_extra(
                spec, "end", status="success", duration=round(duration, 3), summary=summary, next_run=upcoming
            ),
        )
    else:
        log.error(
            f"failed after {duration:.2f}s: {error}; next run {upcoming}",
            extra=_extra(
                spec, "end", status="error", duration=round(duration, 3), summary=error, next_run=upcoming
            ),
        )
    _publish_metrics(settings, log, spec, state)
    if interrupted:
        raise KeyboardInterrupt
    status: Status = "success" if error is None else "error"
    return RunOutcome(status, exit_code, summary=summary, error=error, duration_s=duration)


def _read_warnings(settings: Settings, spec: JobSpec) -> list[str]:
    """The hashes of the warnings the job's previous run logged (none when unknown)."""
    import json

    try:
        data = json.loads(settings.layout.job_warnings(spec.id).read_bytes())
    except (OSError, ValueError):
        return []
    return [key for key in data if isinstance(key, str)] if isinstance(data, list) else []


def _write_warnings(settings: Settings, spec: JobSpec, repeats: RepeatedWarnings) -> None:
    """Keep this run's warnings for the next run; a failure only means a warning is logged again."""
    if repeats.seen == repeats.previous:
        return
    import json

    from stratmancer_jobs.atomicio import atomic_write_bytes

    path = settings.layout.job_warnings(spec.id)
    try:
        make_dirs(path.parent)
        atomic_write_bytes(path, json.dumps(sorted(repeats.seen)).encode())
    except (OSError, StratmancerError):
        pass


def _finished(
    record: JobRecord, delivery: Delivery | None, *, interrupted: bool = False, **outcome: Any
) -> JobRecord:
    """``mark_finished`` (``mark_interrupted`` for a Ctrl-C: neither a success nor a failure) and the
    pending change left after the hooks; when they did not run (``delivery`` None), the pending change
    stored (an earlier run's, or this run's intent) stays."""
    if interrupted:
        keep = ("started", "finished", "duration_s", "host")
        finished = mark_interrupted(record, **{k: v for k, v in outcome.items() if k in keep})
    else:
        finished = mark_finished(record, **outcome)
    return finished if delivery is None else replace(finished, pending_change=delivery.pending)


def _publish_metrics(settings: Settings, log: logging.Logger, spec: JobSpec, state: State | None) -> None:
    """Rewrite the Prometheus textfile from the state just committed (None: it could not be written,
    so the file on disk is read); a failure here never fails the job."""
    if settings.metrics_file is None:
        return
    from stratmancer_jobs.metrics import write_metrics

    try:
        write_metrics(settings, state)
    except StratmancerError as exc:
        log.warning(f"metrics not written: {exc}", extra=_extra(spec, "metrics_error"))
