"""refresh-history end to end: incremental paths, bad files, no data, determinism, loadability."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stratmancer_jobs.errors import InputError, PartialFailure
from stratmancer_jobs.jobs import JobContext
from stratmancer_jobs.jobs.history.job import run
from tests.history_fixtures import (
    StratMancerHistoryIndex,
    append_lines,
    full_rebuild_bytes,
    games,
    index,
    index_bytes,
    low_thresholds,
    match,
    processed,
    refresh,
    settings_for,
    write_array,
)


@pytest.fixture
def seeded(root: Path) -> Path:
    """A root with three tiers in two groups, JSON arrays and a JSONL file."""
    low_thresholds(root)
    write_array(root, "SILVER", games("S", 12))
    write_array(root, "GOLD", games("G", 20))
    append_lines(root, "GOLD", games("GL", 6))
    write_array(root, "DIAMOND", games("D", 9))
    return root


def test_full_run_writes_all_entries(seeded: Path) -> None:
    """Tiers with data and their groups are written; counts add up; the summary fields agree."""
    outcome = refresh(seeded)
    data = index(seeded)
    assert sorted(data) == ["DIAMOND", "GOLD", "HIGH", "LOW", "MID", "SILVER"]
    assert data["GOLD"]["n_matches"] == 26
    assert data["MID"]["n_matches"] == 26
    assert outcome.matches == 12 + 26 + 9
    assert outcome.mode == "full"
    assert outcome.tiers == ("SILVER", "GOLD", "DIAMOND")
    assert outcome.groups == ("LOW", "MID", "HIGH")


def test_index_loads_with_a_stratmancer_style_loader(seeded: Path) -> None:
    """Every top-level key has exactly the five keys StratMancer reads, with the right types."""
    refresh(seeded)
    loaded = StratMancerHistoryIndex(seeded / "ml_pipeline" / "history_index.json")
    assert set(loaded.elos) == {"SILVER", "GOLD", "DIAMOND", "LOW", "MID", "HIGH"}
    for payload in index(seeded).values():
        assert set(payload) == {"champ_wr", "pair_wr", "counter_wr", "n_matches", "avg_wr"}
    gold = loaded.elos["GOLD"]
    assert all(a < b for a, b in gold["pair_wr"])
    assert 0.0 <= gold["avg_wr"] <= 1.0
    assert gold["counter_wr"][1][6] == pytest.approx(1 - gold["counter_wr"][6][1], abs=2e-6)


def test_render_matches_dump_json(seeded: Path) -> None:
    """The fast renderer writes exactly what atomicio.dump_json would."""
    from stratmancer_jobs.atomicio import dump_json

    refresh(seeded, parallel=True)
    assert index_bytes(seeded).decode() == dump_json(index(seeded))


def test_sidecar_holds_counts_and_reasons(seeded: Path) -> None:
    """Games counts, skip reasons and fingerprints go in the sidecar, not in the index."""
    append_lines(seeded, "GOLD", [match("G1", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True), {"junk": 1}])
    refresh(seeded)
    meta = json.loads(settings_for(seeded).layout.history_sidecar.read_text())
    assert meta["tiers"]["GOLD"]["skipped"] == {"bad_picks": 1, "duplicate_match_id": 1}
    assert meta["entries"]["GOLD"]["n_matches"] == 26
    assert "matches_GOLD.jsonl" in meta["tiers"]["GOLD"]["files"]
    assert set(index(seeded)) == {"SILVER", "GOLD", "DIAMOND", "LOW", "MID", "HIGH"}


def test_no_change_reads_nothing(seeded: Path) -> None:
    """A second run with unchanged inputs reads no file and leaves the index as it is."""
    refresh(seeded)
    before = (index_bytes(seeded), (seeded / "ml_pipeline" / "history_index.json").stat().st_mtime_ns)
    outcome = refresh(seeded)
    assert outcome.mode == "unchanged"
    assert outcome.files_read == 0
    assert (index_bytes(seeded), (seeded / "ml_pipeline" / "history_index.json").stat().st_mtime_ns) == before


def test_append_reads_only_new_records_and_equals_full(seeded: Path, tmp_path: Path) -> None:
    """Collector-style appends to a JSON array and a JSONL file give the full rebuild's bytes."""
    refresh(seeded)
    write_array(seeded, "GOLD", games("G", 25))
    append_lines(seeded, "GOLD", games("GL", 2, start=6))
    outcome = refresh(seeded)
    assert outcome.mode == "incremental"
    assert outcome.new_matches == 7
    assert outcome.files_read == 2
    assert index_bytes(seeded) == full_rebuild_bytes(seeded, tmp_path / "scratch")


