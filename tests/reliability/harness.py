"""Shared machinery of the reliability scenarios: deployment roots, real CLI processes, file checks.

Used by ``tests/reliability/scenarios.py`` (and through it by the pytest tests and
``scripts/reliability.py``). Everything runs the real CLI as ``python -m stratmancer_jobs`` in a child
process; fault injection comes from ``hooks/sitecustomize.py`` and only when asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from stratmancer_jobs.errors import StateError
from stratmancer_jobs.state import read_state

REPO = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).resolve().parent / "hooks"
PLANTED_KEY = "RGAPI-reliab-0000-planted-secret-9e2b7c"
VERSIONS = ["16.23.1", "16.22.1", "16.9.1", "lolpatch_7.17"]

# command -> (job id, outputs it writes, relative to the root)
JOBS: dict[str, tuple[str, tuple[str, ...]]] = {
    "refresh-history": (
        "refresh_history_index",
        ("ml_pipeline/history_index.json", "ml_pipeline/history_index.meta.json"),
    ),
    "refresh-registry": ("refresh_model_registry", ("ml_pipeline/model_registry.json",)),
    "refresh-patch": ("refresh_patch_meta", ("config/meta.json",)),
}
STATE = "state/jobs_state.json"
INDEX_KEYS = {"champ_wr", "pair_wr", "counter_wr", "n_matches", "avg_wr"}


@dataclass
class Outcome:
    """One scenario's figures for the table: trials run, failures (each described), what was checked."""

    scenario: str
    trials: int = 0
    failures: list[str] = field(default_factory=list)
    checked: str = ""

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def merge(self, other: Outcome) -> None:
        self.trials += other.trials
        self.failures += other.failures


def child_env(extra: Mapping[str, str] | None = None, *, hooks: bool = False) -> dict[str, str]:
    """The environment of a CLI child: no deployment variables from the caller, UTC, no proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATMANCER_", "RIOT_"))}
    path = [str(HOOKS)] if hooks else []
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([*path, str(REPO)]),
            "TZ": "UTC",
            "NO_PROXY": "127.0.0.1,localhost",
            "STRATMANCER_RETRY_INSTANT": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(extra or {})
    return env


def command(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), *args]


def run_cli(
    root: Path, *args: str, env: Mapping[str, str] | None = None, hooks: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (stdout and stderr captured as text)."""
    return subprocess.run(
        command(root, *args),
        env=child_env(env, hooks=hooks),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def started(
    argv_list: Sequence[Sequence[str]], env: Mapping[str, str]
) -> Iterator[list[subprocess.Popen[str]]]:
    """Start every command at once; whatever happens, no child outlives the block."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for argv in argv_list:
            procs.append(
                subprocess.Popen(
                    list(argv), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.communicate(timeout=10)


def tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[-400:]


# --- deployment roots -------------------------------------------------------------------------------


def make_root(base: Path, name: str = "deploy") -> Path:
    """A deployment root holding a copy of the repository's sample data (cards, artifacts, matches)."""
    root = base / name
    root.mkdir(parents=True)
    for sub in ("data/processed", "ml_pipeline/models"):
        shutil.copytree(REPO / sub, root / sub)
    (root / "config").mkdir()
    return root


def snapshot(root: Path, rels: Sequence[str]) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for rel in rels:
        try:
            out[rel] = (root / rel).read_bytes()
        except FileNotFoundError:
            out[rel] = None
    return out


# --- checks ------------------------------------------------------------------------------------------


def problem_with(root: Path, rel: str) -> str | None:
    """None when the file is absent or a complete, valid document of its kind; else what is wrong."""
    path = root / rel
    if rel == STATE:
        try:
            read_state(path)
        except StateError as exc:
            return str(exc)
        return None
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"{rel} does not parse: {exc}"
    if not isinstance(data, dict):
        return f"{rel} is not an object"
    if rel.endswith("history_index.json"):
        bad = [k for k, v in data.items() if not isinstance(v, dict) or set(v) != INDEX_KEYS]
        return f"{rel}: entries without the five keys: {bad[:3]}" if bad or not data else None
    if rel.endswith("model_registry.json"):
        return (
            None if {"active", "models", "invalid", "generated_at"} <= set(data) else f"{rel}: keys missing"
        )
    if rel == "config/meta.json":
        patch = data.get("patch")
        return None if isinstance(patch, str) and patch.count(".") == 1 else f"{rel}: no valid patch"
    return None


def lock_free(path: Path) -> bool:
    """Can this process take the lock right now (no one else holds it)?"""
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return False
    lock.release()
    return True


def wait_lock_free(path: Path, seconds: float) -> float | None:
    """Seconds until the lock was free, or None when it stayed held for ``seconds``."""
    t0 = time.monotonic()
    while True:
        if lock_free(path):
            return time.monotonic() - t0
        if time.monotonic() - t0 > seconds:
            return None
        time.sleep(0.02)


def job_counts(root: Path, job_id: str) -> tuple[int, int, int]:
    record: dict[str, Any] = read_state(root / STATE).get("jobs", {}).get(job_id, {})
    return (
        int(record.get("success_count", 0)),
        int(record.get("error_count", 0)),
        int(record.get("skipped_count", 0)),
    )


def can_mount() -> bool:
    """Whether this machine lets us mount a small tmpfs (root in a permissive container)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(f"/tmp/.stratmancer-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        ok = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(probe)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
        if ok:
            subprocess.run(["umount", str(probe)], capture_output=True, check=False)
        return ok
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
