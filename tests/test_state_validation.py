"""Every state field is type-checked on load; bad records are quarantined; odd strings stay writable."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from stratmancer_jobs.errors import StateError
from stratmancer_jobs.state import RECENT_RUNS, JobRecord, RunEntry, StateStore, mark_finished, read_state
from tests.conftest import run_proc, write_card

Invoke = Callable[..., Result]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
JOB = "refresh_model_registry"


def _write_state(root: Path, record: dict[str, Any], **top: Any) -> Path:
    path = root / "state/jobs_state.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"schema_version": 1, "jobs": {JOB: record}, **top}), encoding="utf-8")
    return path


def _finish(record: JobRecord) -> JobRecord:
    return mark_finished(
        record, ok=True, started=NOW, finished=NOW, duration_s=0.5, summary="done", error=None
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("runs", 12345),
        ("runs", [1, 2]),
        ("runs", [{"status": 7}]),
        ("runs", [{"started": "yesterday", "status": "success"}]),
        ("running", "pid 12"),
        ("running", {"pid": "12", "started": "2026-11-28T12:00:00+00:00"}),
        ("running", {"pid": 12, "started": None}),
        ("last_metrics", [1]),
        ("last_metrics", {"n": float("inf")}),
        ("last_metrics", {"n": 10**400}),
        ("last_success", 5),
        ("last_success", "2026-11-28T12:00:00"),
        ("last_success", "9999-12-31T23:00:00-12:00"),
        ("last_status", "maybe"),
        ("last_duration_s", "1.5"),
        ("last_duration_s", True),
        ("last_summary", ["x"]),
        ("last_error_message", {"a": 1}),
        ("consecutive_failures", -1),
        ("consecutive_failures", 1.5),
        ("success_count", 2**70),
        ("error_count", True),
    ],
)
def test_every_field_type_is_checked_on_read(tmp_path: Path, field: str, value: object) -> None:
    """A field of the wrong type or range makes the read fail with a StateError naming the field."""
    path = _write_state(tmp_path, {field: value})
    with pytest.raises(StateError) as info:
        read_state(path)
    assert f"jobs.{JOB}.{field}" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("top", "needle"),
    [
        ({"schema_version": True}, "schema_version True"),
        ({"schema_version": 1.0}, "schema_version 1.0"),
        ({"recovered_from": 3}, "recovered_from"),
        ({"jobs": []}, "'jobs'"),
    ],
)
def test_top_level_types_are_checked(tmp_path: Path, top: dict[str, Any], needle: str) -> None:
    """schema_version must be the integer 1 (not true, not 1.0); jobs and recovered_from must be objects."""
    path = _write_state(tmp_path, {}, **top)
    with pytest.raises(StateError, match=needle):
        read_state(path)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
        # deep, but far from the interpreter's recursion limit, which a test runner's own frames
        # (mutmut runs pytest inside itself) bring closer: Python's parser reads it, the check refuses it
        (b'{"schema_version": 1, "jobs": {"a": {"x": ' + b"[" * 200 + b"]" * 200 + b"}}}", "nested more"),
        (b'{"schema_version": 1, "jobs": {}, "x": ' + b"[" * 40 + b"]" * 40 + b"}", "nested more"),
    ],
)
def test_deep_nesting_and_huge_ints_are_state_errors(tmp_path: Path, content: bytes, needle: str) -> None:
    """JSON refused by Python's parser, or nested deeper than any valid state, is a StateError."""
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match=needle):
        read_state(path)


