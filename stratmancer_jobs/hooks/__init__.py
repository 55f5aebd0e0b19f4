"""Change hooks: tell the running StratMancer app when a job's output really changed.

A job may list actions under ``[[jobs.<id>.on_change]]`` in ``config/jobs.toml``; each is either a
``command`` (an argv list, run without a shell, with a timeout) or an HTTP ``url`` (POST by default,
with ``headers`` whose values may name an environment variable as ``env:NAME``). Delivery is at least
once: a change whose hooks have not all succeeded stays *pending* in the state and its remaining hooks
are retried on the next run, even when nothing changed since.

* ``stratmancer_jobs.hookspec`` (pure, in the core layer so that config and state can use it): parsing
  and validation (``parse_hooks``), placeholder and environment expansion (``expand``), header
  resolution (``resolve_headers``), safe descriptions (``describe``) and the pending-change model
  (``PendingChange``, ``next_pending``, ``after_run``).
* ``hooks.run`` (the I/O edge): ``run_hooks`` runs the hooks still owed and reports each one, with every
  header value and secret redacted from its messages.
* ``hooks.deliver`` (the runner's side): ``owe`` stores a change as pending before the job commits it
  (write-ahead); ``deliver_change`` runs the hooks the pending change still owes and says what is left.
"""