def test_rewritten_file_is_reread(seeded: Path, tmp_path: Path) -> None:
    """A file whose old part changed (not an append) is re-read: numbers match a full rebuild."""
    refresh(seeded)
    changed = games("G", 20)
    changed[0]["blue_win"] = not changed[0]["blue_win"]
    write_array(seeded, "GOLD", changed[1:] + changed[:1])
    outcome = refresh(seeded)
    assert outcome.mode == "incremental"  # other groups untouched
    assert index_bytes(seeded) == full_rebuild_bytes(seeded, tmp_path / "scratch")


def test_earlier_copy_arriving_late_rebuilds_the_group(seeded: Path, tmp_path: Path) -> None:
    """A match appended to GOLD after PLATINUM counted it makes MID use GOLD's copy, like a full run."""
    write_array(seeded, "PLATINUM", [match("X", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], False)])
    refresh(seeded)
    write_array(seeded, "GOLD", [*games("G", 20), match("X", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)])
    refresh(seeded)
    assert index_bytes(seeded) == full_rebuild_bytes(seeded, tmp_path / "scratch")


def test_jsonl_partial_line_then_completed(seeded: Path, tmp_path: Path) -> None:
    """A JSONL line caught mid-append is left out, then counted once it is complete."""
    refresh(seeded)
    line = json.dumps(match("GZ", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True))
    path = processed(seeded) / "matches_GOLD.jsonl"
    with path.open("a") as handle:
        handle.write(line[:25])
    assert refresh(seeded).matches == 47
    with path.open("a") as handle:
        handle.write(line[25:] + "\n")
    assert refresh(seeded).matches == 48
    assert index_bytes(seeded) == full_rebuild_bytes(seeded, tmp_path / "scratch")


def test_jsonl_without_final_newline_then_appended(seeded: Path, tmp_path: Path) -> None:
    """A last line without a newline counts; text glued onto it later forces a correct re-read."""
    path = processed(seeded) / "matches_GOLD.jsonl"
    with path.open("a") as handle:
        handle.write(json.dumps(match("GY", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)))
    assert refresh(seeded).matches == 48
    with path.open("a") as handle:
        handle.write(json.dumps(match("GW", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)) + "\n")
    outcome = refresh(seeded)
    assert outcome.matches == 47  # the glued line is one bad line now
    assert outcome.invalid == 1
    assert index_bytes(seeded) == full_rebuild_bytes(seeded, tmp_path / "scratch")


