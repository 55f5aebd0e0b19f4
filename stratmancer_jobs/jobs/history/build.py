"""Refreshing the history index: plan from stats and the cache, read what changed, count, write.

Each elo group is an independent unit (match_id deduplication never crosses groups): it is either
unchanged, extended with the records appended to its files, or rebuilt from its files when the cache
is missing / invalid, a file was rewritten rather than appended, or an appended record would have come
first in canonical order. Whatever the path, the counts are those of a full rebuild, so the index
bytes are identical.

Order of writes: the index, the sidecar and the group caches (each self-consistent), then the
manifest that vouches for them; a crash in between leaves a manifest that no longer matches, so the
next run re-checks every file against the caches instead of trusting "nothing changed".
Where the time goes (200,000 matches, 450 MB): full rebuild ~1.2 s (msgspec decode ~0.35 s, counting
~0.5 s, entries + rendering ~0.15 s on two cores); a 1% append ~0.3 s (CRC of every counted byte,
caches, entries); no change ~3 ms (stats and 128 KiB per file). See ``scripts/bench_history.py``.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

import msgspec

from stratmancer_jobs.atomicio import atomic_write_bytes, atomic_write_json
from stratmancer_jobs.config import HistorySettings
from stratmancer_jobs.errors import InputError
from stratmancer_jobs.jobs.history import cache, sources
from stratmancer_jobs.jobs.history.aggregate import (
    DIGITS,
    Entry,
    build_entry,
    entry_stats,
    is_entry,
    join_fragments,
    render,
    render_entry,
)
from stratmancer_jobs.jobs.history.cache import Checkpoint
from stratmancer_jobs.jobs.history.counts import Counts, GroupState, Reorder
from stratmancer_jobs.jobs.history.parallel import split_map
from stratmancer_jobs.jobs.history.records import (
    DUPLICATE,
    INVALID_REASONS,
    LINE_ENDS,
    Decoded,
    RecordsError,
    decode_array,
    decode_lines,
)
from stratmancer_jobs.jobs.history.sources import Buf, FileStat, SourceFile
from stratmancer_jobs.jobs.history.tiers import GROUPS, TIER_GROUP, TIERS
from stratmancer_jobs.layout import Layout

_log = logging.getLogger(__name__)
_LIMIT_NAMES = ("min_champ_games", "min_pair_games", "min_counter_games")


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


class _Rebuild(Exception):
    """A signal: this group cannot be extended, rebuild it from its files."""


@dataclass
class _GroupRun:
    state: GroupState
    checkpoints: dict[str, Checkpoint]
    errors: dict[str, str] = field(default_factory=dict)
    changed: bool = False
    rebuilt: bool = False


@dataclass
class _Reader:
    """Opens input files, counting files and bytes and advancing the progress bar."""

    advance: Callable[[int], None] | None = None
    files: int = 0
    nbytes: int = 0
    # invalid records found in each file read by this run (its last pass), to report with the file
    skipped: dict[Path, Counter[str]] = field(default_factory=dict)

    def note(self, source: SourceFile, decoded: Decoded) -> None:
        if decoded.skipped:
            self.skipped[source.path] = Counter(decoded.skipped)
        else:
            self.skipped.pop(source.path, None)

    @contextlib.contextmanager
    def open(self, source: SourceFile) -> Iterator[tuple[Buf, FileStat]]:
        with sources.mapped(source) as (buf, stat):
            try:
                yield buf, stat
            finally:
                self.count(stat.size)

    def count(self, size: int) -> None:
        self.files += 1
        self.nbytes += size
        if self.advance is not None:
            self.advance(size)


def _rstrip_at(buf: Buf, end: int) -> int:
    """``len(buf[:end].rstrip())`` without copying the buffer."""
    while end > 0 and buf[end - 1] in b" \t\r\n":
        end -= 1
    return end


# What may follow a complete array element: whitespace, ``,``, ``]`` (or nothing yet).
_AFTER_ELEMENT: Final = frozenset((b"", b" ", b"\t", b"\r", b"\n", b",", b"]"))


def _array_end(buf: Buf) -> int:
    """Offset just past the array's last element (or its ``[``): new elements go after it."""
    return _rstrip_at(buf, _rstrip_at(buf, len(buf)) - 1)


