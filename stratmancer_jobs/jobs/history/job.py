"""refresh-history (job id ``refresh_history_index``): the history index from ``data/processed/``.

The I/O edge of the job: scan, read what changed (``read``), plan and render (``plan``), write
(``write``), and turn the outcome into the runner's summary and metrics. Bad tier files do not stop the
run: their tiers keep their last entries, the others are updated, and the run raises PartialFailure.

Where the time goes (200,000 matches, 450 MB, 2 shared cores, ``scripts/bench_history.py``): the elo
groups are independent, so they are refreshed on both cores (``group``, ``parallel``): the costlier side
(by bytes to decode, prefixes to hash, entries to build) in a forked worker, the rest here, each
reading its files in 16 MB batches and counting each batch as it is decoded (numpy), rendering its
entries straight from the count arrays (``fastrender``) and saving its cache. Full rebuild ~0.65 s,
0.91x a one-thread msgspec decode of the same files (1,000,000 matches: 2.5 s, 0.65x); peak memory of
both processes 169 MB (1M: 214 MB). A 1% append to every tier ~0.26 s, ~0.46 s of CPU over the two
processes: importing numpy ~0.035, loading the three caches ~0.055 (most of it the seen match ids),
proving the old prefixes ~0.045 (every old byte read and XXH3-hashed), building and rendering the 13
entries ~0.085, saving the caches ~0.025, joining and writing the index, sidecar and manifest ~0.03
(fsyncs included), the rest process start-up, pickling and Python. An append to one tier carries the
other tiers' and groups' entries over from the previous index; no change ~5 ms.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from stratmancer_jobs.clock import file_stamp, utc_now
from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.errors import InputError, PartialFailure
from stratmancer_jobs.freshness import Observed
from stratmancer_jobs.jobs import BeforeCommit, JobContext, JobResult, ProgressSink, nothing_to_record
from stratmancer_jobs.jobs.history import cache, sources
from stratmancer_jobs.jobs.history.group import GroupTask, refresh_group, split_groups
from stratmancer_jobs.jobs.history.parallel import split_map
from stratmancer_jobs.jobs.history.plan import keep_previous, render_index
from stratmancer_jobs.jobs.history.read import Previous, Tally, carried, unchanged
from stratmancer_jobs.jobs.history.records import DUPLICATE, INVALID_REASONS
from stratmancer_jobs.jobs.history.tiers import GROUPS, TIERS
from stratmancer_jobs.jobs.history.write import observed, sidecar, write_outputs
from stratmancer_jobs.layout import Layout

_log = logging.getLogger(__name__)
NUMPY_BYTES = 40 * 1024 * 1024  # a run reading this much imports numpy first (records.vectorise)


@dataclass(frozen=True)
class HistoryOutcome:
    """What a refresh did; ``errors`` names each bad input file (those tiers kept their last entry)."""

    mode: str  # "unchanged", "incremental" or "full"
    tiers: tuple[str, ...]
    groups: tuple[str, ...]
    matches: int  # sum of the tiers' n_matches
    new_matches: int
    pairs: int  # sum of the tiers' pair_wr sizes
    duplicates: int
    invalid: int
    files_read: int
    bytes_read: int
    errors: tuple[str, ...] = ()
    inputs: Observed | None = None  # None: nothing was read (an unchanged run)


def _unchanged_outcome(manifest: cache.Manifest) -> HistoryOutcome:
    t = manifest.totals
    return HistoryOutcome(
        "unchanged", tuple(t.tiers), tuple(t.groups), t.matches, 0, t.pairs, t.duplicates, t.invalid, 0, 0
    )


def refresh_history(
    layout: Layout,
    thresholds: HistorySettings,
    *,
    full: bool = False,
    progress: ProgressSink | None = None,
    log: logging.Logger | None = None,
    now: datetime | None = None,
    parallel: bool = True,
    before_commit: BeforeCommit = nothing_to_record,
) -> HistoryOutcome:
    """Bring ``layout.history_index`` up to date with ``layout.processed_dir``.

    InputError (index untouched) when there is no data at all. Bad tier files do not raise: their tiers
    and groups keep their previous entries and ``HistoryOutcome.errors`` names the files.
    ``progress`` is called before the first read and after each file read.
    ``parallel=False`` keeps all the work in this process (no fork). A new index is announced through
    ``before_commit`` before it is written.
    """
    log = log or _log
    files, ignored = sources.scan(layout.processed_dir, layout.root)
    for name in ignored:
        log.debug("history: ignoring %s (not a matches_<TIER>.json or .jsonl file)", name)
    limits = [thresholds.min_champ_games, thresholds.min_pair_games, thresholds.min_counter_games]
    aside = cache.set_aside(layout.history_cache_dir, file_stamp(now or utc_now()))
    if aside is not None:
        log.warning("%s", aside)
    manifest = cache.load_manifest(layout.history_manifest)
    if not full and manifest is not None and unchanged(manifest, files, limits, layout):
        return _unchanged_outcome(manifest)

    known = manifest.files if manifest is not None and not full else {}
    stale = [f for f in files if known.get(f.name) != f.stat]
    stale_bytes = sum(f.stat.size for f in stale)
    tally = Tally(progress, len(stale), stale_bytes)
    tally.start()
    if stale_bytes >= NUMPY_BYTES:
        import numpy  # noqa: F401  # before the fork: every file of a large read takes the numpy path
    kept = {} if full else carried(manifest, files, limits, layout)  # entries whose files are unchanged
    task = GroupTask(layout, files, thresholds, full, kept)
    caches = {g: _size(layout.history_group_cache(g)) for g in GROUPS} if not full else {}
    order = split_groups(files, known, caches)
    done = {
        d.group: d
        for d in split_map(
            partial(refresh_group, task),
            order[0],
            parallel=parallel,
            cut=order[1],
            relay=lambda message: tally.update(*message),
        )
    }
    for group in GROUPS:
        if group in done:
            for level, message in done[group].logs:
                log.log(level, "%s", message)
            for path, counts in done[group].invalid.items():
                reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
                log.info("history: %s: %d invalid records skipped (%s)", path, counts.total(), reasons)

    errors = [msg for d in done.values() for msg in d.errors.values()]
    jobs = keep_previous(
        {key: job for group in GROUPS if group in done for key, job in done[group].jobs.items()},
        Previous(layout.history_index, log).entry,
    )
    skipped = sum((c for d in done.values() for c in d.tier_skipped.values()), Counter[str]())
    if not jobs:
        if errors:
            raise InputError("no usable data: " + "; ".join(errors))
        raise InputError(
            f"no data: no valid match records in {layout.processed_dir} "
            f"({sum(skipped.values())} records skipped)"
        )
    data, sizes = render_index(jobs)

    tiers = tuple(t for t in TIERS if t in sizes)
    groups = tuple(g for g in GROUPS if g in sizes)
    matches = sum(sizes[t]["n_matches"] for t in tiers)
    pairs = sum(sizes[t]["pairs"] for t in tiers)
    duplicates = skipped[DUPLICATE]
    invalid = sum(skipped[r] for r in INVALID_REASONS)
    previous_total = manifest.totals.matches if manifest is not None else 0
    totals = cache.Totals(list(tiers), list(groups), matches, pairs, duplicates, invalid)
    document = sidecar(done, files, sizes, skipped, limits, errors, now)
    unsaved = write_outputs(layout, done, files, data, document, limits, totals, errors, before_commit)
    if unsaved is not None:
        log.warning("%s", unsaved)
    mode = "full" if full or all(d.rebuilt for d in done.values()) else "incremental"
    return HistoryOutcome(
        mode,
        tiers,
        groups,
        matches,
        max(0, matches - previous_total),
        pairs,
        duplicates,
        invalid,
        sum(d.files for d in done.values()),
        sum(d.nbytes for d in done.values()),
        tuple(errors),
        observed(done),
    )


def _plural(n: int, word: str, many: str = "") -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {many or word + 's'}"


def summarize(outcome: HistoryOutcome, seconds: float) -> str:
    """One line, e.g. ``History index refreshed in 2.34s: 10 tiers + 3 groups, 200,000 matches ...``."""
    verb = "unchanged" if outcome.mode == "unchanged" else "refreshed"
    skipped = outcome.duplicates + outcome.invalid
    line = (
        f"History index {verb} in {seconds:.2f}s: {_plural(len(outcome.tiers), 'tier')} + "
        f"{_plural(len(outcome.groups), 'group')}, {_plural(outcome.matches, 'match', 'matches')} "
        f"({outcome.new_matches:,} new), {_plural(outcome.pairs, 'champion pair')}, "
        f"{_plural(skipped, 'record')} skipped "
        f"({outcome.duplicates:,} duplicate, {outcome.invalid:,} invalid)"
    )
    if outcome.errors:
        line += f"; {_plural(len(outcome.errors), 'bad file')} kept their last entries"
    return line


def run(ctx: JobContext) -> JobResult:
    """Refresh the index; ``--full`` (``options["full"]``) ignores the incremental cache.

    A bad tier file raises PartialFailure after the other tiers were updated (summary, metrics and the
    index's change kept).
    """
    started = time.monotonic()
    outcome = refresh_history(
        ctx.settings.layout,
        ctx.settings.history,
        full=bool(ctx.options.get("full", False)),
        progress=ctx.progress,
        log=ctx.log,
        now=ctx.now,
        before_commit=ctx.before_commit,
    )
    metrics: dict[str, float | str] = {
        "matches_indexed": outcome.matches,
        "new_matches": outcome.new_matches,
        "tiers": len(outcome.tiers),
        "groups": len(outcome.groups),
        "champion_pairs": outcome.pairs,
        "records_skipped_duplicate": outcome.duplicates,
        "records_skipped_invalid": outcome.invalid,
        "files_read": outcome.files_read,
        "bytes_read": outcome.bytes_read,
        "mode": outcome.mode,
    }
    summary = summarize(outcome, time.monotonic() - started)
    if outcome.errors:  # the other tiers' update was written (and announced): its hooks still run
        error = "bad tier file(s), their tiers kept their last entries: " + "; ".join(outcome.errors)
        raise PartialFailure(error, summary=summary, metrics=metrics, inputs=outcome.inputs)
    return JobResult(summary=summary, metrics=metrics, inputs=outcome.inputs)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
