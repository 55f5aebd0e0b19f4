"""What goes in the new index, and its bytes: fresh entries from counts, kept entries for bad files.

Pure. ``plan_group`` decides each key of one elo group (in whichever process read the group) and
builds and renders its fresh entries there; ``render_index`` joins every group's entries.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
from stratmancer_jobs.jobs.history.counts import GroupState
from stratmancer_jobs.jobs.history.read import GroupRun
from stratmancer_jobs.jobs.history.tiers import GROUPS, parse_tier_file


@dataclass(frozen=True)
class Carried:
    """An entry taken byte for byte from the previous index (its files are unchanged since)."""

    fragment: bytes


@dataclass(frozen=True)
class Kept:
    """The previous index's entry, kept because a file of its tier is bad (looked up by the caller)."""


@dataclass(frozen=True)
class Fresh:
    """An entry built from this run's counts: its bytes (None when only ``dump_json`` can write it,
    the entry itself is then kept) and its sizes."""

    fragment: bytes | None
    stats: dict[str, int]
    entry: Entry | None = None


Job = Carried | Kept | Fresh


def _build(state: GroupState, group: str, wanted: list[str], thresholds: HistorySettings) -> dict[str, Fresh]:
    """Fresh entries for ``wanted`` (tiers, or the group itself): straight to bytes with numpy when the
    run imported it (``fastrender``, the same bytes), else -- or when a rate needs ``json``'s exponent
    form, or a count is beyond int64 -- through the entry's dict."""
    out: dict[str, Fresh] = {}
    if "numpy" in sys.modules and state.keys and wanted:
        from stratmancer_jobs.jobs.history.fastrender import render_group

        with contextlib.suppress(OverflowError):
            rendered = render_group(state, group, wanted, thresholds)
            out = {key: Fresh(*result) for key, result in rendered.items() if result is not None}
    for key in wanted:
        if key not in out:
            counts = state.group_counts() if key == group else state.tiers[key].counts
            out[key] = _fresh(build_entry(counts, state.keys, thresholds))
    return out


def _fresh(entry: Entry) -> Fresh:
    """An entry as a job: its bytes (kept beside it only when ``dump_json`` must write them) and sizes."""
    fragment = render_entry(entry)
    return Fresh(fragment, entry_stats(entry), entry if fragment is None else None)


def plan_group(
    run: GroupRun,
    group: str,
    present: set[str],
    thresholds: HistorySettings,
    carried: Mapping[str, bytes | None] | None = None,
) -> dict[str, Job]:
    """The group's keys in the new index: the previous entry of every tier (and of the group) with a
    bad file, the previous bytes of every one whose files are unchanged (``carried``), fresh entries for
    the rest. ``present``: the tiers with an input file."""
    carried = carried or {}
    jobs: dict[str, Job] = {}
    wanted: list[str] = []  # keys whose entry is built from this run's counts
    state = run.state
    bad_tiers = {parsed[0] for name in run.errors if (parsed := parse_tier_file(name)) is not None}
    for tier in GROUPS[group]:
        if tier not in present:
            continue
        tier_state = state.tiers[tier]
        if tier in bad_tiers:
            jobs[tier] = Kept()
        elif tier in carried:
            if (fragment := carried[tier]) is not None:
                jobs[tier] = Carried(fragment)
        elif tier_state.counts.n:
            wanted.append(tier)
    if bad_tiers:
        jobs[group] = Kept()
    elif group in carried:
        if (fragment := carried[group]) is not None:
            jobs[group] = Carried(fragment)
    elif any(t.counts.n for t in state.tiers.values()):
        wanted.append(group)
    jobs.update(_build(state, group, wanted, thresholds))
    return jobs


def keep_previous(jobs: Mapping[str, Job], previous: Callable[[str], Entry | None]) -> dict[str, Job]:
    """``jobs`` with each ``Kept`` replaced by the previous index's entry (``previous``), or left out
    when that index has none: what the new index will hold."""
    out: dict[str, Job] = {}
    for key, job in jobs.items():
        if not isinstance(job, Kept):
            out[key] = job
        elif (entry := previous(key)) is not None:
            out[key] = _fresh(entry)
    return out


def render_index(jobs: Mapping[str, Job]) -> tuple[bytes, dict[str, dict[str, int]]]:
    """The index's bytes and each entry's sizes (``Kept`` jobs resolved by ``keep_previous`` first)."""
    fragments: dict[str, bytes | None] = {}
    entries: dict[str, Entry] = {}
    stats: dict[str, dict[str, int]] = {}
    for key, job in jobs.items():
        if isinstance(job, Fresh):
            fragments[key], stats[key] = job.fragment, job.stats
            if job.entry is not None:
                entries[key] = job.entry
        elif isinstance(job, Carried):
            fragments[key] = job.fragment
            entries[key] = msgspec.json.decode(job.fragment)
            stats[key] = entry_stats(entries[key])
        else:
            raise TypeError(f"{key}: a kept entry not resolved by keep_previous")
    if all(fragment is not None for fragment in fragments.values()):
        return join_fragments({k: f for k, f in fragments.items() if f is not None}), stats
    for key, fragment in fragments.items():  # some entry needs ``dump_json``: render them all so
        if key not in entries and fragment is not None:
            entries[key] = msgspec.json.decode(fragment)
    return render(entries), stats