def _decode_file(
    source: SourceFile, buf: Buf, stat: FileStat, previous: Checkpoint | None, base: int = 0
) -> tuple[Decoded, Checkpoint]:
    """Decode the records after ``previous`` (all of them when None) and the new checkpoint.

    ``buf`` holds the file from offset ``base`` (0: the whole file; ``previous.consumed``: the part
    after the checkpoint). RecordsError when the file is not valid JSON (the collector caught
    mid-write); _Rebuild when the new bytes cannot simply be appended to what was counted.
    """
    start = (previous.consumed if previous is not None else 0) - base
    crc = previous.crc if previous is not None else 0
    if source.kind == "jsonl":
        follows = buf[start : start + 1]
        if previous is not None and previous.unterminated and follows not in (b"", *LINE_ENDS):
            raise _Rebuild(f"{source.name}: text appended to an unterminated line")
        lines = decode_lines(buf, start)
        checkpoint = Checkpoint(
            stat.size,
            stat.mtime_ns,
            stat.fingerprint,
            base + lines.end,
            sources.crc_range(buf, start, lines.end, crc),
            unterminated=lines.unterminated,
            ctime_ns=stat.ctime_ns,
            ino=stat.ino,
        )
        return lines.decoded, checkpoint
    if previous is None:
        decoded = decode_array(buf)
    else:
        # The checkpoint sits just past the old last element; a number (``5``) or a literal there may
        # have been extended in place by the rewrite (``567``): only a delimiter proves it complete.
        if previous.elements and buf[start : start + 1] not in _AFTER_ELEMENT:
            raise _Rebuild(f"{source.name}: its last counted element was extended")
        rest = buf[start:].lstrip()
        if rest[:1] == b"]":
            if rest[1:].strip():
                raise RecordsError("not valid JSON (trailing characters after the array)")
            decoded = Decoded()
        elif previous.elements:
            if rest[:1] != b",":
                raise RecordsError("not valid JSON (expected ',' or ']' after the last element)")
            decoded = decode_array(b"[" + rest[1:])
        else:
            decoded = decode_array(b"[" + rest)
    end = _array_end(buf)
    had = previous is not None and previous.elements
    elements = had or bool(decoded.records) or any(decoded.skipped.values())
    crc = sources.crc_range(buf, start, end, crc)
    return decoded, Checkpoint(
        stat.size,
        stat.mtime_ns,
        stat.fingerprint,
        base + end,
        crc,
        elements=elements,
        ctime_ns=stat.ctime_ns,
        ino=stat.ino,
    )


def _identity(x: Checkpoint | cache.FileEntry | FileStat) -> tuple[int, int, int, int, str]:
    """What the skip rule trusts: a file with the same five values is taken as unchanged."""
    return (x.size, x.mtime_ns, x.ctime_ns, x.ino, x.fingerprint)


def _same(checkpoint: Checkpoint, stat: FileStat) -> bool:
    return _identity(checkpoint) == _identity(stat)


