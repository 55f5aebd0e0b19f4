"""Writing a refresh's results: the index and the sidecar, then the manifest.

Order of writes: the group caches (by each group's refresh, each self-consistent on its own), the
index and the sidecar (side by side, so that their fsyncs overlap), then the manifest that vouches for
them; a crash in between leaves a manifest that no longer matches, so the next run re-checks every file
against the caches instead of trusting "nothing changed". Every file goes through ``atomicio``.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import xxhash

from stratmancer_jobs.atomicio import atomic_write_bytes, atomic_write_json
from stratmancer_jobs.errors import StorageError
from stratmancer_jobs.freshness import Observed, ReadShare
from stratmancer_jobs.jobs import BeforeCommit, Change, nothing_to_record
from stratmancer_jobs.jobs.history import cache
from stratmancer_jobs.jobs.history.aggregate import DIGITS
from stratmancer_jobs.jobs.history.filestat import FileStat
from stratmancer_jobs.jobs.history.group import GroupDone
from stratmancer_jobs.jobs.history.sources import SourceFile
from stratmancer_jobs.jobs.history.tiers import GROUPS, TIER_GROUP
from stratmancer_jobs.layout import Layout

LIMIT_NAMES = ("min_champ_games", "min_pair_games", "min_counter_games")


def counted_stat(done: dict[str, GroupDone], source: SourceFile) -> FileStat:
    """The stat of what was counted for this file (taken when it was read, or at the scan)."""
    checkpoint = done[TIER_GROUP[source.tier]].checkpoints.get(source.name)
    return source.stat if checkpoint is None else checkpoint.stat


def sidecar(
    done: dict[str, GroupDone],
    files: list[SourceFile],
    entries: dict[str, dict[str, int]],
    skipped: Counter[str],
    limits: list[int],
    errors: list[str],
    now: datetime | None,
) -> dict[str, Any]:
    """The sidecar document: games counts, skip reasons and input fingerprints, beside the index."""
    tiers: dict[str, Any] = {}
    for source in files:
        group = done[TIER_GROUP[source.tier]]
        info = tiers.setdefault(source.tier, {"files": {}, "skipped": {}})
        info["skipped"] = dict(sorted(group.tier_skipped[source.tier].items()))
        stat = counted_stat(done, source)
        info["files"][source.name] = {
            "size": stat.size,
            "mtime_ns": stat.mtime_ns,
            "fingerprint": stat.fingerprint,
            "error": group.errors.get(source.name),
        }
    return {
        "generated_at": now.isoformat() if now is not None else None,
        "freshness": freshness_table(done),
        "thresholds": dict(zip(LIMIT_NAMES, limits, strict=True)),
        "rounding_digits": DIGITS,
        "entries": dict(sorted(entries.items())),
        "tiers": tiers,
        "skipped": dict(sorted(skipped.items())),
        "errors": errors,
    }


def freshness_table(done: dict[str, GroupDone]) -> dict[str, Any]:
    """The sidecar's freshness table: the newest ``game_creation`` (epoch ms) per elo group and tier,
    matches per patch per elo group, and each tier's last read (records, invalid by reason)."""
    groups = [g for g in GROUPS if g in done]
    return {
        "newest_game_creation_ms": {k: v for g in groups for k, v in done[g].fresh.newest.items()},
        "matches_per_patch": {g: done[g].fresh.patches for g in groups},
        "last_read": {
            tier: {"records": records, "invalid": invalid}
            for g in groups
            for tier, (records, invalid) in done[g].fresh.read.items()
        },
    }


def observed(done: dict[str, GroupDone]) -> Observed:
    """What the run saw, for the freshness checks: data age per group and tier, each tier's last read."""
    table = freshness_table(done)
    read = {
        tier: ReadShare(
            r["records"],
            sum(r["invalid"].values()),
            max(sorted(r["invalid"]), key=r["invalid"].__getitem__) if r["invalid"] else None,
        )
        for tier, r in table["last_read"].items()
    }
    return Observed(newest_ms=table["newest_game_creation_ms"], read=read)


def _differs(path: Path, data: bytes) -> bool:
    """True unless ``path`` already holds exactly ``data`` (the index is rewritten only then)."""
    try:
        return not (path.stat().st_size == len(data) and path.read_bytes() == data)
    except OSError:
        return True


def write_outputs(
    layout: Layout,
    done: dict[str, GroupDone],
    files: list[SourceFile],
    data: bytes,
    document: dict[str, Any],
    limits: list[int],
    totals: cache.Totals,
    errors: list[str],
    before_commit: BeforeCommit = nothing_to_record,
) -> str | None:
    """Write the index and the sidecar, then the manifest (or drop it); the group caches are saved by
    each group's refresh (``group``). An index whose bytes change is announced through
    ``before_commit`` before anything is written. Returns the warning when the manifest could not be
    written or dropped (the index is written: the next run only re-checks its files)."""
    index_changes = _differs(layout.history_index, data)
    if index_changes:
        before_commit(Change((str(layout.history_index),)))
    with ThreadPoolExecutor(max_workers=1) as pool:
        sidecar_written = pool.submit(atomic_write_json, layout.history_sidecar, document)
        if index_changes:
            atomic_write_bytes(layout.history_index, data)
        sidecar_written.result()
    if errors:
        try:
            layout.history_manifest.unlink()  # a bad file must be looked at again next run
        except FileNotFoundError:
            pass
        except OSError as exc:
            return f"history: the cache manifest {layout.history_manifest} was not removed ({exc.strerror})"
        return None
    st = layout.history_index.stat()
    stats = {f.name: counted_stat(done, f) for f in files}
    manifest = cache.Manifest(
        cache.FORMAT, limits, stats, st.st_size, st.st_mtime_ns, xxhash.xxh3_64_intdigest(data), totals
    )
    try:
        cache.save_manifest(layout.history_manifest, manifest)
    except StorageError as exc:
        return f"history: the cache manifest was not saved ({exc}); the index is written"
    return None
