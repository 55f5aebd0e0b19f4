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

from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.jobs.history import cache
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


@dataclass
class GroupDone:
    """One group after its refresh: what the index, the sidecar, the manifest and the log need."""

    group: str
    checkpoints: dict[str, Checkpoint]  # what was counted of each file
    errors: dict[str, str]  # file name -> why it is bad (its tier keeps its last entry)
    changed: bool
    rebuilt: bool
    jobs: dict[str, Job]  # the group's and its tiers' entries
    tier_skipped: dict[str, Counter[str]]  # records skipped per reason, per tier (the sidecar)
    skipped: Counter[str]  # the same, summed over the group's tiers with a file
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
    jobs, skipped = plan_group(run, group, present, task.thresholds, task.carried)
    if run.changed and not run.errors:
        cache.save_group(task.layout.history_group_cache(group), run.state, run.checkpoints)
    return GroupDone(
        group,
        run.checkpoints,
        run.errors,
        run.changed,
        run.rebuilt,
        jobs,
        {tier: run.state.tiers[tier].skipped for tier in GROUPS[group]},
        skipped,
        reader.files,
        reader.nbytes,
        reader.skipped,
        log.records,
    )
