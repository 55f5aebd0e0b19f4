"""The fork helper that reads groups on the second core, and the progress callback path."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from stratmancer_jobs.jobs.history.filestat import FileStat
from stratmancer_jobs.jobs.history.group import (
    CACHE_FACTOR,
    ENTRY_COST,
    HASH_DIVISOR,
    group_cost,
    split_groups,
)
from stratmancer_jobs.jobs.history.parallel import split_map
from stratmancer_jobs.jobs.history.sources import SourceFile
from tests.history_fixtures import index_bytes, match, refresh, settings_for, write_array


@pytest.fixture(autouse=True)
def two_processors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fork is only used with two processors or more: these tests see two, whatever runs them."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})


def test_split_map_keeps_order() -> None:
    """Results come back in item order, whichever process computed them."""
    assert split_map(lambda x, send: x * x, list(range(7))) == [x * x for x in range(7)]
    assert split_map(lambda x, send: x * x, list(range(7)), cut=6) == [x * x for x in range(7)]
    assert split_map(lambda x, send: x + 1, [1]) == [2]
    assert split_map(lambda x, send: x + 1, [1, 2], parallel=False) == [2, 3]


def test_split_map_relays_what_each_side_sends() -> None:
    """Messages sent by the worker and by this process all reach ``relay``, each side's in order."""
    parent = os.getpid()
    got: list[tuple[str, int]] = []

    def work(x: int, send: Callable[[object], None]) -> int:
        for step in range(3):
            send(("child" if os.getpid() != parent else "parent", x * 10 + step))
        return x

    assert split_map(work, [1, 2, 3, 4], cut=2, relay=got.append) == [1, 2, 3, 4]
    assert sorted(got) == sorted(
        [("child", v) for v in (10, 11, 12, 20, 21, 22)] + [("parent", v) for v in (30, 31, 32, 40, 41, 42)]
    )
    for side in ("child", "parent"):
        values = [v for who, v in got if who == side]
        assert values == sorted(values)


def test_split_map_recomputes_when_the_child_fails() -> None:
    """A child that fails only costs time: its items are computed in the parent."""
    parent = os.getpid()

    def only_in_parent(x: int, send: Callable[[object], None]) -> int:
        if os.getpid() != parent:
            raise RuntimeError("child failure")
        return -x

    assert split_map(only_in_parent, [1, 2, 3, 4, 5]) == [-1, -2, -3, -4, -5]


def test_split_map_propagates_real_errors() -> None:
    """An error that also happens in the parent is raised, not hidden."""

    def boom(x: int, send: Callable[[object], None]) -> int:
        raise ValueError(f"bad {x}")

    with pytest.raises(ValueError, match="bad"):
        split_map(boom, [1, 2, 3])


def test_progress_sink_run_gives_the_same_index(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a progress sink, the index is the same, nothing is printed, and the sink sees the start and
    each file read."""
    from stratmancer_jobs.jobs import Progress
    from stratmancer_jobs.jobs.history.job import refresh_history

    games = [match(f"G{i}", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], i % 2 == 0) for i in range(9)]
    write_array(root, "GOLD", games)
    settings = settings_for(root)
    seen: list[Progress] = []
    refresh_history(settings.layout, settings.history, full=True, progress=seen.append)
    with_sink = index_bytes(root)
    assert capsys.readouterr() == ("", "")
    size = (settings.layout.processed_dir / "matches_GOLD.json").stat().st_size
    assert seen == [Progress(0, 1, 0, size), Progress(1, 1, size, size)]
    refresh(root, full=True)
    assert index_bytes(root) == with_sink


def test_groups_on_two_processes_report_progress_and_log_like_one(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three groups read on two processes: the sink sees the start, then every file once, ending at all
    files and bytes; the worker's log lines reach the caller's log; the index and the caches are those
    of a run in one process."""
    from stratmancer_jobs.jobs import Progress
    from stratmancer_jobs.jobs.history.job import refresh_history

    games = [match(f"G{i}", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], i % 2 == 0) for i in range(9)]
    for tier, n in (("GOLD", 9), ("IRON", 5), ("DIAMOND", 3)):
        write_array(root, tier, [{**g, "match_id": f"{tier}{g['match_id']}"} for g in games[:n]])
    settings = settings_for(root)
    layout = settings.layout
    sizes = [p.stat().st_size for p in sorted(layout.processed_dir.iterdir())]
    seen: list[Progress] = []
    caplog.set_level(logging.DEBUG, logger="tests.history")
    log = logging.getLogger("tests.history")
    refresh_history(layout, settings.history, full=True, progress=seen.append, log=log, parallel=True)
    assert seen[0] == Progress(0, 3, 0, sum(sizes))
    assert seen[-1] == Progress(3, 3, sum(sizes), sum(sizes))
    assert [p.files_done for p in seen] == [0, 1, 2, 3]
    caplog.clear()
    for group in ("LOW", "MID", "HIGH"):
        layout.history_group_cache(group).write_bytes(b"corrupt")
    write_array(root, "GOLD", [{**g, "match_id": f"GOLD{g['match_id']}"} for g in games])  # touched
    refresh_history(layout, settings.history, log=log, parallel=True)
    two = index_bytes(root), {g: layout.history_group_cache(g).read_bytes() for g in ("LOW", "MID", "HIGH")}
    warned = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert warned == [
        f"history: the cache of group {g} is invalid, rebuilding the group" for g in ("HIGH", "LOW", "MID")
    ]
    refresh(root, full=True, parallel=False)
    one = index_bytes(root), {g: layout.history_group_cache(g).read_bytes() for g in ("LOW", "MID", "HIGH")}
    assert two == one


