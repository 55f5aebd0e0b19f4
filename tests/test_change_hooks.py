"""Change hooks through the real CLI and runner, against a recording HTTP server on 127.0.0.1.

A hook fires once per real change of a job's output, not on an unchanged run; a failed hook makes the
run an error, keeps the output and the pending change, and is retried on the next run until it
succeeds; header values are sent but never shown; command hooks get their environment and are
stopped by their timeout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import Result

from stratmancer_jobs.config import load_settings
from tests.conftest import write_card
from tests.ddragon_server import DDragonServer, closed_port_url, json_reply
from tests.hook_server import HookReply, hook_server

Invoke = Callable[..., Result]
SECRET = "hook-header-value-7f3e9a1c"
RELOAD = "/models/registry/reload"
FAST_HTTP = "[patch]\nmax_attempts = 1\ninstant_retries = true\n"


def _config(root: Path, text: str) -> None:
    (root / "config/jobs.toml").write_text(FAST_HTTP + text, encoding="utf-8")


def _url_hook(job: str, url: str, **extra: str) -> str:
    lines = [f"[[jobs.{job}.on_change]]", f'url = "{url}"']
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def _everything(result: Result, root: Path) -> str:
    """What a person or a log collector could see: stdout, stderr, the state file."""
    stderr = getattr(result, "stderr", "")
    return result.output + stderr + (root / "state/jobs_state.json").read_text(encoding="utf-8")


def _pending(root: Path, job: str) -> Any:
    return json.loads((root / "state/jobs_state.json").read_text())["jobs"][job]["pending_change"]


def test_url_hook_fires_once_per_change_with_headers_never_shown(cli: Invoke, root: Path) -> None:
    """The registry hook fires on the first run, not on an unchanged one, again on a new card; the
    header value is sent and appears in no output, log line or state field."""
    write_card(root, "mid", "20251101_164237")
    with hook_server() as server:
        _config(
            root,
            _url_hook(
                "refresh_model_registry",
                server.base_url + RELOAD,
                headers='{ X-STRATMANCER-KEY = "env:STRATMANCER_API_KEY" }',
            ),
        )
        env = {"STRATMANCER_API_KEY": SECRET}
        first = cli("-v", "refresh-registry", env=env)
        assert first.exit_code == 0, first.output
        assert len(server.requests) == 1
        request = server.requests[0]
        assert request.method == "POST" and request.path == RELOAD
        assert request.headers.get("X-STRATMANCER-KEY") == SECRET
        assert SECRET not in _everything(first, root)
        assert _pending(root, "refresh_model_registry") is None

        unchanged = cli("-v", "refresh-registry", env=env)
        assert unchanged.exit_code == 0, unchanged.output
        assert len(server.requests) == 1, "an unchanged registry must not fire the hook"

        write_card(root, "mid", "20251115_090000")
        changed = cli("-v", "refresh-registry", env=env)
        assert changed.exit_code == 0, changed.output
        assert len(server.requests) == 2
        status = cli("status", "refresh-registry", env=env)
        assert SECRET not in _everything(changed, root) + status.output


def test_failed_hook_is_an_error_kept_pending_and_retried_until_it_succeeds(cli: Invoke, root: Path) -> None:
    """A 500 makes the run exit 1 with the snapshot written; status names the hook and why; the next
    runs retry the hook although nothing changed, until a 200 clears the pending change."""
    write_card(root, "mid", "20251101_164237")
    with hook_server() as server:
        server.script(RELOAD, HookReply(500, b"boom"), HookReply(500, b"boom"), HookReply(200))
        _config(
            root,
            _url_hook(
                "refresh_model_registry", server.base_url + RELOAD, headers=f'{{ X-Key = "{SECRET}" }}'
            ),
        )
        failed = cli("refresh-registry")
        assert failed.exit_code == 1, failed.output
        assert (root / "ml_pipeline/model_registry.json").is_file(), "the output is kept"
        pending = _pending(root, "refresh_model_registry")
        assert pending is not None and pending["attempts"] == 1 and "HTTP 500" in pending["last_error"]
        status = cli("status", "refresh-registry")
        assert "on_change[0]" in status.output and "HTTP 500" in status.output
        assert "/models/registry/reload" in status.output
        assert SECRET not in _everything(failed, root) + status.output

        again = cli("refresh-registry")  # nothing changed, the hook is still owed
        assert again.exit_code == 1 and len(server.requests) == 2
        assert _pending(root, "refresh_model_registry")["attempts"] == 2

        ok = cli("refresh-registry")
        assert ok.exit_code == 0, ok.output
        assert len(server.requests) == 3
        assert _pending(root, "refresh_model_registry") is None
        assert cli("refresh-registry").exit_code == 0 and len(server.requests) == 3
        assert cli("status", "--check").output.count("refresh_model_registry=failing") == 0


def test_no_hooks_keeps_the_change_pending_for_the_next_run(cli: Invoke, root: Path) -> None:
    """--no-hooks writes the output and remembers the change; the next run (unchanged) fires it."""
    write_card(root, "mid", "20251101_164237")
    with hook_server() as server:
        _config(root, _url_hook("refresh_model_registry", server.base_url + RELOAD))
        manual = cli("refresh-registry", "--no-hooks")
        assert manual.exit_code == 0, manual.output
        assert server.requests == [] and _pending(root, "refresh_model_registry") is not None
        assert cli("refresh-registry").exit_code == 0
        assert len(server.requests) == 1 and _pending(root, "refresh_model_registry") is None


def test_command_hook_receives_its_environment(cli: Invoke, root: Path) -> None:
    """A command hook (argv, no shell) gets the job id and the changed paths in its environment."""
    write_card(root, "mid", "20251101_164237")
    out = root / "hook_env.json"
    script = (
        "import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
        "if k.startswith('STRATMANCER_')}, open(sys.argv[1], 'w'))"
    )
    argv = json.dumps([sys.executable, "-c", script, str(out)])
    _config(root, f"[[jobs.refresh_model_registry.on_change]]\ncommand = {argv}\n")
    result = cli("refresh-registry")
    assert result.exit_code == 0, result.output
    env = json.loads(out.read_text())
    assert env["STRATMANCER_JOB_ID"] == "refresh_model_registry"
    assert env["STRATMANCER_CHANGED_PATHS"] == str(root / "ml_pipeline/model_registry.json")
    assert "STRATMANCER_PATCH" not in env


def test_hanging_command_hook_is_stopped_by_its_timeout(cli: Invoke, root: Path) -> None:
    """A hook that hangs is killed after timeout_seconds; the run fails saying so, the change stays."""
    write_card(root, "mid", "20251101_164237")
    hook = '[[jobs.refresh_model_registry.on_change]]\ncommand = ["sleep", "60"]\ntimeout_seconds = 0.5\n'
    _config(root, hook)
    result = cli("refresh-registry")
    assert result.exit_code == 1, result.output
    pending = _pending(root, "refresh_model_registry")
    assert pending is not None and "timed out after 0.5 s" in pending["last_error"]
    assert "command sleep 60" in cli("status", "refresh-registry").output


def test_patch_hook_gets_the_patch_in_its_url(cli: Invoke, root: Path, server: DDragonServer) -> None:
    """The patch job's URL hook has {patch} filled in; a second run with the same patch does not fire."""
    server.script("/api/versions.json", json_reply(["16.23.1", "16.22.1"]))
    with hook_server() as hooks:
        _config(root, _url_hook("refresh_patch_meta", hooks.base_url + "/meta/refresh?patch={patch}"))
        env = {"STRATMANCER_DDRAGON_URL": server.base_url}
        result = cli("refresh-patch", env=env)
        assert result.exit_code == 0, result.output
        assert [r.path for r in hooks.requests] == ["/meta/refresh?patch=16.23"]
        assert cli("refresh-patch", env=env).exit_code == 0
        assert len(hooks.requests) == 1


