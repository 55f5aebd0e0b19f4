"""The process-level reliability scenarios of issue 5, as plain functions taking counts.

Each returns an ``Outcome`` (trials, failures, what was checked). ``tests/reliability/test_*.py`` call
them with small counts and assert no failures; ``scripts/reliability.py`` calls them with large counts
and prints the table. Hostile-input (hypothesis) scenarios live in ``hostile.py``.

One module per family: ``scenario_runs`` (load, crashes, timeouts, collector rewrites),
``scenario_state`` (corrupt state file and cache), ``scenario_storage`` (file-system faults,
permissions), ``scenario_environment`` (secrets, paths); their shared inputs are in ``scenario_inputs``.
"""

from __future__ import annotations

from tests.reliability.scenario_environment import paths, secrets
from tests.reliability.scenario_runs import collector_rewrites, crashes, load, timeouts
from tests.reliability.scenario_state import CORRUPTIONS, corrupt_cache, corrupt_state
from tests.reliability.scenario_storage import permissions, storage_faults

__all__ = [
    "CORRUPTIONS",
    "collector_rewrites",
    "corrupt_cache",
    "corrupt_state",
    "crashes",
    "load",
    "paths",
    "permissions",
    "secrets",
    "storage_faults",
    "timeouts",
]
