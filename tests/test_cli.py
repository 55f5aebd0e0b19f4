"""The CLI end to end: every command, the exit-code contract, status output, help text."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner, Result

from stratmancer_jobs import __version__
from stratmancer_jobs.cli import app
from tests.conftest import FAKE_KEY, run_proc, write_card

Invoke = Callable[..., Result]
JSON_KEYS = {
    "id", "name", "command", "schedule", "next_run", "success_count", "error_count", "skipped_count",
    "last_status", "last_success", "last_error", "last_error_message", "last_duration_s", "last_summary",
}  # fmt: skip


def test_every_command_has_help_text() -> None:
    """Every command and the app itself explain themselves in --help."""
    command = typer.main.get_command(app)
    runner = CliRunner()
    names = list(command.commands)  # type: ignore[attr-defined]
    assert set(names) >= {"refresh-history", "refresh-registry", "refresh-patch", "status", "crontab"}
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert command.commands[name].help, name  # type: ignore[attr-defined]
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0 and "Exit codes" in top.output


def test_help_text_is_shown_whole() -> None:
    """No option help is eaten as rich markup: `[env: X]` would vanish from --help, so none is written."""
    runner = CliRunner()

    def shown(*args: str) -> str:  # the help as read, box borders and line breaks taken out
        out = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"}).output
        return " ".join(out.replace("│", " ").split())

    top = shown()
    assert "(env STRATMANCER_HOME; default: the current directory)" in top
    assert "(env STRATMANCER_METRICS_FILE; config key metrics_file; default: none)" in top
    job = shown("refresh-history")
    assert "default: 1800 s, or jobs.refresh_history_index.timeout_seconds)" in job
    for param in typer.main.get_command(app).params:
        assert "[" not in (getattr(param, "help", None) or ""), param.name


def test_version() -> None:
    """--version prints the version and exits 0."""
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_unknown_option_is_usage_error(cli: Invoke) -> None:
    """A bad flag exits 2, naming the flag on stderr with the command's usage line."""
    result = cli("status", "--bogus")
    assert result.exit_code == 2
    assert "No such option: --bogus" in result.stderr
    assert result.stderr.startswith("Usage: stratmancer-jobs status [OPTIONS]")
    assert result.stdout == ""


def test_root_that_does_not_exist_is_exit_2(tmp_path: Path) -> None:
    """A missing deployment root is a configuration error."""
    result = CliRunner().invoke(app, ["--root", str(tmp_path / "nope"), "status"])
    assert result.exit_code == 2 and "is not a directory" in result.output


def test_bad_config_value_names_the_key(cli: Invoke, root: Path) -> None:
    """A wrong value in config/jobs.toml exits 2 naming the key."""
    (root / "config/jobs.toml").write_text('[jobs.refresh_patch_meta]\ngrace_seconds = "soon"\n')
    result = cli("status")
    assert result.exit_code == 2
    assert "jobs.refresh_patch_meta.grace_seconds must be int" in result.output


def test_unknown_job_in_status_lists_valid_ones(cli: Invoke) -> None:
    """status with an unknown job exits 2 and lists the valid names."""
    result = cli("status", "nope")
    assert result.exit_code == 2
    assert "refresh_history_index (refresh-history)" in result.output


def test_status_json_before_any_run_has_nulls(cli: Invoke) -> None:
    """status --json lists three jobs with the documented keys; never-set fields are null."""
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["total_jobs"] == 3 and len(data["jobs"]) == 3
    for job in data["jobs"]:
        assert set(job) >= JSON_KEYS
        assert job["last_success"] is None and job["last_error_message"] is None
        assert job["success_count"] == 0 and job["health"] == "never run"
    assert [j["id"] for j in data["jobs"]] == [
        "refresh_history_index",
        "refresh_model_registry",
        "refresh_patch_meta",
    ]


def test_registry_end_to_end_then_status(cli: Invoke, root: Path) -> None:
    """refresh-registry exits 0, prints its summary, and status shows the recorded success."""
    write_card(root, "mid", "20251101_164237")
    result = cli("refresh-registry")
    assert result.exit_code == 0, result.output
    assert "Model registry refreshed: 1 models (+1 new" in result.stderr  # quiet success: log line only
    assert (root / "ml_pipeline/model_registry.json").exists()
    data = json.loads(cli("status", "--json").stdout)
    job = next(j for j in data["jobs"] if j["id"] == "refresh_model_registry")
    assert job["success_count"] == 1 and job["last_status"] == "success"
    assert job["last_summary"].startswith("Model registry refreshed")
    plain = cli("status")
    assert plain.exit_code == 0
    assert "refresh-registry" in plain.stdout and "\x1b[" not in plain.stdout