def test_patch_placeholder_refused_for_other_jobs(cli: Invoke, root: Path) -> None:
    """{patch} in a registry hook is a configuration error naming the key (exit 2)."""
    _config(root, _url_hook("refresh_model_registry", "http://127.0.0.1:9/x?p={patch}"))
    result = cli("refresh-registry")
    assert result.exit_code == 2
    assert "jobs.refresh_model_registry.on_change[0].url" in result.output


def test_settings_carry_the_environment_for_hooks(root: Path) -> None:
    """The CLI's environment reaches the hooks through Settings (core modules never read os.environ)."""
    settings = load_settings(root, {"TZ": "UTC", "STRATMANCER_API_KEY": SECRET})
    assert settings.env["STRATMANCER_API_KEY"] == SECRET
    assert SECRET not in repr(settings)


def test_refresh_patch_against_a_dead_server_writes_nothing(cli: Invoke, root: Path) -> None:
    """No Data Dragon and no meta.json: nothing is written (no made-up fallback patch) and exit 1."""
    (root / "config/jobs.toml").write_text(FAST_HTTP, encoding="utf-8")
    result = cli("refresh-patch", env={"STRATMANCER_DDRAGON_URL": closed_port_url()})
    assert result.exit_code == 1, result.output
    assert not (root / "config/meta.json").exists()
    status = cli("status", "refresh-patch")
    assert "nothing written" in status.output


