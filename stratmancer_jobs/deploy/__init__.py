"""Deployment generators: systemd units and Kubernetes CronJobs from the one job table.

The generators are pure functions of plain inputs (``DeployJob``, ``DeployTarget``): they read no
configuration, environment or files, so the CLI resolves ``Settings`` and the job table once and feeds
them in. Nothing here imports the rest of the tool except ``errors`` (and ``schedule`` for validation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DeployJob:
    """One job as a deployment sees it: identity, CLI command, cron schedule, grace and time limit (s).

    Built by the caller from ``JobSpec`` plus the resolved ``JobSchedule``; ``timeout_s`` 0 = no limit.
    """

    id: str
    name: str
    command: str
    schedule: str
    grace_s: int
    timeout_s: int


@dataclass(frozen=True)
class DeployTarget:
    """Where and how a systemd deployment runs: root, absolute executable, zone and (system units) user.

    ``timezone`` is an IANA name (``Europe/Paris``) appended to every ``OnCalendar=``, or None for the
    machine's zone; ``run_as`` sets ``User=`` on system units (ignored for ``--user`` units).
    """

    root: Path
    executable: str
    timezone: str | None = None
    run_as: str | None = None
