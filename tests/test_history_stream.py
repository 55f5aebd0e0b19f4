"""A large JSON array decoded batch by batch gives exactly what the whole-file decode gives."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest

from stratmancer_jobs.jobs.history.filestat import FileStat
from stratmancer_jobs.jobs.history.incremental import Unsplittable, decode_array_stream, decode_file
from stratmancer_jobs.jobs.history.records import Decoded, RecordsError
from tests.history_fixtures import index_bytes, low_thresholds, match, refresh, write_array


def _stream(data: bytes, size: int) -> tuple[Decoded, int, int]:
    source = io.BytesIO(data)
    return decode_array_stream(source.readinto, "f", size)


def _records(n: int) -> list[object]:
    out: list[object] = []
    for i in range(n):
        blue = [1 + (i % 7), 20, 30, 40, 50]
        out.append(match(f"NA1_{i}", blue, [60, 70, 80, 90, 100 + i % 3], i % 3 == 0, note="}, {\n  },"))
    out[3] = match("dup", [1, 1, 2, 3, 4], [5, 6, 7, 8, 9], True)  # repeated champion
    out[5] = {"blue_picks": "nope"}  # bad picks: the slow path in its batch
    out[8] = 7  # not an object
    return out


def _whole(data: bytes) -> tuple[object, ...]:
    stat = FileStat(len(data), 0, "")
    decoded, checkpoint = decode_file("json", "f", data, stat, None)
    return decoded.records, dict(decoded.skipped), checkpoint.consumed, checkpoint.digest


@pytest.mark.parametrize("indent", [2, 4, "\t"])
@pytest.mark.parametrize("size", [7, 64, 333, 1000, 10**6])
def test_streamed_equals_whole(indent: int | str, size: int) -> None:
    data = (json.dumps(_records(12), indent=indent) + "\n").encode()
    decoded, consumed, digest = _stream(data, size)
    assert (decoded.records, dict(decoded.skipped), consumed, digest) == _whole(data)


@pytest.mark.parametrize("size", [5, 50, 400])
def test_nan_and_empty_and_one_element(size: int) -> None:
    for text in ("[]", "[\n]", json.dumps([match("a", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)], indent=2)):
        data = text.encode()
        try:
            got = _stream(data, size)
        except Unsplittable:
            continue
        assert (got[0].records, dict(got[0].skipped), got[1], got[2]) == _whole(data)
    records = _records(10)
    records[2] = match("n", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], float("nan"))
    data = json.dumps(records, indent=2).encode()
    decoded, consumed, digest = _stream(data, size)
    assert (decoded.records, dict(decoded.skipped), consumed, digest) == _whole(data)


@pytest.mark.parametrize("size", [9, 100, 1000])
def test_a_file_caught_mid_write_is_not_cut_into_valid_batches(size: int) -> None:
    data = json.dumps(_records(12), indent=2).encode()
    for cut in (len(data) - 1, len(data) // 2, len(data) // 3 + 5):
        with pytest.raises(RecordsError):
            _whole(data[:cut])
        with pytest.raises((Unsplittable, RecordsError)):
            _stream(data[:cut], size)


def test_compact_layout_is_left_to_the_whole_decode() -> None:
    data = json.dumps(_records(12)).encode()
    with pytest.raises(Unsplittable):
        _stream(data, 100)
    decoded, consumed, digest = _stream(data, len(data))
    assert (decoded.records, dict(decoded.skipped), consumed, digest) == _whole(data)


def test_a_refresh_streams_large_files_to_the_same_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratmancer_jobs.jobs.history import sources

    indexes = []
    for name, chunk in (("whole", 1 << 30), ("streamed", 300)):
        root = tmp_path / name
        low_thresholds(root)
        for t, tier in enumerate(("GOLD", "PLATINUM", "IRON")):
            records = _records(15 + t)
            records.append(match("NA1_1", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], False))  # a duplicate id
            write_array(root, tier, records)
        monkeypatch.setattr(sources, "STREAM_CHUNK", chunk)
        outcome = refresh(root, full=True)
        assert not outcome.errors
        indexes.append(index_bytes(root))
        write_array(root, "GOLD", [*_records(15), match("new", [1, 2, 3, 4, 5], [6, 7, 8, 9, 11], True)])
        refresh(root)
        indexes.append(index_bytes(root))
    assert indexes[0] == indexes[2]
    assert indexes[1] == indexes[3]


@pytest.mark.parametrize("seed", range(6))
def test_entries_with_numpy_equal_the_loops(seed: int) -> None:
    import random

    from stratmancer_jobs.config import HistorySettings
    from stratmancer_jobs.jobs.history import aggregate
    from stratmancer_jobs.jobs.history.counts import GroupState
    from stratmancer_jobs.jobs.history.records import Match

    rng = random.Random(seed)
    pool = rng.sample(range(1, 400), 14)
    state = GroupState("MID")
    games = []
    for i in range(rng.randint(1, 300)):
        picks = rng.sample(pool, 10)
        games.append(Match(tuple(picks[:5]), tuple(picks[5:]), rng.random() < 0.5, f"m{i}"))  # type: ignore[arg-type]
    state.add("GOLD", "json", games, Counter())
    for limits in ((1, 1, 1), (3, 2, 5), (40, 30, 20)):
        thresholds = HistorySettings(*limits)
        counts = state.tiers["GOLD"].counts
        assert aggregate._build_entry_numpy(counts, state.keys, thresholds) == aggregate._build_entry_loops(
            counts, state.keys, thresholds
        )


def test_a_streamed_file_that_fails_half_way_counts_like_whole_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of a large file are counted as they are decoded; when a later file of the group turns
    out caught mid-write after some of its batches were counted, the group is counted again from
    whole files: the index, the sidecar, the skip counts and the bytes read are those of whole reads
    (an id repeated across batches counts once, skip counts add up over batches)."""
    from stratmancer_jobs.jobs.history import sources

    results = []
    for name, chunk in (("whole", 1 << 30), ("streamed", 300)):
        root = tmp_path / name
        low_thresholds(root)
        gold = _records(30)
        gold.append(match("NA1_2", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], False))  # a duplicate, batches later
        write_array(root, "GOLD", gold)
        write_array(root, "PLATINUM", _records(20))
        emerald = write_array(root, "EMERALD", _records(25))
        text = emerald.read_text()
        emerald.write_text(text[: len(text) * 3 // 4])  # the collector caught mid-write
        monkeypatch.setattr(sources, "STREAM_CHUNK", chunk)
        outcome = refresh(root, full=True)
        assert [e.split(": ", 1)[0].rsplit("/", 1)[1] for e in outcome.errors] == ["matches_EMERALD.json"]
        sidecar = (root / "ml_pipeline" / "history_index.meta.json").read_text().replace(str(root), "ROOT")
        sidecar = "\n".join(
            line for line in sidecar.splitlines() if "generated_at" not in line and "mtime_ns" not in line
        )
        counts = (
            outcome.files_read,
            outcome.bytes_read,
            outcome.duplicates,
            outcome.invalid,
            outcome.matches,
        )
        results.append((index_bytes(root), sidecar, counts))
    assert results[0][0] == results[1][0]
    assert results[0][1].splitlines() == results[1][1].splitlines()
    assert results[0][2] == results[1][2]
    assert results[0][2][2] == 1  # the duplicate