def _source(tier: str, size: int, mtime: int = 1) -> SourceFile:
    name = f"matches_{tier}.json"
    return SourceFile(name, Path(name), tier, "json", FileStat(size, mtime, "f", 0, 0))


def test_split_groups_puts_the_costlier_side_in_the_worker() -> None:
    """A full rebuild is split by bytes to decode (and entries to build); this process keeps the side
    that leaves room for joining and writing the index."""
    mb = 1_000_000
    files = [_source("IRON", 31 * mb), _source("BRONZE", 52 * mb), _source("SILVER", 72 * mb)]
    files += [_source("GOLD", 82 * mb), _source("PLATINUM", 73 * mb), _source("EMERALD", 63 * mb)]
    files += [_source(t, s * mb) for t, s in (("DIAMOND", 42), ("MASTER", 20), ("GRANDMASTER", 10))]
    order, cut = split_groups(files, {}, {})
    assert (order[:cut], order[cut:]) == (["LOW", "HIGH"], ["MID"])
    assert group_cost("MID", files, {}, 0) == (82 + 73 + 63) * mb + 4 * ENTRY_COST
    assert group_cost("HIGH", files, {}, 0) == (42 + 20 + 10) * mb + 4 * ENTRY_COST  # 3 tiers + group


def test_group_cost_of_an_append_is_its_new_bytes_its_hashed_prefix_and_its_entries() -> None:
    mb = 1_000_000
    before = {f.name: f.stat for f in (_source("GOLD", 80 * mb), _source("PLATINUM", 70 * mb))}
    now = [_source("GOLD", 81 * mb, mtime=2), _source("PLATINUM", 70 * mb)]
    cost = group_cost("MID", now, before, 2 * mb)
    assert cost == 2 * mb * CACHE_FACTOR + 1 * mb + 80 * mb // HASH_DIVISOR + 2 * ENTRY_COST
    odd = {f.name: f.stat for f in (_source("GOLD", 80 * mb + 7),)}
    assert group_cost("MID", [_source("GOLD", 80 * mb + 7, mtime=2)], odd, 0) == 80 * mb + 7 + 2 * ENTRY_COST
    # rewritten with the same size: nothing new to decode, the old part hashed
    same = group_cost("MID", [_source("GOLD", 80 * mb + 7, mtime=2)], odd, 1)
    assert same == CACHE_FACTOR + (80 * mb + 7) // HASH_DIVISOR + 2 * ENTRY_COST
    assert isinstance(same, int)
    assert group_cost("MID", now, before, 0) == 81 * mb + 2 * ENTRY_COST  # no cache: decoded whole
    shrunk = [_source("GOLD", 79 * mb, mtime=2), _source("PLATINUM", 70 * mb)]
    assert group_cost("MID", shrunk, before, 2 * mb) == 2 * mb * CACHE_FACTOR + 79 * mb + 2 * ENTRY_COST
    assert group_cost("MID", [_source("PLATINUM", 70 * mb)], before, 2 * mb) == 2 * mb * CACHE_FACTOR
    assert group_cost("LOW", now, before, 0) == 0


def test_split_groups_with_one_group_keeps_it_here() -> None:
    files = [_source("GOLD", 10), _source("EMERALD", 10)]
    assert split_groups(files, {}, {}) == (["MID"], 1)
    two = [_source("GOLD", 10), _source("IRON", 10**9)]
    assert split_groups(two, {}, {}) == (["LOW", "MID"], 1)
    tiny = [_source("GOLD", 10), _source("IRON", 10)]
    assert split_groups(tiny, {}, {}) == (["LOW", "MID"], 1)  # a tie: the first split found