def test_configured_default_patch_is_still_written_as_fallback(cli: Invoke, root: Path) -> None:
    """With patch.default_patch set, a dead Data Dragon writes it with source fallback (exit 1)."""
    (root / "config/jobs.toml").write_text(FAST_HTTP + 'default_patch = "15.20"\n', encoding="utf-8")
    result = cli("refresh-patch", env={"STRATMANCER_DDRAGON_URL": closed_port_url()})
    assert result.exit_code == 1, result.output
    meta = json.loads((root / "config/meta.json").read_text())
    assert meta["patch"] == "15.20" and meta["source"] == "fallback"


# --- what the app serves: the warning state ------------------------------------------------------------


def _copy_sample_models(root: Path) -> None:
    import shutil

    for sub in ("modelcards", "trained"):
        target = root / "ml_pipeline/models" / sub
        shutil.rmtree(target)
        shutil.copytree(Path(__file__).resolve().parent.parent / "ml_pipeline/models" / sub, target)


def _registry(root: Path) -> Any:
    return json.loads((root / "ml_pipeline/model_registry.json").read_text())


def _job_state(root: Path, job: str = "refresh_model_registry") -> Any:
    return json.loads((root / "state/jobs_state.json").read_text())["jobs"][job]


def test_sample_high_model_without_calibrator_is_a_warning(cli: Invoke, root: Path) -> None:
    """The shipped sample: high stays active (logreg) but the app cannot serve it (no calibrator): the
    run succeeds with a warning, status shows it, --check exits 1, the metric says 0 for high."""
    _copy_sample_models(root)
    metrics = root / "metrics.prom"
    result = cli("--metrics-file", str(metrics), "refresh-registry")
    assert result.exit_code == 0, result.output
    snapshot = _registry(root)
    assert snapshot["active"]["high"]["model_file"] == "draft_high_logreg_20251030_220550.pkl"
    high = snapshot["served"]["high"]
    assert high["model_file"] == "draft_high_logreg_20251030_220550.pkl"
    assert high["servable"] is False and high["matches_active"] is True
    assert high["reason"] == "calibrator calibrator_high_20251030_220550.pkl not found"
    assert snapshot["served"]["mid"]["servable"] is True and snapshot["served"]["low"]["servable"] is True
    assert [u["file"] for u in snapshot["unservable"]] == ["modelcard_high_20251030_220550.json"]
    record = _job_state(root)
    assert record["last_status"] == "success"
    assert "high: no servable model: calibrator calibrator_high_20251030_220550.pkl not found" in (
        record["last_warning"]
    )
    assert "WARNING" in record["last_summary"]
    check = cli("status", "--check")
    assert check.exit_code == 1, check.output
    assert "refresh_model_registry=warning (high: no servable model" in check.output
    detail = cli("status", "refresh-registry")
    assert "warning" in detail.output and "calibrator_high_20251030_220550.pkl" in detail.output
    text = metrics.read_text()
    assert 'stratmancer_registry_servable{elo="high"} 0.0' in text
    assert 'stratmancer_registry_servable{elo="mid"} 1.0' in text


