"""Hostile inputs from issue 9: each test failed before its fix (see the commit that added it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from stratmancer_jobs.jobs.history import sources
from tests.history_fixtures import (
    full_rebuild_bytes,
    games,
    index,
    index_bytes,
    low_thresholds,
    permissions_enforced,
    processed,
    refresh,
    settings_for,
    write_array,
)


def test_array_whose_last_number_grows_is_reread(root: Path, tmp_path: Path) -> None:
    """A trailing ``5`` rewritten as ``567`` plus new matches is counted like a full rebuild does."""
    low_thresholds(root)
    write_array(root, "GOLD", [*games("G", 6), 5])
    assert refresh(root).errors == ()
    write_array(root, "GOLD", [*games("G", 6), 567, *games("N", 10)])
    outcome = refresh(root)
    assert outcome.errors == ()
    assert index(root)["GOLD"]["n_matches"] == 16
    assert index_bytes(root) == full_rebuild_bytes(root, tmp_path / "scratch")
    # and it stays right on the following runs
    write_array(root, "GOLD", [*games("G", 6), 567, *games("N", 11)])
    assert refresh(root).errors == ()
    assert index(root)["MID"]["n_matches"] == 17


def test_jsonl_carriage_return_after_an_unterminated_line(root: Path, tmp_path: Path) -> None:
    """A lone ``\\r`` ends a line on both paths: incremental and full both count the two records."""
    low_thresholds(root)
    path = processed(root) / "matches_GOLD.jsonl"
    lines = [json.dumps(m) for m in games("G", 7)]
    path.write_text("\n".join(lines[:5]) + "\n" + lines[5])
    assert refresh(root).matches == 6
    with path.open("a", newline="") as handle:
        handle.write("\r" + lines[6] + "\n")
    outcome = refresh(root)
    assert (outcome.matches, outcome.invalid) == (7, 0)
    assert index_bytes(root) == full_rebuild_bytes(root, tmp_path / "scratch")
    assert index(tmp_path / "scratch")["GOLD"]["n_matches"] == 7


def test_same_size_edit_beyond_the_hashed_edges_with_mtime_restored(root: Path, tmp_path: Path) -> None:
    """Two outcomes swapped mid-file (same size, ``touch -r``) are seen through ctime and inode."""
    low_thresholds(root)
    path = write_array(root, "GOLD", games("G", 600))
    size = path.stat().st_size
    assert size > 4 * sources.EDGE
    refresh(root)
    before = index_bytes(root)
    st = path.stat()
    text = path.read_text()
    middle = size // 2
    won = text.index('"blue_win": true', middle)
    lost = text.index('"blue_win": false', won)
    assert sources.EDGE < won < lost < size - sources.EDGE
    edited = (
        text[:won]
        + '"blue_win": false'
        + text[won + len('"blue_win": true') : lost]
        + '"blue_win": true'
        + text[lost + len('"blue_win": false') :]
    )
    assert len(edited) == len(text) and edited != text
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    outcome = refresh(root)
    assert outcome.mode != "unchanged"
    assert index_bytes(root) != before
    assert index_bytes(root) == full_rebuild_bytes(root, tmp_path / "scratch")


def test_unreadable_tier_file_freezes_only_its_own_tier(root: Path, tmp_path: Path) -> None:
    """SILVER unreadable (a real EACCES): SILVER and LOW keep their entries, GOLD and MID update."""
    low_thresholds(root)
    silver = write_array(root, "SILVER", games("S", 8))
    write_array(root, "BRONZE", games("B", 4))
    write_array(root, "GOLD", games("G", 6))
    refresh(root)
    before = index(root)
    silver.chmod(0)
    write_array(root, "GOLD", games("G", 7))
    write_array(root, "BRONZE", games("B", 5))
    with permissions_enforced():
        outcome = refresh(root)
    after = index(root)
    assert len(outcome.errors) == 1
    assert str(silver) in outcome.errors[0] and "ermission denied" in outcome.errors[0]
    assert after["SILVER"] == before["SILVER"]
    assert after["LOW"] == before["LOW"]
    assert after["BRONZE"]["n_matches"] == 5
    assert (after["GOLD"]["n_matches"], after["MID"]["n_matches"]) == (7, 7)
    silver.chmod(0o644)
    with permissions_enforced():
        fixed = refresh(root)
    assert fixed.errors == ()
    assert index(root)["LOW"]["n_matches"] == 13
    assert index_bytes(root) == full_rebuild_bytes(root, tmp_path / "scratch")


def test_file_unreadable_after_an_append_keeps_its_tier(root: Path) -> None:
    """An unreadable file on the incremental path is a bad file too, not a failed run."""
    low_thresholds(root)
    gold = write_array(root, "GOLD", games("G", 6))
    write_array(root, "DIAMOND", games("D", 3))
    refresh(root)
    write_array(root, "GOLD", games("G", 9))
    write_array(root, "DIAMOND", games("D", 4))
    gold.chmod(0)
    with permissions_enforced():
        outcome = refresh(root)
    assert len(outcome.errors) == 1 and str(gold) in outcome.errors[0]
    assert (index(root)["GOLD"]["n_matches"], index(root)["HIGH"]["n_matches"]) == (6, 4)


_LOW_MEMORY_RUN = """
import resource, sys
from pathlib import Path
from tests.history_fixtures import refresh
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) for line in status if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 2**20, resource.RLIM_INFINITY))
outcome = refresh(Path(sys.argv[1]))
print("\\n".join(outcome.errors))
"""


def test_out_of_memory_while_reading_names_the_file(root: Path) -> None:
    """A file too large for the memory limit is a bad file whose error names it (was ``MemoryError: ``)."""
    low_thresholds(root)
    write_array(root, "GOLD", games("G", 4))
    huge = processed(root) / "matches_SILVER.json"
    with huge.open("wb") as handle:  # sparse: 8 GiB of zeros that take no disk space
        handle.truncate(8 * 2**30)
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _LOW_MEMORY_RUN, str(root)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{huge}: cannot read it: out of memory ({8 * 2**30:,} bytes)"
    assert index(root)["GOLD"]["n_matches"] == 4


def _python_dump(records: list[Any]) -> str:
    """What the collector's ``json.dump(records, indent=2)`` writes (``allow_nan`` is on by default)."""
    return json.dumps(records, indent=2)


