"""One elo group from its files to its rendered entries, in whichever process reads it.

Groups are independent (deduplication never crosses them), so a refresh splits them over two
processes (``parallel.split_map``): each reads its group's files (or extends its cache), builds and
renders the group's fresh entries, and saves the group's cache; only the small ``GroupDone`` travels
back. Log lines are collected and replayed by the caller; progress goes through ``send``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.errors import StorageError
from stratmancer_jobs.jobs.history import cache
from stratmancer_jobs.jobs.history.counts import GroupState
from stratmancer_jobs.jobs.history.filestat import FileStat
from stratmancer_jobs.jobs.history.incremental import Checkpoint
from stratmancer_jobs.jobs.history.parallel import Send
from stratmancer_jobs.jobs.history.plan import Job, plan_group
from stratmancer_jobs.jobs.history.read import Reader, process_group
from stratmancer_jobs.jobs.history.sources import SourceFile
from stratmancer_jobs.jobs.history.tiers import GROUPS
from stratmancer_jobs.layout import Layout


@dataclass(frozen=True)
class GroupTask:
    """What every group of one refresh shares."""

    layout: Layout
    files: list[SourceFile]
    thresholds: HistorySettings
    full: bool
    carried: Mapping[str, bytes | None]  # entries taken from the previous index (``read.carried``)


@dataclass(frozen=True)
class Freshness:
    """One group's freshness figures, for the sidecar and the run's record (``write.freshness``)."""

    newest: dict[str, int | None]  # the group and each tier with a file -> newest game_creation (ms)
    patches: dict[str, int]  # matches per patch, as the group counts them
    read: dict[str, tuple[int, dict[str, int]]]  # tier -> records its last read read, invalid by reason


def freshness(state: GroupState, present: set[str]) -> Freshness:
    """The figures of ``state`` for the tiers with a file (``present``) and the group."""
    tiers = [t for t in GROUPS[state.group] if t in present]
    newest: dict[str, int | None] = {state.group: state.newest()}
    newest.update({t: state.tiers[t].newest for t in tiers})
    read = {t: (state.tiers[t].read, dict(sorted(state.tiers[t].read_invalid.items()))) for t in tiers}
    return Freshness(newest, dict(sorted(state.group_patches().items())), read)


@dataclass
class GroupDone:
    """One group after its refresh: what the index, the sidecar, the manifest and the log need."""

    group: str
    checkpoints: dict[str, Checkpoint]  # what was counted of each file
    errors: dict[str, str]  # file name -> why it is bad (its tier keeps its last entry)
    rebuilt: bool
    jobs: dict[str, Job]  # the group's and its tiers' entries
    tier_skipped: dict[str, Counter[str]]  # records skipped per reason, per tier with a file
    fresh: Freshness = field(default_factory=lambda: Freshness({}, {}, {}))
    files: int = 0  # files read
    nbytes: int = 0
    invalid: dict[Path, Counter[str]] = field(default_factory=dict)  # invalid records per file read
    logs: list[tuple[int, str]] = field(default_factory=list)  # (level, message), to replay


class LogBuffer(logging.Logger):
    """A logger that keeps its records' messages (a forked worker cannot write to the caller's log)."""

    def __init__(self) -> None:
        super().__init__("stratmancer_jobs.jobs.history", logging.DEBUG)
        self.records: list[tuple[int, str]] = []

    def handle(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))


def refresh_group(task: GroupTask, group: str, send: Send) -> GroupDone:
    """Read (or extend) the group, build its entries and save its cache; progress as
    ``send((group, files, bytes))`` after each file read."""
    log = LogBuffer()
    reader = Reader(report=lambda files, nbytes: send((group, files, nbytes)))
    files = [f for f in task.files if f.tier in GROUPS[group]]
    run = process_group(group, files, task.layout.history_group_cache(group), task.full, reader, log)
    present = {f.tier for f in files}
    jobs = plan_group(run, group, present, task.thresholds, task.carried)
    if run.changed and not run.errors:
        try:
            cache.save_group(task.layout.history_group_cache(group), run.state, run.checkpoints)
        except StorageError as exc:  # the cache saves time only: the index is written all the same
            log.warning("history: the cache of group %s was not saved (%s); the index is written", group, exc)
    return GroupDone(
        group,
        run.checkpoints,
        run.errors,
        run.rebuilt,
        jobs,
        {tier: run.state.tiers[tier].skipped for tier in GROUPS[group] if tier in present},
        freshness(run.state, present),
        reader.files,
        reader.nbytes,
        reader.skipped,
        log.records,
    )


# What each part of a group's refresh costs, in bytes of JSON decoded in the same time (~1 ms a MB).
ENTRY_COST: Final = 10_000_000  # building and rendering one entry
HASH_DIVISOR: Final = 10  # proving an old prefix unchanged (read + XXH3) is ~10x cheaper than decoding
CACHE_FACTOR: Final = 12  # loading a group cache (msgpack) is ~12x dearer than decoding as much JSON
AFTER_COST: Final = 3 * ENTRY_COST  # what this process does after the split (join, write the index)


def group_cost(group: str, files: list[SourceFile], known: Mapping[str, FileStat], cache_size: int) -> int:
    """How long refreshing ``group`` will take (see the costs above), from what the manifest knows:
    a file it has not seen whole (``known``), or that shrank, is decoded whole; one that grew is decoded
    from its old end and hashed up to it; the entries of the group and of its changed tiers are built."""
    cost = cache_size * CACHE_FACTOR
    changed_tiers: set[str] = set()
    for f in files:
        if f.tier not in GROUPS[group] or known.get(f.name) == f.stat:
            continue
        changed_tiers.add(f.tier)
        old = known.get(f.name)
        if old is None or old.size > f.stat.size or not cache_size:
            cost += f.stat.size
        else:
            cost += f.stat.size - old.size + old.size // HASH_DIVISOR
    if changed_tiers:
        cost += ENTRY_COST * (len(changed_tiers) + 1)
    return cost


def split_groups(
    files: list[SourceFile], known: Mapping[str, FileStat], cache_sizes: Mapping[str, int]
) -> tuple[list[str], int]:
    """The groups to refresh, those for the second process first, and how many those are: the split
    whose slower side (this process also joins and writes the index) is the fastest."""
    groups = [g for g in GROUPS if any(f.tier in GROUPS[g] for f in files)]
    cost = {g: group_cost(g, files, known, cache_sizes.get(g, 0)) for g in groups}
    best: tuple[int, list[str], list[str]] | None = None
    for mask in range(1, 2 ** len(groups) - 1):
        there = [g for i, g in enumerate(groups) if mask >> i & 1]
        here = [g for g in groups if g not in there]
        slower = max(sum(cost[g] for g in there), sum(cost[g] for g in here) + AFTER_COST)
        if best is None or slower < best[0]:
            best = (slower, there, here)
    if best is None:
        return groups, len(groups)
    return [*best[1], *best[2]], len(best[1])
