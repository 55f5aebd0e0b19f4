"""What the incremental path keeps between runs, stored crash-safely and validated on load.

* ``manifest.json``: the inputs' stats and fingerprints, the index's stat and the thresholds of the
  last successful run -- enough to see "nothing changed" without opening anything else.
* ``group_<GROUP>.bin``: one elo group's counters, seen match ids (one msgpack map, decoded straight
  into the dict the counting uses) and file checkpoints (msgpack), behind
  a BLAKE2b digest of the payload.

Each file is written with ``atomicio`` and is self-consistent on its own; a missing, stale, corrupt or
unknown-format file is reported as None and the caller rebuilds from the inputs, never trusting it.
The cache only saves time: one that cannot be read or written (a file where its directory should be,
a full disk) is warned about and the index is written all the same.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from array import array
from collections import Counter
from pathlib import Path
from typing import Final

import msgspec

from stratmancer_jobs.atomicio import atomic_write_bytes
from stratmancer_jobs.jobs.history.counts import Counts, GroupState, MatchId, TierCounts
from stratmancer_jobs.jobs.history.filestat import FileStat
from stratmancer_jobs.jobs.history.incremental import Checkpoint
from stratmancer_jobs.jobs.history.records import ALL_REASONS
from stratmancer_jobs.jobs.history.tiers import GROUPS, KINDS, TIERS

FORMAT: Final = 5  # 2: ctime and inode in checkpoints and file entries; 3: XXH3 prefix digests;
# 4: seen ids as one msgpack map (decoded straight into the dict, no list + ranks + zip);
# 5: the freshness figures (newest game_creation, matches per patch, the last read's invalid share)
_DIGEST: Final = 32


class _CheckpointBlob(msgspec.Struct, frozen=True):
    """A Checkpoint as stored (format 3): its stat flattened, in this field order."""

    size: int
    mtime_ns: int
    fingerprint: str
    consumed: int
    digest: int
    elements: bool = False
    unterminated: bool = False
    ctime_ns: int = 0
    ino: int = 0


def _checkpoint_blob(c: Checkpoint) -> _CheckpointBlob:
    s = c.stat
    return _CheckpointBlob(
        s.size, s.mtime_ns, s.fingerprint, c.consumed, c.digest, c.elements, c.unterminated, s.ctime_ns, s.ino
    )


def _checkpoint(b: _CheckpointBlob) -> Checkpoint:
    stat = FileStat(b.size, b.mtime_ns, b.fingerprint, b.ctime_ns, b.ino)
    return Checkpoint(stat, b.consumed, b.digest, elements=b.elements, unterminated=b.unterminated)


class Totals(msgspec.Struct, frozen=True):
    tiers: list[str]
    groups: list[str]
    matches: int
    pairs: int
    duplicates: int
    invalid: int


class Manifest(msgspec.Struct, frozen=True):
    format: int
    thresholds: list[int]
    files: dict[str, FileStat]
    index_size: int
    index_mtime_ns: int
    index_digest: int
    totals: Totals


class _CountsBlob(msgspec.Struct, array_like=True):
    n: int
    cw: list[int]
    cl: list[int]
    pw: list[list[int]]
    pl: list[list[int]]
    vs: list[list[int]]


def _to_blob(counts: Counts) -> _CountsBlob:
    return _CountsBlob(counts.n, counts.cw, counts.cl, counts.pw, counts.pl, counts.vs)


def _from_blob(blob: _CountsBlob, size: int) -> Counts:
    counts = Counts(blob.n, blob.cw, blob.cl, blob.pw, blob.pl, blob.vs)
    counts.check(size)
    return counts


class _TierBlob(msgspec.Struct, frozen=True):
    counts: _CountsBlob
    skipped: dict[str, int]
    extra_ids: list[str | int]
    extra_kinds: bytes
    newest: int | None = None
    patches: dict[str, int] = {}
    read: int = 0
    read_invalid: dict[str, int] = {}


class _GroupBlob(msgspec.Struct, frozen=True):
    format: int
    group: str
    keys: list[int]
    tiers: dict[str, _TierBlob]
    excluded: _CountsBlob
    seen: dict[str | int, int]  # match_id -> rank of the counted copy
    files: dict[str, _CheckpointBlob]
    excluded_patches: dict[str, int] = {}


def set_aside(directory: Path, stamp: str) -> str | None:
    """Move anything at ``directory`` that is not a real directory (a file, a symlink, a FIFO) out of
    the way, renamed beside it, so that the cache can be rebuilt; the warning to log, or None."""
    try:
        if not directory.is_symlink() and (directory.is_dir() or not directory.exists()):
            return None
        aside = directory.with_name(f"{directory.name}.corrupt-{stamp}")
        directory.rename(aside)
    except OSError as exc:
        return f"history: the cache {directory} is not a directory and cannot be moved aside ({exc.strerror})"
    return f"history: the cache {directory} was not a directory; moved aside to {aside.name}, rebuilding it"


def read_regular(path: Path, *, follow: bool = False) -> bytes:
    """The bytes of a file the history job wrote itself (a cache file, the index), read only when it
    is a regular file, without blocking and, unless ``follow``, without following a symlink: a FIFO
    planted there must not hang the run, nor a link to /dev/zero fill the memory. OSError for
    anything else, which the callers treat as no cache (or no previous index)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return handle.read()