def _extend(
    state: GroupState, checkpoints: dict[str, Checkpoint], files: list[SourceFile], reader: _Reader
) -> _GroupRun:
    run = _GroupRun(state, dict(checkpoints))
    changed = [f for f in files if not _same(checkpoints[f.name], f.stat)]
    if not changed:
        return run
    run.changed = True

    def read(source: SourceFile) -> sources.Appended | str:
        if source.error is not None:
            return source.error
        try:
            return sources.read_appended(source, checkpoints[source.name].consumed)
        except sources.ReadError as exc:
            return str(exc)

    # Checking the counted prefixes reads every byte; reads and zlib release the GIL: use both cores.
    if len(changed) > 1:
        with ThreadPoolExecutor(max_workers=2) as pool:
            appended = list(pool.map(read, changed))
    else:
        appended = [read(changed[0])]
    for source, found in zip(changed, appended, strict=True):
        if isinstance(found, str):  # unreadable: like a corrupt file, its tier keeps its last entry
            run.errors[source.name] = found
            continue
        reader.count(found.stat.size)
        previous = checkpoints[source.name]
        if found.prefix_crc != previous.crc:
            raise _Rebuild(f"{source.name} was rewritten, not appended to")
        try:
            decoded, checkpoint = _decode_file(source, found.tail, found.stat, previous, previous.consumed)
        except RecordsError as exc:
            run.errors[source.name] = f"{source.path}: {exc}"
            continue
        except MemoryError:
            run.errors[source.name] = sources.read_error(source.path, MemoryError(), found.stat.size)
            continue
        reader.note(source, decoded)
        try:
            state.add(source.tier, source.kind, decoded.records, decoded.skipped)
        except Reorder as exc:
            raise _Rebuild(f"{source.name}: match {exc} was counted from a later file") from None
        run.checkpoints[source.name] = checkpoint
    return run


def _rebuild(group: str, files: list[SourceFile], reader: _Reader) -> _GroupRun:
    run = _GroupRun(GroupState(group), {}, changed=True, rebuilt=True)
    for source in files:
        if source.error is not None:
            run.errors[source.name] = source.error
            continue
        try:
            with reader.open(source) as (buf, stat):
                decoded, checkpoint = _decode_file(source, buf, stat, None)
        except RecordsError as exc:
            run.errors[source.name] = f"{source.path}: {exc}"
            continue
        except sources.ReadError as exc:  # unreadable: like a corrupt file, its tier keeps its last entry
            run.errors[source.name] = str(exc)
            continue
        except MemoryError:
            run.errors[source.name] = sources.read_error(source.path, MemoryError(), source.stat.size)
            continue
        reader.note(source, decoded)
        run.state.add(source.tier, source.kind, decoded.records, decoded.skipped)
        run.checkpoints[source.name] = checkpoint
    return run


def _process_group(
    group: str, files: list[SourceFile], cache_file: Path, full: bool, reader: _Reader, log: logging.Logger
) -> _GroupRun:
    if not full:
        loaded = cache.load_group(cache_file, group)
        if loaded is None:
            if cache_file.exists():
                log.warning("history: the cache of group %s is invalid, rebuilding the group", group)
            else:
                log.debug("history: no cache for group %s yet, building it", group)
        elif set(loaded[1]) != {f.name for f in files}:
            log.info("history: the files of group %s changed, rebuilding it", group)
        else:
            try:
                return _extend(loaded[0], loaded[1], files, reader)
            except _Rebuild as why:
                log.info("history: rebuilding group %s: %s", group, why)
    return _rebuild(group, files, reader)


def _unchanged(
    manifest: cache.Manifest, files: list[SourceFile], thresholds: list[int], layout: Layout
) -> bool:
    """Nothing to do: every input has the stats the manifest vouches for and both outputs are there."""
    index = layout.history_index
    current = {f.name: _entry(f.stat) for f in files}
    if any(f.error is not None for f in files):
        return False
    if manifest.thresholds != thresholds or manifest.files != current:
        return False
    try:
        st = index.stat()
        layout.history_sidecar.stat()
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (manifest.index_size, manifest.index_mtime_ns)


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, files: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over files and bytes read, on stderr, only when asked (the CLI asks on a TTY)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"history: 0/{files} files", total=total)
        done = 0

        def advance(nbytes: int) -> None:
            nonlocal done
            done += 1
            bar.update(task, advance=nbytes, description=f"history: {done}/{files} files")

        yield advance


def _unchanged_outcome(manifest: cache.Manifest) -> HistoryOutcome:
    t = manifest.totals
    return HistoryOutcome(
        "unchanged", tuple(t.tiers), tuple(t.groups), t.matches, 0, t.pairs, t.duplicates, t.invalid, 0, 0
    )


def _entry(stat: FileStat | Checkpoint) -> cache.FileEntry:
    return cache.FileEntry(stat.size, stat.mtime_ns, stat.fingerprint, stat.ctime_ns, stat.ino)


