"""What goes in the new index, and its bytes: fresh entries from counts, kept entries for bad files.

Pure apart from ``split_map``, which builds and renders the entries on the second core (a forked pool).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import msgspec

from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.jobs.history.aggregate import (
    Entry,
    build_entry,
    entry_stats,
    join_fragments,
    render,
    render_entry,
)
from stratmancer_jobs.jobs.history.counts import Counts, GroupState
from stratmancer_jobs.jobs.history.parallel import split_map
from stratmancer_jobs.jobs.history.read import GroupRun
from stratmancer_jobs.jobs.history.sources import SourceFile
from stratmancer_jobs.jobs.history.tiers import GROUPS


@dataclass(frozen=True)
class Carried:
    """An entry taken byte for byte from the previous index (its files are unchanged since)."""

    fragment: bytes


# An entry to write: kept as it was (a tier with a bad file), carried over from the previous index
# (unchanged files), or computed from counts (in any process).
Job = Entry | Carried | Callable[[], tuple[Counts, list[int]]]


def plan(
    runs: dict[str, GroupRun],
    files: list[SourceFile],
    previous: Callable[[str], Entry | None],
    carried: Mapping[str, bytes | None] | None = None,
) -> tuple[dict[str, Job], Counter[str]]:
    """What goes in the new index: the previous entry of every tier (and group) with a bad file, the
    previous bytes of every one whose files are unchanged (``carried``), fresh entries for the rest."""
    carried = carried or {}
    jobs: dict[str, Job] = {}
    skipped: Counter[str] = Counter()
    present = {f.tier for f in files}
    for group, run in runs.items():
        bad_tiers = {f.tier for f in files if f.name in run.errors}
        state = run.state
        for tier in GROUPS[group]:
            if tier not in present:
                continue
            tier_state = state.tiers[tier]
            skipped.update(tier_state.skipped)
            if tier in bad_tiers:
                kept = previous(tier)
                if kept is not None:
                    jobs[tier] = kept
            elif tier in carried:
                if (fragment := carried[tier]) is not None:
                    jobs[tier] = Carried(fragment)
            elif tier_state.counts.n:
                jobs[tier] = partial(_tier_counts, state, tier)
        if bad_tiers:
            kept = previous(group)
            if kept is not None:
                jobs[group] = kept
        elif group in carried:
            if (fragment := carried[group]) is not None:
                jobs[group] = Carried(fragment)
        elif any(t.counts.n for t in state.tiers.values()):
            jobs[group] = partial(_group_counts, state)
    return jobs, skipped


def _tier_counts(state: GroupState, tier: str) -> tuple[Counts, list[int]]:
    return state.tiers[tier].counts, state.keys


def _group_counts(state: GroupState) -> tuple[Counts, list[int]]:
    return state.group_counts(), state.keys


def _entry_of(job: Job, thresholds: HistorySettings) -> Entry:
    if isinstance(job, Carried):
        entry: Entry = msgspec.json.decode(job.fragment)
        return entry
    if callable(job):
        counts, keys = job()
        return build_entry(counts, keys, thresholds)
    return job


def render_index(
    jobs: dict[str, Job], thresholds: HistorySettings, parallel: bool
) -> tuple[bytes, dict[str, dict[str, int]]]:
    """The index's bytes and each entry's sizes; entries are built and rendered on both cores."""

    def one(key: str) -> tuple[bytes | None, dict[str, int]]:
        job = jobs[key]
        entry = _entry_of(job, thresholds)
        return (job.fragment if isinstance(job, Carried) else render_entry(entry)), entry_stats(entry)

    keys = sorted(jobs, key=lambda k: (k not in GROUPS, k))  # the heavier group entries first
    results = dict(zip(keys, split_map(one, keys, parallel=parallel), strict=True))
    stats = {key: result[1] for key, result in results.items()}
    fragments = {key: result[0] for key, result in results.items()}
    if any(fragment is None for fragment in fragments.values()):
        index = {key: _entry_of(job, thresholds) for key, job in jobs.items()}
        return render(index), stats
    return join_fragments({k: f for k, f in fragments.items() if f is not None}), stats
