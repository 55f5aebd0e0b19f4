"""State fuzz: every field, top-level key and record replaced by every JSON type; nothing ever crashes.

For each damaged state the CLI runs every ``status`` form, then a real job (refresh-registry on a
small root), then every ``status`` form again: no traceback, exit codes within the README's contract,
``--check`` answers 0, 1 or 2, ``--json`` is JSON, and the job's run is recorded.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from stratmancer_jobs.cli import app
from stratmancer_jobs.state import FIELDS, RECENT_RUNS, read_state

JOB = "refresh_model_registry"
NOW = datetime.now(UTC)
RECORD_FIELDS = (*FIELDS, "consecutive_failures", "running", "runs", "last_metrics", "pending_change")


def _nested(depth: int) -> Any:
    value: Any = {"a": [1, "x"]}
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


JSON_VALUES: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "one": 1,
    "negative": -5,
    "int_2_53": 2**53,
    "huge_int": 2**70,
    "huger_int": 10**400,
    "float": 1.5,
    "neg_float": -0.0,
    "big_float": 1e308,
    "nan": float("nan"),
    "infinity": float("inf"),
    "empty_string": "",
    "string": "x",
    "long_string": "y" * 100_000,
    "surrogate_string": "caf\udce9",
    "past_time": (NOW - timedelta(days=3)).isoformat(timespec="seconds"),
    "future_time": (NOW + timedelta(days=19)).isoformat(timespec="seconds"),
    "naive_time": "2026-01-01T00:00:00",
    "edge_time": "9999-12-31T23:59:59-12:00",
    "status_word": "success",
    "empty_list": [],
    "list": [1, "a", None],
    "list_of_objects": [{"status": "success"}, {}],
    "list_of_runs": [
        {
            "started": (NOW - timedelta(hours=1)).isoformat(),
            "duration_s": 1,
            "status": "error",
            "summary": "s",
        }
    ],
    "empty_object": {},
    "object": {"a": 1, "b": "c"},
    "marker_of_init": {"pid": 1, "started": (NOW - timedelta(days=3)).isoformat(timespec="seconds")},
    "marker_of_this_process": {"pid": os.getpid(), "started": NOW.isoformat(), "pid_starttime": 1},
    "nested": _nested(60),
    "nested_500": _nested(500),
    "deeply_nested": _nested(3000),
}


def _valid_record() -> dict[str, Any]:
    """A record as the tool writes it after one success and one failure."""
    earlier = (NOW - timedelta(minutes=20)).isoformat(timespec="seconds")
    return {
        "success_count": 1,
        "error_count": 1,
        "skipped_count": 0,
        "interrupted_count": 0,
        "consecutive_failures": 1,
        "last_status": "error",
        "last_started": earlier,
        "last_finished": earlier,
        "last_success": earlier,
        "last_error": earlier,
        "last_error_message": "boom",
        "last_duration_s": 0.25,
        "last_summary": None,
        "running": None,
        "runs": [{"started": earlier, "duration_s": 0.25, "status": "error", "summary": "boom"}],
        "last_metrics": {"models": 0, "patch": "16.1"},
        "last_warning": "high: no servable model: calibrator calibrator_high_x.pkl not found",
        "pending_change": {
            "job_id": JOB,
            "paths": ["/srv/ml_pipeline/model_registry.json"],
            "fields": {},
            "first_seen": earlier,
            "attempts": 1,
            "last_error": "hook on_change[0] (POST http://127.0.0.1:8000/x) failed: HTTP 500",
            "succeeded": [],
        },
    }


def _dump(document: Any) -> str:
    try:
        return json.dumps(document)  # NaN/Infinity written as Python does
    except RecursionError:
        return "[" * 100_000 + "]" * 100_000


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "deploy"
    for sub in ("ml_pipeline/models/modelcards", "ml_pipeline/models/trained", "config", "state"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def _invoke(root: Path, *args: str) -> Result:
    result = CliRunner().invoke(app, ["--root", str(root), *args])
    text = result.stdout + result.stderr
    assert "Traceback" not in text, (args, text[-3000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    return result


def _every_status_form(root: Path) -> None:
    for args in (("status",), ("status", JOB)):
        result = _invoke(root, *args)
        assert result.exit_code in (0, 1), (args, result.output[-2000:])
        assert len(result.stdout) < 20_000  # bounded, whatever the state holds
    shown = _invoke(root, "status", "--json")
    assert shown.exit_code in (0, 1), shown.output[-2000:]
    data = json.loads(shown.stdout)
    assert data["total_jobs"] == 3 and all(len(job["recent_runs"]) <= RECENT_RUNS for job in data["jobs"])
    assert shown.exit_code == (1 if data["state_error"] else 0)
    check = _invoke(root, "status", "--check")
    assert check.exit_code in (0, 1, 2) and check.stdout.startswith("STRATMANCER JOBS "), check.output
    if data["state_error"]:
        assert check.exit_code == 2 and "state unreadable" in check.stdout


def _exercise(root: Path, document_text: str) -> None:
    """Every status form on the damaged state, a real run, then every status form on the result."""
    path = root / "state/jobs_state.json"
    path.write_text(document_text, encoding="utf-8")
    before = read_state_quietly(path)
    _every_status_form(root)
    metrics = root / "metrics.prom"
    run = _invoke(root, "--metrics-file", str(metrics), "refresh-registry")
    assert run.exit_code == 0, run.output[-3000:]
    assert f'stratmancer_job_runs_total{{job_id="{JOB}",result="success"}}' in metrics.read_text("utf-8")
    record = read_state(path)["jobs"][JOB]  # readable again, whatever it held
    old = before["jobs"].get(JOB, {}) if before else {}
    assert record["running"] is None and record["last_status"] == "success"
    assert record["success_count"] == min(old.get("success_count", 0) + 1, 2**53)
    path.read_bytes().decode("utf-8")  # strictly encodable
    _every_status_form(root)


def read_state_quietly(path: Path) -> dict[str, Any] | None:
    """The state as the tool reads it, or None when it is rejected (then a run starts counting anew)."""
    try:
        return read_state(path)
    except Exception:  # any StateError: what matters here is the CLI's behaviour
        return None


@pytest.mark.parametrize("value_name", list(JSON_VALUES))
@pytest.mark.parametrize("field", RECORD_FIELDS)
def test_every_record_field_with_every_json_type(tmp_path: Path, field: str, value_name: str) -> None:
    """Replacing one field of a job record by any JSON value never crashes a run or a status form."""
    record = _valid_record()
    record[field] = JSON_VALUES[value_name]
    _exercise(_root(tmp_path), _dump({"schema_version": 1, "jobs": {JOB: record}}))


@pytest.mark.parametrize("value_name", list(JSON_VALUES))
@pytest.mark.parametrize("key", ["schema_version", "jobs", "recovered_from", "record", "document"])
def test_every_top_level_key_with_every_json_type(tmp_path: Path, key: str, value_name: str) -> None:
    """schema_version, jobs, recovered_from, a whole record, or the whole document as any JSON value."""
    value = JSON_VALUES[value_name]
    document: Any = {"schema_version": 1, "jobs": {JOB: _valid_record()}}
    if key == "record":
        document["jobs"][JOB] = value
    elif key == "document":
        document = value
    else:
        document[key] = value
    _exercise(_root(tmp_path), _dump(document))


def test_missing_fields_and_missing_keys(tmp_path: Path) -> None:
    """A record with no fields at all and a document without jobs are handled like any other damage."""
    root = _root(tmp_path)
    _exercise(root, _dump({"schema_version": 1, "jobs": {JOB: {}}}))
    _exercise(root, _dump({"schema_version": 1}))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(RECORD_FIELDS), JSON, min_size=1, max_size=4))
def test_random_json_in_several_fields_at_once(tmp_path: Path, changes: dict[str, Any]) -> None:
    """Hypothesis: any JSON values in up to four fields at once; never a traceback, always recorded."""
    record = _valid_record()
    record.update(changes)
    _exercise(_root(tmp_path), _dump({"schema_version": 1, "jobs": {JOB: record}}))


def test_fuzz_grid_is_complete() -> None:
    """The grid covers every field the tool writes and every JSON type."""
    written = set(_valid_record())
    assert written == set(RECORD_FIELDS)
    kinds = {type(v) for v in JSON_VALUES.values()}
    assert kinds >= {type(None), bool, int, float, str, list, dict}