def test_split_groups_may_send_two_groups_to_the_worker() -> None:
    """LOW costs 120 MB-equivalents, MID and HIGH 70 each (one tier and the group's entry, 10 each):
    MID + HIGH there (140) against LOW + writing here (150) beats every other split."""
    mb = 1_000_000
    files = [_source("IRON", 100 * mb), _source("GOLD", 50 * mb), _source("DIAMOND", 50 * mb)]
    assert split_groups(files, {}, {}) == (["MID", "HIGH", "LOW"], 2)


def test_split_groups_counts_each_groups_cache() -> None:
    """An append to every group: the group with the larger cache to load goes to the worker."""
    mb = 1_000_000
    before = {f.name: f.stat for f in (_source("IRON", 50 * mb), _source("GOLD", 50 * mb))}
    files = [_source("IRON", 51 * mb, mtime=2), _source("GOLD", 51 * mb, mtime=2)]
    assert split_groups(files, before, {"LOW": 1 * mb, "MID": 9 * mb}) == (["MID", "LOW"], 1)
    assert split_groups(files, before, {"LOW": 9 * mb, "MID": 1 * mb}) == (["LOW", "MID"], 1)


def test_split_groups_decodes_a_grown_file_whole_without_its_groups_cache() -> None:
    """LOW has no cache: its grown 101 MB file is decoded whole (121 MB-equivalents with its entries),
    more than MID with its cache (34), so LOW goes to the worker. Were the missing cache taken for a
    cache, LOW would cost only its new and hashed bytes (31) and the split would flip."""
    mb = 1_000_000
    before = {f.name: f.stat for f in (_source("IRON", 100 * mb), _source("GOLD", 10 * mb))}
    files = [_source("IRON", 101 * mb, mtime=2), _source("GOLD", 11 * mb, mtime=2)]
    assert split_groups(files, before, {"MID": 1 * mb}) == (["LOW", "MID"], 1)
    assert group_cost("LOW", files, before, 0) == 101 * mb + 2 * ENTRY_COST


def test_large_results_cross_through_the_blob_file_intact() -> None:
    """The worker's large ``bytes`` (nested anywhere in its results) travel through the blob file and
    come back equal, next to small ones that stay in the pickle."""
    from stratmancer_jobs.jobs.history.parallel import BLOB_MIN

    def work(x: int, send: Callable[[object], None]) -> dict[str, object]:
        big = bytes([x % 251]) * (BLOB_MIN + x)
        return {"pid": os.getpid(), "big": big, "nested": [(big[:10], big)], "small": b"s" * x}

    parent = os.getpid()
    results = split_map(work, [1, 2, 3, 4], cut=2)
    assert [r["pid"] != parent for r in results] == [True, True, False, False]
    for x, r in zip([1, 2, 3, 4], results, strict=True):
        big = bytes([x % 251]) * (BLOB_MIN + x)
        assert r["big"] == big
        assert r["nested"] == [(big[:10], big)]
        assert r["small"] == b"s" * x


@pytest.mark.parametrize("failing", ["memfd", "pipe", "pool", "fork"])
def test_split_map_without_a_pipe_a_file_or_a_process_computes_everything_here(
    monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """No descriptor, semaphore or process to spare (a sandbox, a limit): the work is still done, all
    of it in this process, and nothing is left open."""
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    from stratmancer_jobs.jobs.history import parallel

    def refuse(*args: object, **kwargs: object) -> object:
        raise OSError(24, "Too many open files")

    if failing == "memfd":
        monkeypatch.setattr(os, "memfd_create", refuse)
        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    elif failing == "pipe":
        monkeypatch.setattr(os, "pipe", refuse)
    elif failing == "pool":
        monkeypatch.setattr(parallel, "ProcessPoolExecutor", refuse)
    else:
        monkeypatch.setattr(ProcessPoolExecutor, "submit", refuse)
    fds_before = len(os.listdir("/proc/self/fd"))
    parent = os.getpid()
    results = split_map(lambda x, send: (x * 2, os.getpid()), [1, 2, 3, 4], cut=2)
    assert results == [(2, parent), (4, parent), (6, parent), (8, parent)]
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_split_map_on_one_processor_computes_everything_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one processor to run on, a worker would only add its start-up: no fork."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    parent = os.getpid()
    assert split_map(lambda x, send: (x, os.getpid()), [1, 2, 3], cut=1) == [
        (1, parent),
        (2, parent),
        (3, parent),
    ]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert [pid != parent for _, pid in split_map(lambda x, send: (x, os.getpid()), [1, 2, 3], cut=1)] == [
        True,
        False,
        False,
    ]