def test_bad_record_is_quarantined_by_an_update(tmp_path: Path) -> None:
    """An update over a record with runs=12345 preserves the file as .corrupt-* and records the run."""
    path = _write_state(tmp_path, {"runs": 12345})
    original = path.read_bytes()
    notice = StateStore(path).update(JOB, _finish, NOW).notice
    assert notice is not None and "preserved it as" in notice and f"jobs.{JOB}.runs" in notice
    kept = list(tmp_path.glob("state/jobs_state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == original
    assert read_state(path)["jobs"][JOB]["success_count"] == 1


def test_runs_not_a_list_through_the_cli(cli: Invoke, root: Path) -> None:
    """runs=12345: status exits 1 (json too), --check 2, the job's run is recorded and the marker cleared."""
    write_card(root, "mid", "20251101_164237")
    _write_state(root, {"runs": 12345})
    for args, code in ((("status",), 1), (("status", "--json"), 1), (("status", "--check"), 2)):
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert f"jobs.{JOB}.runs" in result.output
    assert json.loads(cli("status", "--json").stdout)["state_error"] is not None
    run = cli("refresh-registry")
    assert run.exit_code == 0, run.output
    assert "preserved it as" in run.output
    record = read_state(root / "state/jobs_state.json")["jobs"][JOB]
    assert record["success_count"] == 1 and record["running"] is None and len(record["runs"]) == 1
    assert cli("status", "--check").exit_code in (0, 1)


def test_huge_runs_list_is_bounded_on_read_and_in_status_job(cli: Invoke, root: Path) -> None:
    """80,000 stored runs read back as the last RECENT_RUNS; status JOB prints at most that many."""
    runs = [
        {
            "started": "2026-11-28T12:00:00+00:00",
            "duration_s": 0.1,
            "status": "success",
            "summary": f"run {i}",
        }
        for i in range(80_000)
    ]
    path = _write_state(root, {"runs": runs, "success_count": 80_000})
    record = read_state(path)["jobs"][JOB]
    assert len(record["runs"]) == RECENT_RUNS and record["runs"][-1]["summary"] == "run 79999"
    detail = cli("status", JOB)
    assert detail.exit_code == 0, detail.output
    assert detail.stdout.count("run 7") == RECENT_RUNS and "run 79979" not in detail.stdout
    assert "run 79999" in detail.stdout and len(detail.stdout) < 10_000


def test_status_job_shows_only_the_last_twenty_runs_of_a_record() -> None:
    """render.job_detail itself never prints more than RECENT_RUNS runs, whatever the record holds."""
    from stratmancer_jobs import render

    runs = tuple(RunEntry(started="s", status="success", duration_s=0.0, summary=f"r{i}x") for i in range(50))
    record = JobRecord(runs=runs)
    text = render.recent_runs_lines(record)
    assert len(text) == RECENT_RUNS and text[-1].endswith("r49x") and text[0].endswith("r30x")


def test_oversized_messages_are_cut_on_read(tmp_path: Path) -> None:
    """A hand-edited 1 MB error message reads back cut to a bounded length."""
    path = _write_state(tmp_path, {"last_error_message": "x" * 1_000_000, "last_summary": "y" * 10_000})
    record = read_state(path)["jobs"][JOB]
    assert len(record["last_error_message"]) <= 500 and len(record["last_summary"]) <= 500


def test_lone_surrogates_are_written_as_escapes(tmp_path: Path) -> None:
    """Strings with undecodable path bytes (surrogate escapes) are stored readably, never crash a write."""
    store = StateStore(tmp_path / "state.json")
    bad = os.fsdecode(b"/srv/caf\xe9")

    def change(record: JobRecord) -> JobRecord:
        record = mark_finished(
            record, ok=False, started=NOW, finished=NOW, duration_s=0.1, summary=bad, error=f"{bad} gone"
        )
        return replace(record, last_metrics={bad: bad, "lone": "\ud800"})

    store.update(JOB, change, NOW)
    raw = store.path.read_bytes()
    raw.decode("utf-8")  # strict: no surrogate made it into the file
    record = read_state(store.path)["jobs"][JOB]
    assert record["last_error_message"] == "/srv/caf\\xe9 gone"
    assert record["last_metrics"] == {"/srv/caf\\xe9": "/srv/caf\\xe9", "lone": "\ufffd"}


def test_surrogate_escape_in_json_text_is_cleaned_on_read(tmp_path: Path) -> None:
    """A state file spelling a lone surrogate as a JSON escape reads back as printable text."""
    path = _write_state(tmp_path, {"last_error_message": "caf\udce9"})
    assert "\\udce9" in path.read_text(encoding="utf-8")
    assert read_state(path)["jobs"][JOB]["last_error_message"] == "caf\\xe9"


def test_root_with_a_non_utf8_byte_records_runs(tmp_path: Path) -> None:
    """A real root directory named with the byte 0xE9: runs are recorded and every status form works."""
    root = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9")))
    for sub in ("ml_pipeline/models/modelcards", "ml_pipeline/models/trained"):
        (root / sub).mkdir(parents=True)
    write_card(root, "mid", "20251101_164237")
    ok = run_proc(root, "refresh-registry")
    assert ok.returncode == 0, ok.stderr
    (root / "ml_pipeline/models/modelcards").rename(root / "gone")
    failed = run_proc(root, "refresh-registry")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    record = read_state(root / "state/jobs_state.json")["jobs"][JOB]
    assert (record["success_count"], record["error_count"], record["running"]) == (1, 1, None)
    assert "caf\\xe9" in record["last_error_message"]
    for args in (("status",), ("status", "--json"), ("status", JOB)):
        shown = run_proc(root, *args)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, (args, shown.stderr)
        assert "killed" not in shown.stdout
    check = run_proc(root, "status", "--check")
    assert check.returncode == 2 and "failing" in check.stdout, check.stdout
