"""The history cache costs speed, never the index: a cache that cannot be read or written is warned
about, set aside when it is not a directory, and the index is written all the same (real CLI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import run_proc
from tests.history_fixtures import games, index_bytes, low_thresholds, write_array


def _deployment(root: Path) -> None:
    low_thresholds(root)
    write_array(root, "GOLD", games("g", 30))
    write_array(root, "DIAMOND", games("d", 20))


def test_a_file_where_the_cache_directory_should_be_is_set_aside(root: Path) -> None:
    """`state/history_cache` as a plain file: the run writes the index, warns and moves the file aside;
    the next run builds the cache in a fresh directory."""
    _deployment(root)
    (root / "state").mkdir()
    planted = root / "state/history_cache"
    planted.write_text("not a directory")
    first = run_proc(root, "refresh-history", timeout=120)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert f"the cache {planted} was not a directory; moved aside to history_cache.corrupt-" in first.stderr
    assert json.loads(index_bytes(root))  # the index is there
    aside = [p for p in (root / "state").iterdir() if p.name.startswith("history_cache.corrupt-")]
    assert len(aside) == 1 and aside[0].read_text() == "not a directory"
    second = run_proc(root, "refresh-history", timeout=120)
    assert second.returncode == 0, second.stderr
    assert "history_cache" not in second.stderr
    assert (root / "state/history_cache/manifest.json").is_file()


def test_cache_files_that_cannot_be_written_still_give_the_index(root: Path) -> None:
    """Every group cache and the manifest blocked (a directory at each name): exit 0, the same index
    as a run with a working cache, one warning per unsaved file, no traceback."""
    _deployment(root)
    cache = root / "state/history_cache"
    for name in ("manifest.json", "group_LOW.bin", "group_MID.bin", "group_HIGH.bin"):
        (cache / name).mkdir(parents=True)
    blocked = run_proc(root, "refresh-history", timeout=120)
    assert blocked.returncode == 0, blocked.stderr
    assert "Traceback" not in blocked.stderr
    assert "the cache manifest was not saved" in blocked.stderr, blocked.stderr
    assert "was not saved (cannot write" in blocked.stderr
    written = index_bytes(root)
    for name in ("manifest.json", "group_LOW.bin", "group_MID.bin", "group_HIGH.bin"):
        (cache / name).rmdir()
    (root / "ml_pipeline/history_index.json").unlink()
    clean = run_proc(root, "refresh-history", timeout=120)
    assert clean.returncode == 0, clean.stderr
    assert index_bytes(root) == written


def test_a_fifo_or_dev_zero_in_the_cache_is_no_cache(root: Path) -> None:
    """A FIFO at the manifest and a symlink to /dev/zero at a group cache: the run neither hangs nor
    reads without end; it rebuilds from the inputs and writes the same index as without them."""
    _deployment(root)
    assert run_proc(root, "refresh-history", timeout=120).returncode == 0
    written = index_bytes(root)
    (root / "ml_pipeline/history_index.json").unlink()
    cache = root / "state/history_cache"
    (cache / "manifest.json").unlink()
    os.mkfifo(cache / "manifest.json")
    (cache / "group_MID.bin").unlink()
    (cache / "group_MID.bin").symlink_to("/dev/zero")
    hostile = run_proc(root, "refresh-history", timeout=60)
    assert hostile.returncode == 0, hostile.stderr
    assert "Traceback" not in hostile.stderr
    assert index_bytes(root) == written


def test_a_fifo_at_the_index_is_no_previous_index(root: Path) -> None:
    """A FIFO where the last index was, then one tier changed: the run neither hangs on reading the
    old index (for the unchanged tiers' entries) nor fails; it writes the index a full rebuild gives."""
    _deployment(root)
    assert run_proc(root, "refresh-history", timeout=120).returncode == 0
    index = root / "ml_pipeline/history_index.json"
    index.unlink()
    os.mkfifo(index)
    write_array(root, "DIAMOND", games("d", 25))
    hostile = run_proc(root, "refresh-history", timeout=60)
    assert hostile.returncode == 0, hostile.stderr
    assert "Traceback" not in hostile.stderr
    written = index_bytes(root)
    assert run_proc(root, "refresh-history", "--full", timeout=120).returncode == 0
    assert index_bytes(root) == written