def load_manifest(path: Path) -> Manifest | None:
    try:
        manifest = msgspec.json.decode(read_regular(path), type=Manifest)
    except (OSError, msgspec.MsgspecError):
        return None
    return manifest if manifest.format == FORMAT else None


def save_manifest(path: Path, manifest: Manifest) -> None:
    atomic_write_bytes(path, msgspec.json.format(msgspec.json.encode(manifest)))


def _bytes_array(values: list[int]) -> bytes:
    return array("b", values).tobytes()


def _array_bytes(blob: bytes) -> list[int]:
    out = array("b")
    out.frombytes(blob)
    return out.tolist()


def encode_group(state: GroupState, files: dict[str, Checkpoint]) -> bytes:
    """Digest + msgpack payload of a group's state."""
    for tier in state.tiers.values():
        tier.counts.resize(len(state.keys))
    state.excluded.resize(len(state.keys))
    tiers = {
        name: _TierBlob(
            counts=_to_blob(tier.counts),
            skipped=dict(sorted(tier.skipped.items())),
            extra_ids=list(tier.extra_seen),
            extra_kinds=_bytes_array(list(tier.extra_seen.values())),
            newest=tier.newest,
            patches=dict(tier.patches),
            read=tier.read,
            read_invalid=dict(tier.read_invalid),
        )
        for name, tier in state.tiers.items()
    }
    blob = _GroupBlob(
        format=FORMAT,
        group=state.group,
        keys=state.keys,
        tiers=tiers,
        excluded=_to_blob(state.excluded),
        seen=state.seen,
        files={name: _checkpoint_blob(c) for name, c in files.items()},
        excluded_patches=dict(state.excluded_patches),
    )
    payload = msgspec.msgpack.encode(blob)
    return hashlib.blake2b(payload, digest_size=_DIGEST).digest() + payload


def decode_group(data: bytes, group: str) -> tuple[GroupState, dict[str, Checkpoint]]:
    """Inverse of ``encode_group``; ValueError on any inconsistency."""
    digest, payload = data[:_DIGEST], data[_DIGEST:]
    if hashlib.blake2b(payload, digest_size=_DIGEST).digest() != digest:
        raise ValueError("digest mismatch")
    try:
        blob = msgspec.msgpack.decode(payload, type=_GroupBlob)
    except msgspec.MsgspecError as exc:
        raise ValueError(str(exc)) from None
    if blob.format != FORMAT or blob.group != group or set(blob.tiers) != set(GROUPS[group]):
        raise ValueError("stale format or wrong group")
    size = len(blob.keys)
    if len(set(blob.keys)) != size:
        raise ValueError("repeated champion key")
    tier_indices = {TIERS.index(t) for t in GROUPS[group]}
    seen: dict[MatchId, int] = blob.seen
    if any(not 0 <= r < 2 * len(TIERS) or r // 2 not in tier_indices for r in set(seen.values())):
        raise ValueError("bad seen ids")
    state = GroupState(group=group, keys=list(blob.keys), pos={k: i for i, k in enumerate(blob.keys)})
    state.seen = seen
    for name, tier_blob in blob.tiers.items():
        kinds = _array_bytes(tier_blob.extra_kinds)
        if len(kinds) != len(tier_blob.extra_ids) or not set(kinds) <= set(range(len(KINDS))):
            raise ValueError("bad extra ids")
        if not set(tier_blob.skipped) <= set(ALL_REASONS) or min(tier_blob.skipped.values(), default=0) < 0:
            raise ValueError("bad skip counts")
        if not set(tier_blob.read_invalid) <= set(ALL_REASONS) or tier_blob.read < 0:
            raise ValueError("bad read counts")
        state.tiers[name] = TierCounts(
            counts=_from_blob(tier_blob.counts, size),
            skipped=Counter(tier_blob.skipped),
            extra_seen=dict(zip(tier_blob.extra_ids, kinds, strict=True)),
            newest=tier_blob.newest,
            patches=_counter(tier_blob.patches),
            read=tier_blob.read,
            read_invalid=_counter(tier_blob.read_invalid),
        )
    state.excluded = _from_blob(blob.excluded, size)
    state.excluded_patches = _counter(blob.excluded_patches)
    return state, {name: _checkpoint(b) for name, b in blob.files.items()}


def _counter(counts: dict[str, int]) -> Counter[str]:
    """Stored counts per key; ValueError on a negative one."""
    if min(counts.values(), default=0) < 0:
        raise ValueError("negative count")
    return Counter(counts)


def load_group(path: Path, group: str) -> tuple[GroupState, dict[str, Checkpoint]] | None:
    """The group's saved state, or None when it is missing or fails validation."""
    try:
        data = read_regular(path)
    except OSError:
        return None
    try:
        return decode_group(data, group)
    except ValueError:
        return None


def save_group(path: Path, state: GroupState, files: dict[str, Checkpoint]) -> None:
    """Store the group's state; a state msgpack cannot hold is not stored (the group is rebuilt next time)."""
    try:
        data = encode_group(state, files)
    except OverflowError:  # a match_id or champion key beyond 64 bits (hostile input)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # an older cache must not be extended past what it knows
        return
    atomic_write_bytes(path, data)
