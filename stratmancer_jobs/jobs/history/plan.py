"""What goes in the new index, and its bytes: fresh entries from counts, kept entries for bad files.

Pure apart from ``split_map``, which builds and renders the entries on the second core (a forked pool).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial

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

# An entry to write: kept as it was (a tier with a bad file), or computed from counts (in any process).
Job = Entry | Callable[[], tuple[Counts, list[int]]]


def plan(
    runs: dict[str, GroupRun], files: list[SourceFile], previous: Callable[[str], Entry | None]
) -> tuple[dict[str, Job], Counter[str]]:
    """What goes in the new index: the previous entry of every tier (and group) with a bad file."""
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
            elif tier_state.counts.n:
                jobs[tier] = partial(_tier_counts, state, tier)
        if bad_tiers:
            kept = previous(group)
            if kept is not None:
                jobs[group] = kept
        elif any(t.counts.n for t in state.tiers.values()):
            jobs[group] = partial(_group_counts, state)
    return jobs, skipped


def _tier_counts(state: GroupState, tier: str) -> tuple[Counts, list[int]]:
    return state.tiers[tier].counts, state.keys


def _group_counts(state: GroupState) -> tuple[Counts, list[int]]:
    return state.group_counts(), state.keys


def _entry_of(job: Job, thresholds: HistorySettings) -> Entry:
    if callable(job):
        counts, keys = job()
        return build_entry(counts, keys, thresholds)
    return job


def render_index(
    jobs: dict[str, Job], thresholds: HistorySettings, parallel: bool
) -> tuple[bytes, dict[str, dict[str, int]]]:
    """The index's bytes and each entry's sizes; entries are built and rendered on both cores."""

    def one(key: str) -> tuple[bytes | None, dict[str, int]]:
        entry = _entry_of(jobs[key], thresholds)
        return render_entry(entry), entry_stats(entry)

    keys = sorted(jobs, key=lambda k: (k not in GROUPS, k))  # the heavier group entries first
    results = dict(zip(keys, split_map(one, keys, parallel=parallel), strict=True))
    stats = {key: result[1] for key, result in results.items()}
    fragments = {key: result[0] for key, result in results.items()}
    if any(fragment is None for fragment in fragments.values()):
        index = {key: _entry_of(job, thresholds) for key, job in jobs.items()}
        return render(index), stats
    return join_fragments({k: f for k, f in fragments.items() if f is not None}), stats