@pytest.mark.parametrize("name", ["refresh_model_registry", "refresh-registry"])
def test_status_for_one_job_by_id_or_command(cli: Invoke, root: Path, name: str) -> None:
    """status JOB accepts the id or the command name and shows the run history."""
    write_card(root, "mid", "20251101_164237")
    cli("refresh-registry")
    result = cli("status", name)
    assert result.exit_code == 0, result.output
    assert "refresh_model_registry (refresh-registry)" in result.stdout
    assert "recent runs (1, oldest first)" in result.stdout
    assert "refresh_history_index" not in result.stdout


def test_failed_job_exits_1_and_is_recorded(cli: Invoke, root: Path) -> None:
    """A missing modelcards directory exits 1 with a clear line, recorded as an error."""
    (root / "ml_pipeline/models/modelcards").rmdir()
    result = cli("refresh-registry")
    assert result.exit_code == 1
    assert "modelcards does not exist" in result.output
    job = json.loads(cli("status", "--json").stdout)["jobs"][1]
    assert job["error_count"] == 1 and job["last_status"] == "error"
    assert "modelcards does not exist" in job["last_error_message"]
    check = cli("status", "--check")
    assert check.exit_code == 2 and check.stdout.startswith("STRATMANCER JOBS CRITICAL")


def test_corrupt_state_file_status_and_run(cli: Invoke, root: Path) -> None:
    """status names a corrupt state file (exit 1, table still shown); the next run preserves it."""
    write_card(root, "mid", "20251101_164237")
    state = root / "state/jobs_state.json"
    state.parent.mkdir()
    state.write_text('{"schema_version": 1, "jobs": {"refresh_mo')
    status = cli("status")
    assert status.exit_code == 1
    assert str(state) in status.output and "refresh-registry" in status.stdout
    run = cli("refresh-registry")
    assert run.exit_code == 0, run.output
    assert "preserved it as" in run.output
    kept = list(state.parent.glob("jobs_state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text().endswith('"refresh_mo')
    assert cli("status").exit_code == 0


def test_quiet_suppresses_summary(cli: Invoke, root: Path) -> None:
    """-q prints no summary and no info lines (every elo served, so no warning either)."""
    for elo in ("low", "mid", "high"):
        write_card(root, elo, "20251101_164237")
    result = cli("-q", "refresh-registry")
    assert result.exit_code == 0 and result.output == ""


def test_verbose_and_quiet_conflict(cli: Invoke) -> None:
    """-v with -q is a usage error: exit 2 and one line saying the two flags conflict."""
    result = cli("-v", "-q", "status")
    assert result.exit_code == 2
    assert result.stderr == "error: --verbose and --quiet cannot be used together\n"
    assert result.stdout == ""


def test_planted_key_never_appears(cli: Invoke, root: Path) -> None:
    """A RIOT_API_KEY in the environment shows up in no output or state file."""
    write_card(root, "mid", "20251101_164237")
    env = {"RIOT_API_KEY": FAKE_KEY}
    outputs = [cli("-v", "refresh-registry", env=env).output, cli("status", "--json", env=env).output]
    (root / "ml_pipeline/models/modelcards").rename(root / "gone")
    outputs.append(cli("-v", "refresh-registry", env=env).output)
    outputs.append(cli("status", env=env).output)
    for text in [*outputs, (root / "state/jobs_state.json").read_text()]:
        assert FAKE_KEY not in text


def test_crontab_command_prints_absolute_lines(cli: Invoke, root: Path) -> None:
    """crontab prints the block, each line going to the absolute root before it runs the job."""
    result = cli("crontab")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"# BEGIN stratmancer-jobs {root}\n")
    patch = [line for line in result.stdout.splitlines() if line.startswith("0 3 * * * ")]
    assert len(patch) == 1, result.stdout
    assert patch[0].startswith(f"0 3 * * * cd {root} && STRATMANCER_HOME={root} PATH=")
    log = "logs/stratmancer-jobs.log"
    assert patch[0].endswith(f" --log-file {log} refresh-patch >> {log} 2>&1")


def test_python_m_entry_point_runs(root: Path) -> None:
    """`python -m stratmancer_jobs` works as a real process and follows the exit codes."""
    write_card(root, "mid", "20251101_164237")
    ok = run_proc(root, "refresh-registry")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "" and "Model registry refreshed" in ok.stderr  # quiet success under cron
    bad = run_proc(root, "status", "nope")
    assert bad.returncode == 2 and "unknown job" in bad.stderr


def test_check_exit_codes_ok_and_warning(cli: Invoke, root: Path) -> None:
    """--check exits 1 (warning) while jobs have never run and 0 once the state says all are fresh."""
    never = cli("status", "--check")
    assert never.exit_code == 1 and never.stdout.startswith("STRATMANCER JOBS WARNING")
    from datetime import UTC, datetime

    from stratmancer_jobs.jobtable import JOB_IDS
    from stratmancer_jobs.state import StateStore, mark_finished

    now = datetime.now(UTC)
    store = StateStore(root / "state/jobs_state.json")
    for job_id in JOB_IDS:
        store.update(
            job_id,
            lambda r: mark_finished(
                r, ok=True, started=now, finished=now, duration_s=0.1, summary="ok", error=None
            ),
            now,
        )
    fresh = cli("status", "--check")
    assert fresh.exit_code == 0, fresh.output
    assert fresh.stdout.startswith("STRATMANCER JOBS OK")


def test_pretty_exceptions_never_show_locals() -> None:
    """The Typer app is configured so that no traceback can print local variables."""
    assert app.pretty_exceptions_show_locals is False


JOB_ONLY = (
    "requests",
    "msgspec",
    "numpy",
    "filelock",
    "stratmancer_jobs.runner",
    "stratmancer_jobs.hookspec",
)


@pytest.mark.parametrize(
    ("args", "absent"),
    [
        # the plain table (cron, a pipe): no rich either, nor the jobs package, nor cronsim's English
        (("status",), (*JOB_ONLY, "rich", "stratmancer_jobs.jobs", "cronsim.explain")),
        (("status", "--json"), JOB_ONLY),
        (("status", "refresh-patch"), (*JOB_ONLY, "rich")),
    ],
)
def test_status_does_not_import_job_only_dependencies(
    root: Path, args: tuple[str, ...], absent: tuple[str, ...]
) -> None:
    """`status` stays light (start-up is most of its time): requests (patch), msgspec and numpy (history),
    filelock (state writes), hookspec (on_change hooks, none configured here) and the runner are
    imported only by the jobs; rich only to draw on a terminal."""
    import subprocess
    import sys

    from stratmancer_jobs.config import load_settings
    from tests.conftest import REPO
    from tests.status_fixtures import sample_report

    sample_report(load_settings(root, {"TZ": "UTC"}))  # a state with a success, a failure, a running job
    code = (
        "import sys\n"
        "from stratmancer_jobs.cli import app\n"
        f"try:\n    app(['--root', {str(root)!r}, *{list(args)!r}])\n"
        "except SystemExit:\n    pass\n"
        f"print(sorted(m for m in {list(absent)!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr


def test_if_due_flag_and_json_logs_through_the_cli(cli: Invoke, root: Path) -> None:
    """--if-due runs a never-run job, then declines with a note; --log-format json lines parse."""
    write_card(root, "mid", "20251101_164237")
    first = cli("--log-format", "json", "refresh-registry", "--if-due")
    assert first.exit_code == 0, first.output
    events = [json.loads(line) for line in first.stderr.splitlines()]
    assert events[-1]["event"] == "end" and "start" not in [e["event"] for e in events]  # start: -v only
    assert all(e["job"] == "refresh_model_registry" for e in events)
    assert len({e["run"] for e in events}) == 1 and len(events[0]["run"]) == 6  # one run id on each line
    second = cli("refresh-registry", "--if-due")
    assert second.exit_code == 0
    assert second.stdout == "" and "not due" in second.stderr
    job = json.loads(cli("status", "--json").stdout)["jobs"][1]
    assert job["success_count"] == 1


def test_timeout_flag_is_validated(cli: Invoke, root: Path) -> None:
    """A negative --timeout is a usage error (exit 2): one line giving the range, nothing run."""
    result = cli("refresh-registry", "--timeout", "-1")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --timeout must be between 0 and 604800 seconds (7 days; 0 = no limit), got -1.0\n"
    )
    assert not (root / "state" / "jobs_state.json").exists()
