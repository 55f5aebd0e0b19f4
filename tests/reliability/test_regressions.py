"""Focused regression tests for the defects the reliability scenarios found (one per fix)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stratmancer_jobs.atomicio import atomic_write_text

OTHER_GID = 33 if os.geteuid() == 0 else os.getgid()


def test_atomic_replace_keeps_group_and_mode(tmp_path: Path) -> None:
    """A file readable by a web server through its group stays readable after an atomic replace."""
    target = tmp_path / "history_index.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    os.chown(target, -1, OTHER_GID)
    atomic_write_text(target, "new")
    st = target.stat()
    assert target.read_text() == "new"
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, OTHER_GID)


def test_new_directories_are_not_world_writable_under_umask_000(tmp_path: Path) -> None:
    """Under ``umask 000`` the state, lock and cache directories are still not world-writable."""
    from tests.reliability.harness import make_root, run_cli

    root = make_root(tmp_path)
    old = os.umask(0)
    try:
        for cmd in ("refresh-registry", "refresh-history"):
            assert run_cli(root, "-q", cmd).returncode == 0
    finally:
        os.umask(old)
    made = [root / "state", root / "state/locks", root / "state/history_cache"]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in made} == {p.name: 0o755 for p in made}
    for path in (root / "state").rglob("*"):
        assert not path.stat().st_mode & stat.S_IWOTH, path


def test_unexpected_error_outside_a_job_run_never_prints_the_key(tmp_path: Path) -> None:
    """An exception escaping the CLI (here: loading the configuration) prints a redacted traceback."""
    from tests.reliability.harness import PLANTED_KEY, make_root, run_cli

    root = make_root(tmp_path)
    env = {"RIOT_API_KEY": PLANTED_KEY, "STRATMANCER_TEST_FAULT": "CONFIG:"}
    proc = run_cli(root, "status", env=env, hooks=True)
    assert proc.returncode == 1, proc.stderr
    assert "RuntimeError: forced failure loading the configuration" in proc.stderr
    assert PLANTED_KEY not in proc.stderr + proc.stdout


def test_tier_file_symlinked_outside_the_root_is_not_read(tmp_path: Path) -> None:
    """``matches_IRON.json -> /elsewhere/file`` is ignored with a warning naming it, not indexed."""
    import json

    from tests.reliability.harness import make_root, run_cli

    outside = tmp_path / "outside.json"
    match = {
        "match_id": "OUT",
        "blue_picks": [1, 2, 3, 4, 5],
        "red_picks": [6, 7, 8, 9, 10],
        "blue_win": True,
    }
    outside.write_text(json.dumps([match]))
    root = make_root(tmp_path)
    link = root / "data/processed/matches_IRON.json"
    link.symlink_to(outside)
    proc = run_cli(root, "refresh-history")
    assert proc.returncode == 0, proc.stderr
    assert "IRON" not in json.loads((root / "ml_pipeline/history_index.json").read_bytes())
    assert f"ignoring {link}: a symlink pointing outside" in proc.stderr


def test_deeply_nested_record_fails_only_its_file(tmp_path: Path) -> None:
    """A record nested 3000 deep (msgspec raises RecursionError) is a bad file or a bad line, named
    in the error; the other tiers are still indexed, with no traceback."""
    import json

    from tests.reliability.harness import make_root, run_cli

    root = make_root(tmp_path)
    processed = root / "data/processed"
    (processed / "matches_DIAMOND.json").write_bytes(b"[" + b"[" * 3000 + b"]" * 3000 + b"]")
    with (processed / "matches_EMERALD.jsonl").open("ab") as handle:
        handle.write(b"[" * 3000 + b"]" * 3000 + b"\n" + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"\n")
    proc = run_cli(root, "refresh-history")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "matches_DIAMOND.json: not valid JSON" in proc.stderr
    index = json.loads((root / "ml_pipeline/history_index.json").read_bytes())
    assert {"SILVER", "GOLD", "PLATINUM", "EMERALD"} <= set(index)
    meta = json.loads((root / "ml_pipeline/history_index.meta.json").read_bytes())
    assert sum(meta["tiers"]["EMERALD"]["skipped"].values()) >= 2


def test_match_ids_and_champion_keys_beyond_64_bits_do_not_crash_the_cache(tmp_path: Path) -> None:
    """Ints msgpack cannot hold (ids 2**70, keys -2**70) are counted; the index is exact; no traceback."""
    import json

    from tests.reliability.harness import make_root, run_cli

    root = make_root(tmp_path)
    big = [
        {
            "match_id": 2**70 + i,
            "blue_picks": [1, 2, 3, 4, -(2**70)],
            "red_picks": [6, 7, 8, 9, 10],
            "blue_win": True,
        }
        for i in range(3)
    ]
    (root / "data/processed/matches_IRON.json").write_text(json.dumps(big + big[:1]))
    first = run_cli(root, "refresh-history")
    assert first.returncode == 0, first.stderr
    incremental = (root / "ml_pipeline/history_index.json").read_bytes()
    assert json.loads(incremental)["IRON"]["n_matches"] == 3
    with (root / "data/processed/matches_EMERALD.jsonl").open("a") as handle:
        handle.write(json.dumps({**big[0], "match_id": "E1"}) + "\n")
    assert run_cli(root, "refresh-history").returncode == 0
    incremental = (root / "ml_pipeline/history_index.json").read_bytes()
    assert run_cli(root, "refresh-history", "--full").returncode == 0
    assert (root / "ml_pipeline/history_index.json").read_bytes() == incremental


def test_card_with_nan_infinity_or_a_huge_int_is_invalid_not_a_crash(tmp_path: Path) -> None:
    """NaN / -Infinity / 1e999 in an unchecked field, or a 5000-digit int: that card is listed invalid
    with a reason and the registry is still written from the good cards."""
    import json

    from tests.reliability.harness import make_root, run_cli

    root = make_root(tmp_path)
    cards = root / "ml_pipeline/models/modelcards"
    head = (
        '{"elo": "mid", "timestamp": "2030-01-01T00:00:00", "model_file": "draft_mid_xgb_20251101_164237.pkl"'
    )
    bodies = [
        ', "params": {"x": NaN}}',
        ', "extra": -Infinity}',
        ', "params": {"x": 1e999}}',
        ', "n": ' + "9" * 5000 + "}",
    ]
    for i, body in enumerate(bodies):
        (cards / f"modelcard_mid_2030010{i}_000000.json").write_text(head + body)
    proc = run_cli(root, "refresh-registry")
    assert proc.returncode == 0, proc.stderr
    registry = json.loads((root / "ml_pipeline/model_registry.json").read_bytes())
    invalid = {item["file"]: item["reason"] for item in registry["invalid"]}
    assert sorted(invalid) == [f"modelcard_mid_2030010{i}_000000.json" for i in range(4)]
    assert (
        invalid["modelcard_mid_20300100_000000.json"]
        == "card.params.x is NaN or Infinity, which is not valid JSON"
    )
    assert (
        invalid["modelcard_mid_20300101_000000.json"]
        == "card.extra is NaN or Infinity, which is not valid JSON"
    )
    assert invalid["modelcard_mid_20300103_000000.json"].startswith("not valid JSON: Exceeds the limit")
    assert len(registry["models"]) == 4


def test_temp_files_of_killed_writers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    """A SIGKILL inside a write leaves ``.name.PID.xxx.tmp``; the next write of that file removes it
    when PID is gone, and never touches a live writer's temp file or another target's."""
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    target = tmp_path / "history_index.json"
    left = tmp_path / f".history_index.json.{dead_pid}.abcd1234.tmp"
    live = tmp_path / f".history_index.json.{os.getppid()}.abcd1234.tmp"
    other = tmp_path / f".history_index.json.meta.{dead_pid}.abcd1234.tmp"
    for path in (left, live, other):
        path.write_text("partial")
    atomic_write_text(target, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name, other.name])


def test_versions_body_with_a_huge_number_is_a_clear_fetch_error(tmp_path: Path) -> None:
    """``[999...9]`` (5000 digits) from Data Dragon is an error naming the URL, not a traceback;
    the existing meta.json is kept byte for byte."""
    from tests.ddragon_server import DDragonServer, Reply
    from tests.reliability.harness import make_root, run_cli

    root = make_root(tmp_path)
    meta = root / "config/meta.json"
    meta.write_text('{"patch": "15.20"}')
    with DDragonServer() as server:
        server.script("/api/versions.json", Reply(body=b"[" + b"9" * 5000 + b"]"))
        proc = run_cli(root, "refresh-patch", env={"STRATMANCER_DDRAGON_URL": server.base_url})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "api/versions.json did not return usable JSON (a number too large)" in proc.stderr
    assert meta.read_text() == '{"patch": "15.20"}'


def test_tier_file_truncated_while_being_read_does_not_kill_the_process(tmp_path: Path) -> None:
    """The collector truncates a tier file in place while refresh-history holds its contents: with a
    memory map, touching the buffer then killed the process with SIGBUS (exit -7, nothing recorded)."""
    import subprocess
    import sys

    from tests.reliability.harness import REPO

    code = """
import sys
from pathlib import Path
from stratmancer_jobs.jobs.history import sources
path = Path(sys.argv[1])
path.write_bytes(b"[" + b" " * 1_000_000 + b"]")
files, _ = sources.scan(path.parent)
with sources.mapped(files[0]) as (buf, stat):
    path.write_bytes(b"")  # what open('w') in the collector does
    print(buf[-1], stat.size)
"""
    target = tmp_path / "matches_GOLD.json"
    done = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.split() == ["93", "1000002"]
