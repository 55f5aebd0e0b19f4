"""stratmancer-jobs: cron-driven maintenance jobs for StratMancer's derived files."""

from __future__ import annotations

__version__ = "0.1.0"