def test_nan_and_infinity_in_ignored_fields_of_a_json_tier(root: Path, tmp_path: Path) -> None:
    """Python's ``NaN``/``Infinity``/``-Infinity`` in fields the index ignores do not reject the file."""
    low_thresholds(root)
    records: list[Any] = games("G", 6)
    records[1]["derived_features"] = {"kda": float("nan"), "gold_diff": float("inf"), "label": "NaN"}
    records[4]["champion_stats"][0]["kills_per_min"] = float("-inf")
    path = processed(root) / "matches_GOLD.json"
    path.write_text(_python_dump(records))
    assert b"NaN" in path.read_bytes() and b"-Infinity" in path.read_bytes()
    outcome = refresh(root)
    assert outcome.errors == ()
    assert index(root)["GOLD"]["n_matches"] == 6
    # incremental: appended records with NaN too
    records += games("N", 3)
    records[-1]["derived_features"] = [float("nan")]
    path.write_text(_python_dump(records))
    assert refresh(root).errors == ()
    assert index(root)["GOLD"]["n_matches"] == 9
    assert index_bytes(root) == full_rebuild_bytes(root, tmp_path / "scratch")


def test_nan_where_the_index_reads_is_an_invalid_record(root: Path) -> None:
    """``blue_win: NaN`` is a bad record (as with ``json.load``: a float is not a bool), not a bad file."""
    low_thresholds(root)
    records: list[Any] = games("G", 4)
    records[2]["blue_win"] = float("nan")
    (processed(root) / "matches_GOLD.json").write_text(_python_dump(records))
    outcome = refresh(root)
    assert (outcome.errors, outcome.matches, outcome.invalid) == ((), 3, 1)


def test_nan_in_jsonl_lines_counts(root: Path, tmp_path: Path) -> None:
    """A JSONL line with ``NaN`` counts, also as an unterminated last line and on the incremental path."""
    low_thresholds(root)
    records: list[Any] = games("G", 5)
    for record in records:
        record["derived_features"] = {"x": float("nan"), "y": float("inf")}
    path = processed(root) / "matches_GOLD.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records[:3]) + json.dumps(records[3]))
    assert refresh(root).matches == 4
    with path.open("a") as handle:
        handle.write("\n" + json.dumps(records[4]) + "\n")
    outcome = refresh(root)
    assert (outcome.matches, outcome.invalid) == (5, 0)
    assert index_bytes(root) == full_rebuild_bytes(root, tmp_path / "scratch")


def test_deleted_sidecar_is_recreated_without_rereading(root: Path) -> None:
    """Losing ``history_index.meta.json`` while the inputs are unchanged writes it again."""
    low_thresholds(root)
    write_array(root, "GOLD", games("G", 5))
    refresh(root)
    sidecar = settings_for(root).layout.history_sidecar
    before = json.loads(sidecar.read_text())
    sidecar.unlink()
    outcome = refresh(root)
    assert outcome.files_read == 0
    assert json.loads(sidecar.read_text())["tiers"] == before["tiers"]
