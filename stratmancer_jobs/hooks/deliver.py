"""Change hooks, the runner's side: deliver one run's change to the hooks it still owes.

The runner calls ``deliver_change`` once per run that holds the job's lock (not after Ctrl-C or
SIGTERM). It merges the run's change into the pending one, saves that in the state *before* any hook
runs (a run killed during a hook leaves it to the next run: at least once), runs the hooks through
``hooks.run`` and says what is still owed. The runner records the outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from stratmancer_jobs.clock import iso
from stratmancer_jobs.config import Settings
from stratmancer_jobs.errors import StratmancerError
from stratmancer_jobs.hookspec import Change, PendingChange, after_run, next_pending
from stratmancer_jobs.jobs import Change as JobChange
from stratmancer_jobs.jobtable import JobSpec
from stratmancer_jobs.logs import redact
from stratmancer_jobs.state import StateStore


@dataclass(frozen=True)
class Delivery:
    """The pending change left (None: nothing owed), the hooks' error (redacted) and whether a
    KeyboardInterrupt stopped them (the runner records the run, then re-raises it)."""

    pending: PendingChange | None
    error: str | None = None
    interrupted: bool = False


def deliver_change(
    spec: JobSpec,
    settings: Settings,
    store: StateStore,
    log: logging.Logger,
    change: JobChange | None,
    stored: PendingChange | None,
    *,
    enabled: bool,
    now: datetime,
) -> Delivery:
    """Merge this run's ``change`` into the ``stored`` pending one and run the hooks it still owes.

    With ``enabled`` false (``--no-hooks``) no hook runs and the change stays pending.
    """
    seen = Change(spec.id, change.paths, dict(change.fields), iso(now)) if change is not None else None
    pending = next_pending(stored, seen)
    specs = settings.job_hooks(spec)
    if pending is None:
        return Delivery(None)
    if not specs:
        return Delivery(None)  # nothing to tell: a change without hooks is not kept
    extra = {"job": spec.id, "event": "hooks"}
    if pending != stored:
        try:
            store.update(spec.id, lambda r: replace(r, pending_change=pending), now)
        except StratmancerError as exc:
            log.warning(f"pending change not recorded before the hooks: {exc}", extra=extra)
    if not enabled:
        log.info("--no-hooks: on_change hooks not run; the change stays pending", extra=extra)
        return Delivery(pending)
    from stratmancer_jobs.hooks.run import run_hooks  # subprocess, tempfile, http: only when hooks run

    try:
        report = run_hooks(
            specs,
            pending,
            env=settings.env,
            log=log.getChild(spec.id),
            http=settings.patch,
            redact_values=settings.redact_values,
            cwd=settings.layout.root,
        )
    except KeyboardInterrupt:  # the hooks that finished are not known: every one is owed again
        message = "interrupted (KeyboardInterrupt) while running the on_change hooks"
        return Delivery(after_run(pending, (), message), redact(message, settings.redact_values), True)
    error = redact(report.error, settings.redact_values) if report.error is not None else None
    return Delivery(after_run(pending, report.succeeded_keys, report.error), error)