def _checkpoint_entry(runs: dict[str, _GroupRun], source: SourceFile) -> cache.FileEntry:
    """The stat of what was counted for this file (taken when it was read, or at the scan)."""
    checkpoint = runs[TIER_GROUP[source.tier]].checkpoints.get(source.name)
    if checkpoint is None:
        return _entry(source.stat)
    return _entry(checkpoint)


class _Previous:
    """The index as the last run left it (for tiers whose file is bad), loaded only when needed."""

    def __init__(self, path: Path, log: logging.Logger):
        self.path, self.log = path, log
        self._data: dict[str, Any] | None = None

    def entry(self, key: str) -> Entry | None:
        if self._data is None:
            try:
                data = msgspec.json.decode(self.path.read_bytes())
            except FileNotFoundError:
                data = {}
            except (OSError, msgspec.DecodeError) as exc:
                self.log.warning("history: cannot load the previous index %s (%s)", self.path, exc)
                data = {}
            self._data = data if isinstance(data, dict) else {}
        value = self._data.get(key)
        return value if is_entry(value) else None


# An entry to write: kept as it was (a tier with a bad file), or computed from counts (in any process).
_Job = Entry | Callable[[], tuple[Counts, list[int]]]


def _plan(
    runs: dict[str, _GroupRun], files: list[SourceFile], previous: _Previous
) -> tuple[dict[str, _Job], Counter[str]]:
    """What goes in the new index: the previous entry of every tier (and group) with a bad file."""
    jobs: dict[str, _Job] = {}
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
                kept = previous.entry(tier)
                if kept is not None:
                    jobs[tier] = kept
            elif tier_state.counts.n:
                jobs[tier] = partial(_tier_counts, state, tier)
        if bad_tiers:
            kept = previous.entry(group)
            if kept is not None:
                jobs[group] = kept
        elif any(t.counts.n for t in state.tiers.values()):
            jobs[group] = partial(_group_counts, state)
    return jobs, skipped


def _tier_counts(state: GroupState, tier: str) -> tuple[Counts, list[int]]:
    return state.tiers[tier].counts, state.keys


def _group_counts(state: GroupState) -> tuple[Counts, list[int]]:
    return state.group_counts(), state.keys


def _entry_of(job: _Job, thresholds: HistorySettings) -> Entry:
    if callable(job):
        counts, keys = job()
        return build_entry(counts, keys, thresholds)
    return job