def test_newer_logreg_loses_to_older_xgb_by_file_name(cli: Invoke, root: Path) -> None:
    """A newer mid logreg card is active, but the app loads draft_mid_xgb_* (it sorts last): warning."""
    for elo in ("low", "high"):
        write_card(root, elo, "20251101_120000")
    write_card(root, "mid", "20251101_164237")
    logreg = "draft_mid_logreg_20251115_090000.pkl"
    write_card(root, "mid", "20251115_090000", model_type="logreg", model_file=logreg)
    metrics = root / "metrics.prom"
    result = cli("--metrics-file", str(metrics), "refresh-registry")
    assert result.exit_code == 0, result.output
    snapshot = _registry(root)
    assert snapshot["active"]["mid"]["model_file"] == "draft_mid_logreg_20251115_090000.pkl"
    mid = snapshot["served"]["mid"]
    assert mid["model_file"] == "draft_mid_xgb_20251101_164237.pkl" and mid["servable"] is True
    assert mid["matches_active"] is False and mid["card"] == "modelcard_mid_20251101_164237.json"
    warning = _job_state(root)["last_warning"]
    assert "mid: the app serves draft_mid_xgb_20251101_164237.pkl" in warning
    assert "low" not in warning and "high" not in warning
    assert cli("status", "--check").exit_code == 1
    assert 'stratmancer_registry_servable{elo="mid"} 1.0' in metrics.read_text()


def test_clean_registry_has_no_warning_and_check_is_ok(cli: Invoke, root: Path) -> None:
    """Every elo served as active: no warning, --check 0 (for the registry), all gauges 1."""
    for elo in ("low", "mid", "high"):
        write_card(root, elo, "20251101_120000")
    assert cli("refresh-registry").exit_code == 0
    assert _job_state(root)["last_warning"] is None
    check = cli("status", "--check", "refresh-registry")
    assert "refresh_model_registry=ok" in check.output


def test_require_calibrator_false_serves_a_model_without_one(cli: Invoke, root: Path) -> None:
    """registry.require_calibrator = false: the sample's high model counts as servable."""
    _copy_sample_models(root)
    (root / "config/jobs.toml").write_text("[registry]\nrequire_calibrator = false\n", encoding="utf-8")
    assert cli("refresh-registry").exit_code == 0
    assert _registry(root)["served"]["high"]["servable"] is True
    assert _job_state(root)["last_warning"] is None


def test_unservable_artifact_is_reported_with_its_reason(cli: Invoke, root: Path) -> None:
    """An artifact that is not a pickle (never unpickled) makes the card unservable, with the reason."""
    for elo in ("low", "mid", "high"):
        write_card(root, elo, "20251101_120000")
    (root / "ml_pipeline/models/trained/draft_mid_xgb_20251101_120000.pkl").write_bytes(b"\x1f\x8bgzip")
    assert cli("refresh-registry").exit_code == 0
    snapshot = _registry(root)
    assert snapshot["unservable"][0]["file"] == "modelcard_mid_20251101_120000.json"
    assert "gzip-compressed" in snapshot["unservable"][0]["reason"]
    assert snapshot["served"]["mid"]["servable"] is False
