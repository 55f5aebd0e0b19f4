"""Shared fixtures: a deployment root in tmp_path, settings for it, and ways to run the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner, Result

from stratmancer_jobs.cli import app
from stratmancer_jobs.config import JobSchedule, Settings, load_settings
from stratmancer_jobs.http import build_session
from stratmancer_jobs.jobtable import JobSpec
from tests.ddragon_server import DDragonServer

REPO = Path(__file__).resolve().parent.parent
FAKE_KEY = "RGAPI-test-0000-planted-secret-4f1c9d"
PICKLE = b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00\x8c\x08artifact\x94."  # pickle.dumps("artifact")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without deployment variables from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("STRATMANCER_") or name == "RIOT_API_KEY":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty deployment root with the standard directories."""
    base = tmp_path / "deploy"
    for sub in ("data/processed", "ml_pipeline/models/modelcards", "ml_pipeline/models/trained", "config"):
        (base / sub).mkdir(parents=True)
    return base


@pytest.fixture
def settings(root: Path) -> Settings:
    """Settings for ``root`` with no config file and an empty environment."""
    return load_settings(root, {"TZ": "UTC"})


def write_card(root: Path, elo: str, stamp: str, **overrides: Any) -> Path:
    """Write a realistic model card and its artifacts; ``overrides`` replace card fields."""
    iso = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}.5"
    card: dict[str, Any] = {
        "elo": elo,
        "model_type": "xgb",
        "timestamp": iso,
        "features": 3469,
        "train_size": 2626,
        "test_size": 292,
        "calibrated": True,
        "calibrator_method": "isotonic",
        "source_patch": "15.21",
        "model_file": f"draft_{elo}_xgb_{stamp}.pkl",
        "calibrator_file": f"calibrator_{elo}_{stamp}.pkl",
        "metrics": {"roc_auc_raw": 0.8029, "log_loss": 0.57},
        "params": {"max_depth": 6},
    }
    card.update(overrides)
    trained = root / "ml_pipeline/models/trained"
    for key in ("model_file", "calibrator_file"):
        name = card.get(key)
        if isinstance(name, str) and "/" not in name and ".." not in name and name:
            (trained / name).write_bytes(PICKLE)
    path = root / "ml_pipeline/models/modelcards" / f"modelcard_{elo}_{stamp}.json"
    path.write_text(json.dumps(card), encoding="utf-8")
    return path


@pytest.fixture
def cli(root: Path) -> Callable[..., Result]:
    """Invoke the CLI in-process against ``root``."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, ["--root", str(root), *args], env=env)

    return invoke


@dataclass
class Proc:
    returncode: int
    stdout: str
    stderr: str


def run_proc(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Proc:
    """Run ``python -m stratmancer_jobs --root ROOT ARGS`` as a real subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return Proc(done.returncode, done.stdout, done.stderr)


def with_fake_job(settings: Settings, module: str, *, timeout_s: int = 0) -> tuple[JobSpec, Settings]:
    """A JobSpec running ``tests.fake_jobs:<func>`` and settings that know its schedule."""
    spec = JobSpec(
        id="fake_job",
        name="Fake Job",
        command="fake",
        default_schedule="*/5 * * * *",
        default_grace_s=60,
        default_timeout_s=timeout_s,
        module=f"tests.fake_jobs:{module}",
    )
    jobs = dict(settings.jobs)
    jobs[spec.id] = JobSchedule(spec.default_schedule, spec.default_grace_s, timeout_s)
    return spec, replace(settings, jobs=jobs)


def start_fake_run(
    root: Path, *, seconds: float, timeout_s: int = 0
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Run the ``sleepy`` fake job in another process; return it once the state names it as running.

    The caller kills the process. The running marker is read from the state file as stored.
    """
    from stratmancer_jobs.state import read_state

    code = (
        "import logging, pathlib\n"
        "from stratmancer_jobs.config import load_settings\n"
        "from stratmancer_jobs.runner import run_job\n"
        "from tests.conftest import with_fake_job\n"
        f"s = load_settings(pathlib.Path({str(root)!r}), {{}})\n"
        f"spec, s = with_fake_job(s, 'sleepy', timeout_s={timeout_s})\n"
        f"run_job(spec, s, log=logging.getLogger('x'), options={{'seconds': {seconds}}})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
    state_file = root / "state" / "jobs_state.json"
    deadline = time.monotonic() + 20
    running = None
    while time.monotonic() < deadline and not running:
        time.sleep(0.05)
        if state_file.exists():
            running = read_state(state_file)["jobs"].get("fake_job", {}).get("running")
    if running is None or running["pid"] != proc.pid:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the fake run never showed as running: {running}")
    return proc, running


@pytest.fixture
def state_json(root: Path) -> Callable[[], dict[str, Any]]:
    """Read the state file of ``root``."""

    def read() -> dict[str, Any]:
        data: dict[str, Any] = json.loads((root / "state" / "jobs_state.json").read_text(encoding="utf-8"))
        return data

    return read


@pytest.fixture
def no_leak() -> Iterator[Callable[[str], None]]:
    """Assert a text does not contain the planted key."""

    def check(text: str) -> None:
        assert FAKE_KEY not in text

    yield check


@pytest.fixture
def server() -> Iterator[DDragonServer]:
    """A scripted Data Dragon stand-in on 127.0.0.1 (tests.ddragon_server)."""
    with DDragonServer() as srv:
        yield srv


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[requests.Session]:
    """The tool's HTTP session, with any proxy bypassed for 127.0.0.1."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with build_session() as s:
        yield s