def test_truncated_file_keeps_its_tier_and_updates_the_others(seeded: Path) -> None:
    """A tier file caught mid-write: its tier and group keep their last entry, others update, error."""
    refresh(seeded)
    before = index(seeded)
    text = json.dumps(games("G", 30), indent=2)
    (processed(seeded) / "matches_GOLD.json").write_text(text[: len(text) // 2])
    write_array(seeded, "SILVER", games("S", 15))
    outcome = refresh(seeded)
    after = index(seeded)
    assert len(outcome.errors) == 1
    assert "matches_GOLD.json" in outcome.errors[0]
    assert after["GOLD"] == before["GOLD"]
    assert after["MID"] == before["MID"]
    assert after["SILVER"]["n_matches"] == 15
    assert after["LOW"]["n_matches"] == 15
    # Still bad next time: still reported (no "unchanged" shortcut over a bad file).
    assert refresh(seeded).errors == outcome.errors
    # Fixed by the collector's next save: everything is current again.
    write_array(seeded, "GOLD", games("G", 30))
    fixed = refresh(seeded)
    assert fixed.errors == ()
    assert index(seeded)["GOLD"]["n_matches"] == 36


def test_a_changed_group_with_a_bad_file_keeps_its_cache(seeded: Path, tmp_path: Path) -> None:
    """A group that changed but has a bad file does not save its cache: it stays what the last good
    run counted, and the run after the fix still ends with the index of a full rebuild."""
    refresh(seeded)
    cache_file = settings_for(seeded).layout.history_group_cache("MID")
    before = cache_file.read_bytes()
    append_lines(seeded, "GOLD", games("GX", 4))  # MID changed ...
    (processed(seeded) / "matches_PLATINUM.json").write_text("[{")  # ... and has a bad file
    outcome = refresh(seeded)
    assert len(outcome.errors) == 1 and "matches_PLATINUM.json" in outcome.errors[0]
    assert cache_file.read_bytes() == before
    write_array(seeded, "PLATINUM", games("P", 5))
    assert refresh(seeded).errors == ()
    assert index_bytes(seeded) == full_rebuild_bytes(seeded, tmp_path / "scratch")


def test_bad_file_on_first_run_leaves_its_tier_out(root: Path) -> None:
    """With no previous entry to keep, a bad tier (and its group) is simply absent."""
    write_array(root, "SILVER", games("S", 5))
    (processed(root) / "matches_GOLD.json").write_text("[{")
    outcome = refresh(root)
    assert set(index(root)) == {"SILVER", "LOW"}
    assert outcome.errors and "matches_GOLD.json" in outcome.errors[0]


@pytest.mark.parametrize("setup", ["missing_dir", "empty_dir", "only_other_files", "only_invalid"])
def test_no_data_is_an_error_and_keeps_the_index(root: Path, setup: str) -> None:
    """No usable data at all raises InputError and leaves the existing index untouched."""
    target = root / "ml_pipeline" / "history_index.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text('{"OLD": 1}\n')
    folder = processed(root)
    if setup == "missing_dir":
        folder.rmdir()
    elif setup == "only_other_files":
        (folder / "matches_gold.json").write_text("[]")
        (folder / "notes.txt").write_text("hi")
    elif setup == "only_invalid":
        write_array(root, "GOLD", [{"junk": True}])
    with pytest.raises(InputError, match="no data"):
        refresh(root)
    assert target.read_text() == '{"OLD": 1}\n'


def test_deterministic_bytes(seeded: Path, tmp_path: Path) -> None:
    """The same inputs give byte-identical indexes, with or without the second core, via any path."""
    refresh(seeded, full=True, parallel=True)
    first = index_bytes(seeded)
    refresh(seeded, full=True, parallel=False)
    assert index_bytes(seeded) == first
    assert full_rebuild_bytes(seeded, tmp_path / "scratch") == first


@pytest.mark.parametrize("damage", ["delete", "corrupt", "truncate"])
def test_damaged_cache_falls_back_to_a_rebuild(seeded: Path, tmp_path: Path, damage: str) -> None:
    """A missing, corrupt or truncated cache is not trusted: the run rebuilds and gets the same bytes."""
    refresh(seeded)
    write_array(seeded, "GOLD", games("G", 22))
    cache_file = settings_for(seeded).layout.history_group_cache("MID")
    if damage == "delete":
        cache_file.unlink()
    elif damage == "corrupt":
        data = bytearray(cache_file.read_bytes())
        data[len(data) // 2] ^= 0x55
        cache_file.write_bytes(bytes(data))
    else:
        cache_file.write_bytes(cache_file.read_bytes()[:100])
    refresh(seeded)
    assert index_bytes(seeded) == full_rebuild_bytes(seeded, tmp_path / "scratch")


def test_planted_cache_with_counts_above_its_matches_is_rebuilt(seeded: Path, tmp_path: Path) -> None:
    """A cache with a valid digest but a count above its number of matches (5e12 games, where the rate
    arithmetic wraps int64) is corrupt: the group is rebuilt from its files, the index exact."""
    from stratmancer_jobs.jobs.history import cache

    refresh(seeded)
    cache_file = settings_for(seeded).layout.history_group_cache("MID")
    state, files = cache.decode_group(cache_file.read_bytes(), "MID")
    gold = state.tiers["GOLD"].counts
    gold.cw[0] = gold.cl[0] = gold.vs[0][1] = 5 * 10**12
    cache_file.write_bytes(cache.encode_group(state, files))
    append_lines(seeded, "GOLD", games("GM", 3))
    refresh(seeded)
    assert index_bytes(seeded) == full_rebuild_bytes(seeded, tmp_path / "scratch")
    assert cache.decode_group(cache_file.read_bytes(), "MID")[0].tiers["GOLD"].counts.cw[0] < 100


def test_same_size_same_mtime_rewrite_is_caught(seeded: Path, tmp_path: Path) -> None:
    """A rewrite that keeps size and mtime is caught by the fingerprint and re-read."""
    refresh(seeded)
    path = processed(seeded) / "matches_SILVER.json"
    st = path.stat()
    text = path.read_text()
    edited = text.replace("\n      11", "\n      17")  # another champion, same number of bytes
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    refresh(seeded)
    assert "17" in index(seeded)["SILVER"]["champ_wr"]
    assert index_bytes(seeded) == full_rebuild_bytes(seeded, tmp_path / "scratch")


def test_full_flag_ignores_the_cache(seeded: Path) -> None:
    """--full rebuilds everything even when nothing changed."""
    refresh(seeded)
    outcome = refresh(seeded, full=True)
    assert outcome.mode == "full"
    assert outcome.files_read == 4


def test_threshold_change_recomputes_without_rereading(seeded: Path) -> None:
    """New thresholds in jobs.toml apply on the next run (from the cached counts)."""
    refresh(seeded)
    (seeded / "config" / "jobs.toml").write_text("[history]\nmin_champ_games = 1000\n")
    outcome = refresh(seeded)
    assert outcome.files_read == 0
    assert all(entry["champ_wr"] == {} for entry in index(seeded).values())


def _ctx(root: Path, **options: object) -> JobContext:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    return JobContext(settings_for(root), now, logging.getLogger("t"), options)


def test_job_run_summary_and_metrics(seeded: Path) -> None:
    """run(ctx) returns the one-line summary and metrics; --full is honoured."""
    result = run(_ctx(seeded))
    assert result.summary.startswith("History index refreshed in ")
    assert "3 tiers + 3 groups, 47 matches (47 new)" in result.summary
    assert "0 records skipped (0 duplicate, 0 invalid)" in result.summary
    assert result.metrics["matches_indexed"] == 47
    assert result.metrics["tiers"] == 3
    again = run(_ctx(seeded))
    assert again.summary.startswith("History index unchanged in ")
    assert run(_ctx(seeded, full=True)).metrics["mode"] == "full"


def test_job_run_reports_a_bad_file_as_an_error(seeded: Path) -> None:
    """A bad tier file makes run() raise PartialFailure naming the file, with the summary and metrics of
    what was updated (the runner records exit 1)."""
    run(_ctx(seeded))
    (processed(seeded) / "matches_DIAMOND.json").write_text('[{"blue_picks": [1, 2')
    with pytest.raises(PartialFailure) as failed:
        run(_ctx(seeded))
    assert "matches_DIAMOND.json" in failed.value.message
    assert "kept their last entries" in failed.value.summary
    assert failed.value.metrics["tiers"] == 3


def test_job_run_without_data_raises(root: Path) -> None:
    """No data at all propagates InputError to the runner."""
    with pytest.raises(InputError):
        run(_ctx(root))


def test_cli_refresh_history_on_the_shipped_sample(tmp_path: Path) -> None:
    """The sample in data/processed refreshes cleanly through the CLI (fresh-clone smoke test)."""
    import shutil

    from typer.testing import CliRunner

    from stratmancer_jobs.cli import app

    repo = Path(__file__).resolve().parent.parent
    shutil.copytree(repo / "data" / "processed", tmp_path / "data" / "processed")
    result = CliRunner().invoke(app, ["--root", str(tmp_path), "refresh-history"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "ml_pipeline" / "history_index.json").read_text())
    assert {"GOLD", "SILVER", "PLATINUM", "DIAMOND", "EMERALD", "LOW", "MID", "HIGH"} == set(data)
    assert data["GOLD"]["n_matches"] == 90
    assert data["EMERALD"]["n_matches"] == 30


def test_deleted_index_is_rewritten_from_the_cache(seeded: Path) -> None:
    """Losing the index (but not the inputs) rewrites it, byte-identical, without re-reading inputs."""
    refresh(seeded)
    before = index_bytes(seeded)
    (seeded / "ml_pipeline" / "history_index.json").unlink()
    outcome = refresh(seeded)
    assert outcome.files_read == 0
    assert index_bytes(seeded) == before


def test_other_files_are_ignored_and_said_so_at_debug(seeded: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Files that are not tier files are ignored; each is named in a debug line (shown with -v)."""
    (processed(seeded) / "matches_gold.json").write_text("[]")
    (processed(seeded) / "matches_WOOD.json").write_text("[]")
    (processed(seeded) / "README.txt").write_text("notes")
    with caplog.at_level(logging.DEBUG, logger="tests.history"):
        outcome = refresh(seeded)
    assert outcome.tiers == ("SILVER", "GOLD", "DIAMOND")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    ignored = [message for message in messages if "ignoring" in message]
    assert len(ignored) == 3
    assert any("matches_WOOD.json" in message for message in ignored)


def test_entries_of_unchanged_files_are_carried_over(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the tiers and groups whose files changed are recomputed; the others are the previous
    index's bytes, and the whole index is still byte-identical to a full rebuild. An index that no
    longer matches the manifest's digest is not trusted."""
    from stratmancer_jobs.jobs.history import plan as plan_module
    from tests.history_fixtures import full_rebuild_bytes, index_bytes

    picks = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    games = [match(f"G{i}", picks[:5], picks[5:], i % 3 == 0) for i in range(8)]
    write_array(root, "GOLD", games)
    write_array(root, "DIAMOND", [match(f"D{i}", picks[5:], picks[:5], i % 2 == 0) for i in range(8)])
    refresh(root)
    built: list[str] = []
    real = plan_module._build

    def counting(state: Any, group: str, wanted: list[str], thresholds: Any) -> Any:
        built.extend(wanted)
        return real(state, group, wanted, thresholds)

    monkeypatch.setattr(plan_module, "_build", counting)
    write_array(root, "GOLD", [*games, match("G9", picks[:5], picks[5:], False)])
    refresh(root)
    assert sorted(built) == ["GOLD", "MID"]  # DIAMOND and HIGH carried over
    assert index_bytes(root) == full_rebuild_bytes(root, root.parent / "scratch")

    index = root / "ml_pipeline" / "history_index.json"
    tampered = index.read_bytes().replace(b'"n_matches": 8', b'"n_matches": 7')
    index.write_bytes(tampered)
    built.clear()
    more = [match("G9", picks[:5], picks[5:], False), match("G10", picks[:5], picks[5:], True)]
    write_array(root, "GOLD", [*games, *more])
    refresh(root)
    assert sorted(built) == ["DIAMOND", "GOLD", "HIGH", "MID"]  # the index does not match the manifest
    assert index_bytes(root) == full_rebuild_bytes(root, root.parent / "scratch2")


def test_only_bad_files_and_no_previous_index_is_no_usable_data(root: Path) -> None:
    """Every tier file caught mid-write and no index yet: no entry can be kept, so the run fails
    naming the files, and no (empty) index is written."""
    from stratmancer_jobs.errors import InputError

    path = write_array(root, "BRONZE", [match("B1", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)])
    path.write_text(path.read_text()[:-5])
    write_array(root, "GOLD", [match("G1", [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], True)])
    gold = processed(root) / "matches_GOLD.json"
    gold.write_text(gold.read_text()[:-5])
    with pytest.raises(InputError, match=r"no usable data: .*matches_BRONZE\.json.*matches_GOLD\.json"):
        refresh(root)
    assert not (root / "ml_pipeline" / "history_index.json").exists()