def _render(
    jobs: dict[str, _Job], thresholds: HistorySettings, parallel: bool
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


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write_bytes(path, data)


def _write_sidecar(
    layout: Layout,
    runs: dict[str, _GroupRun],
    files: list[SourceFile],
    entries: dict[str, dict[str, int]],
    skipped: Counter[str],
    limits: list[int],
    errors: list[str],
    now: datetime | None,
) -> None:
    tiers: dict[str, Any] = {}
    for source in files:
        run = runs[TIER_GROUP[source.tier]]
        info = tiers.setdefault(source.tier, {"files": {}, "skipped": {}})
        info["skipped"] = dict(sorted(run.state.tiers[source.tier].skipped.items()))
        stat = _checkpoint_entry(runs, source)
        info["files"][source.name] = {
            "size": stat.size,
            "mtime_ns": stat.mtime_ns,
            "fingerprint": stat.fingerprint,
            "error": run.errors.get(source.name),
        }
    sidecar = {
        "generated_at": now.isoformat() if now is not None else None,
        "thresholds": dict(zip(_LIMIT_NAMES, limits, strict=True)),
        "rounding_digits": DIGITS,
        "entries": dict(sorted(entries.items())),
        "tiers": tiers,
        "skipped": dict(sorted(skipped.items())),
        "errors": errors,
    }
    atomic_write_json(layout.history_sidecar, sidecar)


def refresh_history(
    layout: Layout,
    thresholds: HistorySettings,
    *,
    full: bool = False,
    progress: bool = False,
    log: logging.Logger | None = None,
    now: datetime | None = None,
    parallel: bool = True,
) -> HistoryOutcome:
    """Bring ``layout.history_index`` up to date with ``layout.processed_dir``.

    InputError (index untouched) when there is no data at all. Bad tier files do not raise: their tiers
    and groups keep their previous entries and ``HistoryOutcome.errors`` names the files.
    ``parallel=False`` keeps all the work in this process (no fork).
    """
    log = log or _log
    files, ignored = sources.scan(layout.processed_dir)
    for name in ignored:
        log.debug("history: ignoring %s (not a matches_<TIER>.json or .jsonl file)", name)
    limits = [thresholds.min_champ_games, thresholds.min_pair_games, thresholds.min_counter_games]
    manifest = cache.load_manifest(layout.history_manifest)
    if not full and manifest is not None and _unchanged(manifest, files, limits, layout):
        return _unchanged_outcome(manifest)

    known = manifest.files if manifest is not None and not full else {}
    stale = [f for f in files if known.get(f.name) != _entry(f.stat)]
    runs: dict[str, _GroupRun] = {}
    with _progress_bar(progress, sum(f.stat.size for f in stale), len(stale)) as advance:
        reader = _Reader(advance)
        for group, members in GROUPS.items():
            group_files = [f for f in files if f.tier in members]
            if group_files:
                runs[group] = _process_group(
                    group, group_files, layout.history_group_cache(group), full, reader, log
                )
    for path, counts in reader.skipped.items():
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
        log.info("history: %s: %d invalid records skipped (%s)", path, counts.total(), reasons)

    errors = [msg for run in runs.values() for msg in run.errors.values()]
    previous = _Previous(layout.history_index, log)
    jobs, skipped = _plan(runs, files, previous)
    if not jobs:
        if errors:
            raise InputError("no usable data: " + "; ".join(errors))
        raise InputError(
            f"no data: no valid match records in {layout.processed_dir} "
            f"({sum(skipped.values())} records skipped)"
        )
    data, sizes = _render(jobs, thresholds, parallel)

    tiers = tuple(t for t in TIERS if t in sizes)
    groups = tuple(g for g in GROUPS if g in sizes)
    matches = sum(sizes[t]["n_matches"] for t in tiers)
    pairs = sum(sizes[t]["pairs"] for t in tiers)
    duplicates = skipped[DUPLICATE]
    invalid = sum(skipped[r] for r in INVALID_REASONS)
    previous_total = manifest.totals.matches if manifest is not None else 0
    totals = cache.Totals(list(tiers), list(groups), matches, pairs, duplicates, invalid)
    # The index, the sidecar and the group caches are independent files (each self-consistent): write
    # them side by side so that their fsyncs overlap. The manifest, which vouches for all of them,
    # comes last.
    with ThreadPoolExecutor(max_workers=3) as pool:
        writes = [
            pool.submit(_write_if_changed, layout.history_index, data),
            pool.submit(_write_sidecar, layout, runs, files, sizes, skipped, limits, errors, now),
        ]
        writes += [
            pool.submit(cache.save_group, layout.history_group_cache(group), run.state, run.checkpoints)
            for group, run in runs.items()
            if run.changed and not run.errors
        ]
        for write in writes:
            write.result()
    if errors:
        with contextlib.suppress(FileNotFoundError):
            layout.history_manifest.unlink()  # a bad file must be looked at again next run
    else:
        st = layout.history_index.stat()
        stats = {f.name: _checkpoint_entry(runs, f) for f in files}
        manifest = cache.Manifest(
            cache.FORMAT, limits, stats, st.st_size, st.st_mtime_ns, zlib.crc32(data), totals
        )
        cache.save_manifest(layout.history_manifest, manifest)
    mode = "full" if full or all(run.rebuilt for run in runs.values()) else "incremental"
    return HistoryOutcome(
        mode,
        tiers,
        groups,
        matches,
        max(0, matches - previous_total),
        pairs,
        duplicates,
        invalid,
        reader.files,
        reader.nbytes,
        tuple(errors),
    )
