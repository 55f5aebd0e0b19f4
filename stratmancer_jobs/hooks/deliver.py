"""Change hooks, the runner's side: what a run owes, and delivering it.

Write-ahead, then act. A job announces a change right before it commits the output (``JobContext.
before_commit``); the runner stores it with ``owe`` as the job's pending change, merged into any
change still owed, *before* the output is written. Whatever happens next (SIGKILL, SIGTERM, the time
limit, a full disk), the change is in the state, and the next run that holds the lock delivers it with
the output then on disk: at least once. After the job, ``deliver_change`` runs the hooks the pending
change still owes and says what is left; the runner records that with the run's outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from stratmancer_jobs.clock import iso
from stratmancer_jobs.config import Settings
from stratmancer_jobs.errors import StorageError, StratmancerError
from stratmancer_jobs.hookspec import Change, PendingChange, after_run, next_pending
from stratmancer_jobs.jobs import Change as JobChange
from stratmancer_jobs.jobtable import JobSpec
from stratmancer_jobs.logs import redact
from stratmancer_jobs.state import StateStore


@dataclass(frozen=True)
class Delivery:
    """The pending change left after the hooks (None: nothing owed) and the hooks' error (redacted)."""

    pending: PendingChange | None
    error: str | None = None


def owe(
    spec: JobSpec, settings: Settings, store: StateStore, change: JobChange, now: datetime
) -> PendingChange | None:
    """Store ``change`` as owed to the job's hooks before the job commits it; the pending change now
    stored (None when the job has no hooks: nothing is owed, nothing written).

    Raises StorageError when it cannot be stored: the job must then not commit its output.
    """
    if not settings.job_hooks(spec):
        return None
    seen = Change(spec.id, change.paths, dict(change.fields), iso(now))
    try:
        committed = store.update(
            spec.id, lambda r: replace(r, pending_change=next_pending(r.pending_change, seen)), now
        )
    except StratmancerError as exc:
        paths = ", ".join(change.paths)
        raise StorageError(
            f"{exc}; {paths} not replaced: its change could not be recorded for the on_change hooks "
            "first, the previous output is kept"
        ) from None
    return committed.state.job(spec.id).pending_change


def deliver_change(
    spec: JobSpec, settings: Settings, log: logging.Logger, pending: PendingChange | None, *, enabled: bool
) -> Delivery:
    """Run the hooks ``pending`` still owes (already in the state) and say what is owed after them.

    With ``enabled`` false (``--no-hooks``) no hook runs and the change stays pending; a job without
    hooks owes nothing. A KeyboardInterrupt or the runner's SIGTERM/time-limit error propagates (the
    runner then keeps the change owed).
    """
    specs = settings.job_hooks(spec)
    if pending is None or not specs:
        return Delivery(None)  # nothing to tell: a change without hooks is not kept
    if not enabled:
        log.info(
            "--no-hooks: on_change hooks not run; the change stays pending",
            extra={"job": spec.id, "event": "hooks"},
        )
        return Delivery(pending)
    from stratmancer_jobs.hooks.run import run_hooks  # subprocess, tempfile, http: only when hooks run

    report = run_hooks(
        specs,
        pending,
        env=settings.env,
        log=log.getChild(spec.id),
        http=settings.patch,
        redact_values=settings.redact_values,
        cwd=settings.layout.root,
    )
    error = redact(report.error, settings.redact_values) if report.error is not None else None
    return Delivery(after_run(pending, report.succeeded_keys, error), error)


def stopped_delivery(pending: PendingChange | None, message: str) -> Delivery | None:
    """The hooks were stopped part-way (Ctrl-C, SIGTERM, the time limit): which finished is not
    known, so every one is owed again; None when nothing was owed (the stored state stays)."""
    return None if pending is None else Delivery(after_run(pending, (), message), message)
