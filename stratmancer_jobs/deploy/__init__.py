"""Deployment generators: systemd units and Kubernetes CronJobs from the one job table.

The generators are pure functions of plain inputs (``DeployJob``, ``DeployTarget``): they read no
configuration, environment or files, so the CLI resolves ``Settings`` and the job table once and feeds
them in. Nothing here imports the rest of the tool except ``errors`` and ``schedule`` (validation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stratmancer_jobs.errors import ConfigError

_ZONE_RE = re.compile(r"[A-Za-z0-9_+./-]+")


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
    machine's zone; ``run_as`` sets ``User=`` on system units (ignored for ``--user`` units);
    ``env_file`` is the secrets file the units load with ``EnvironmentFile=-`` (None: none).
    """

    root: Path
    executable: str
    timezone: str | None = None
    run_as: str | None = None
    env_file: Path | None = None


def check_timezone(timezone: str) -> str:
    """Return ``timezone`` if it is a known IANA zone name (OnCalendar=, timeZone); ConfigError if not."""
    if not _ZONE_RE.fullmatch(timezone) or timezone.startswith("/"):
        raise ConfigError(f"timezone {timezone!r} is not an IANA zone name (like Europe/Paris)")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {timezone!r} (use an IANA name like Europe/Paris)") from None
    return timezone
