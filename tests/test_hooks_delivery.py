"""Change hooks: the delivery rules beyond the clean success, through the real CLI and runner against
the recording HTTP server on 127.0.0.1.

* a partial success (refresh-history with one bad tier file) fires the hooks for what it did write,
  and stays an error;
* a pending change is retried by every run that holds the job's lock, a failed one included;
* a model or calibrator file overwritten under the same name is a registry change;
* a Ctrl-C during a hook is recorded (failed run, pending change kept) before it propagates.
"""

from __future__ import annotations

import json
import logging
import pickle
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from stratmancer_jobs.config import load_settings
from stratmancer_jobs.jobtable import find_job
from stratmancer_jobs.runner import run_job
from tests.conftest import write_card
from tests.ddragon_server import DDragonServer, closed_port_url, json_reply
from tests.history_fixtures import low_thresholds, match, processed, write_array
from tests.hook_server import HookReply, hook_server

Invoke = Callable[..., Result]
FAST_HTTP = "[patch]\nmax_attempts = 1\ninstant_retries = true\n"
RELOAD = "/models/registry/reload"
RESTART = "/restart"


def _state(root: Path, job: str) -> Any:
    return json.loads((root / "state/jobs_state.json").read_text())["jobs"][job]


def _url_hook(job: str, url: str) -> str:
    return f'[[jobs.{job}.on_change]]\nurl = "{url}"\n'


def _games(prefix: str, n: int) -> list[dict[str, object]]:
    teams = [([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]), ([6, 2, 11, 4, 12], [1, 7, 13, 9, 5])]
    return [match(f"{prefix}{i}", *teams[i % 2], i % 3 != 0) for i in range(n)]


def test_partial_history_failure_fires_the_hooks_for_what_it_wrote(cli: Invoke, root: Path) -> None:
    """A bad tier file while GOLD gained games: the index is rewritten, the run exits 1, and the hook
    tells the app (no pending change left). A later run that changes nothing fires nothing."""
    low_thresholds(root)
    write_array(root, "SILVER", _games("S", 12))
    write_array(root, "GOLD", _games("G", 20))
    write_array(root, "DIAMOND", _games("D", 9))
    index = root / "ml_pipeline/history_index.json"
    with hook_server() as server:
        config = root / "config/jobs.toml"
        config.write_text(
            config.read_text()
            + "\n"
            + FAST_HTTP
            + _url_hook("refresh_history_index", server.base_url + RESTART)
        )
        first = cli("refresh-history")
        assert first.exit_code == 0, first.output
        assert len(server.requests) == 1
        before = index.read_bytes()

        write_array(root, "GOLD", _games("G", 30))
        (processed(root) / "matches_DIAMOND.json").write_text('[{"blue_picks": [1, 2')
        partial = cli("refresh-history")
        assert partial.exit_code == 1, partial.output
        assert index.read_bytes() != before, "the other tiers were updated"
        assert len(server.requests) == 2, "the partial run's change must reach the app"
        record = _state(root, "refresh_history_index")
        assert record["last_status"] == "error" and "matches_DIAMOND.json" in record["last_error_message"]
        assert record["pending_change"] is None

        same = cli("refresh-history")  # still the bad file, nothing else changed: no change, no hook
        assert same.exit_code == 1
        assert len(server.requests) == 2


def test_partial_history_failure_with_a_failing_hook_keeps_the_change_pending(
    cli: Invoke, root: Path
) -> None:
    """The partial run's hook gets a 500: both errors are recorded, the change stays pending and the
    next run (still partial, unchanged) retries it."""
    low_thresholds(root)
    write_array(root, "GOLD", _games("G", 20))
    write_array(root, "DIAMOND", _games("D", 9))
    (processed(root) / "matches_SILVER.json").write_text("[{")
    with hook_server() as server:
        server.script(RESTART, HookReply(500, b"down"), HookReply(200))
        config = root / "config/jobs.toml"
        config.write_text(
            config.read_text()
            + "\n"
            + FAST_HTTP
            + _url_hook("refresh_history_index", server.base_url + RESTART)
        )
        failed = cli("refresh-history")
        assert failed.exit_code == 1, failed.output
        record = _state(root, "refresh_history_index")
        message = record["last_error_message"]
        assert "matches_SILVER.json" in message and "on_change[0]" in message and "HTTP 500" in message
        assert record["pending_change"]["attempts"] == 1
        again = cli("refresh-history")
        assert again.exit_code == 1
        assert len(server.requests) == 2
        assert _state(root, "refresh_history_index")["pending_change"] is None


def test_failed_run_still_retries_the_pending_change(cli: Invoke, root: Path, server: DDragonServer) -> None:
    """refresh-patch wrote 16.23 but its hook failed; the next runs cannot reach Data Dragon (exit 1),
    yet each retries the owed hook (16.23 is on disk) until it succeeds; the change is never lost."""
    server.script("/api/versions.json", json_reply(["16.23.1", "16.22.1"]))
    with hook_server() as hooks:
        hooks.script("/meta/refresh", HookReply(500), HookReply(500), HookReply(200))
        (root / "config/jobs.toml").write_text(
            FAST_HTTP + _url_hook("refresh_patch_meta", hooks.base_url + "/meta/refresh?patch={patch}")
        )
        first = cli("refresh-patch", env={"STRATMANCER_DDRAGON_URL": server.base_url})
        assert first.exit_code == 1, first.output
        assert _state(root, "refresh_patch_meta")["pending_change"]["attempts"] == 1

        dead = {"STRATMANCER_DDRAGON_URL": closed_port_url()}
        down = cli("refresh-patch", env=dead)
        assert down.exit_code == 1, down.output
        assert len(hooks.requests) == 2, "the failed run must retry the pending hook"
        record = _state(root, "refresh_patch_meta")
        assert record["pending_change"]["attempts"] == 2
        assert record["pending_change"]["fields"]["patch"] == "16.23"
        assert "HTTP 500" in record["last_error_message"]

        down_again = cli("refresh-patch", env=dead)
        assert down_again.exit_code == 1, "the fetch still failed: the run stays an error"
        assert [r.path for r in hooks.requests][-1] == "/meta/refresh?patch=16.23"
        assert len(hooks.requests) == 3
        record = _state(root, "refresh_patch_meta")
        assert record["pending_change"] is None
        assert "HTTP 500" not in record["last_error_message"]
        assert json.loads((root / "config/meta.json").read_text())["patch"] == "16.23"


def test_model_overwritten_under_the_same_name_fires_the_hook(cli: Invoke, root: Path) -> None:
    """A retrain that overwrites draft_mid_*.pkl (then its calibrator) in place, with no new card, is a
    change; an untouched registry is not."""
    for elo in ("low", "mid", "high"):
        write_card(root, elo, "20251101_120000")
    trained = root / "ml_pipeline/models/trained"
    with hook_server() as server:
        (root / "config/jobs.toml").write_text(_url_hook("refresh_model_registry", server.base_url + RELOAD))
        assert cli("refresh-registry").exit_code == 0
        assert cli("refresh-registry").exit_code == 0
        assert len(server.requests) == 1

        model = trained / "draft_mid_xgb_20251101_120000.pkl"
        inode = model.stat().st_ino
        with model.open("r+b") as handle:  # rewritten in place: same name, same inode, still servable
            handle.truncate(0)
            handle.write(pickle.dumps("retrained weights"))
        assert model.stat().st_ino == inode
        assert cli("refresh-registry").exit_code == 0
        assert len(server.requests) == 2, "an overwritten served model must fire the hook"

        calibrator = trained / "calibrator_mid_20251101_120000.pkl"
        calibrator.write_bytes(pickle.dumps("recalibrated"))
        assert cli("refresh-registry").exit_code == 0
        assert len(server.requests) == 3
        assert cli("refresh-registry").exit_code == 0
        assert len(server.requests) == 3
        assert _state(root, "refresh_model_registry")["last_warning"] is None, "both stayed servable"


def test_ctrl_c_during_a_hook_is_recorded_before_it_propagates(root: Path) -> None:
    """A hook that sends SIGINT to the runner: KeyboardInterrupt still reaches the caller, but first the
    run is recorded as interrupted (no running marker left) and the change stays pending for the next run."""
    write_card(root, "mid", "20251101_120000")
    script = "import os, signal, time; os.kill(os.getppid(), signal.SIGINT); time.sleep(30)"
    argv = json.dumps([sys.executable, "-c", script])
    (root / "config/jobs.toml").write_text(
        f"[[jobs.refresh_model_registry.on_change]]\ncommand = {argv}\ntimeout_seconds = 60\n"
    )
    settings = load_settings(root, {"TZ": "UTC"})
    spec = find_job("refresh-registry")
    # Python's own SIGINT handler, as in the CLI: a test runner may ignore SIGINT (mutmut's workers do)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_job(spec, settings, log=logging.getLogger("test.hooks.ctrl_c"))
    finally:
        signal.signal(signal.SIGINT, previous)
    record = _state(root, "refresh_model_registry")
    assert record["running"] is None
    assert record["last_status"] == "interrupted" and record["interrupted_count"] == 1
    assert record["error_count"] == 0 and record["runs"][-1]["status"] == "interrupted"
    pending = record["pending_change"]
    assert pending is not None and pending["paths"] == [str(root / "ml_pipeline/model_registry.json")]
    assert (root / "ml_pipeline/model_registry.json").is_file()
