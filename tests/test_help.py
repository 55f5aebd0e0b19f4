"""Each `--help` as a person reads it at 80 columns: examples, values as defaults, the environment,
the configured schedules, no type metavars, and a hint for a global option given after the command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stratmancer_jobs.jobtable import JOBS
from tests.conftest import run_proc

COMMANDS = [
    "refresh-history",
    "refresh-registry",
    "refresh-patch",
    "status",
    "crontab",
    "doctor",
    "systemd",
    "kubernetes",
]
TYPE_METAVAR = re.compile(r"<(bool|str|path|float|int|list\[str\]|file|directory)>")


def _help(root: Path, *args: str) -> str:
    done = run_proc(root, *args, "--help", env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_has_examples_and_reads_plainly(root: Path, command: str) -> None:
    """A command's help shows examples of that command, no `<bool>`-style types, and fits 80 columns."""
    text = _help(root, command)
    assert "Examples:" in text
    block = text.split("Examples:", 1)[1].split("\n\n", 1)[0]
    examples = [line.strip() for line in block.splitlines() if "stratmancer-jobs" in line]
    assert examples and all(f" {command}" in line for line in examples), examples
    assert not TYPE_METAVAR.search(text), TYPE_METAVAR.search(text)
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.parametrize("spec", JOBS, ids=lambda spec: spec.command)
def test_timeout_default_is_a_value(root: Path, spec: object) -> None:
    """--timeout says the job's default in seconds, not only the config key's name."""
    text = " ".join(_help(root, spec.command).split())  # type: ignore[attr-defined]
    assert f"default: {spec.default_timeout_s} s" in text  # type: ignore[attr-defined]


def test_top_help_lists_the_environment_and_the_configured_schedules(root: Path) -> None:
    """The top-level help names every environment variable and each job's schedule from jobs.toml."""
    text = _help(root)
    for name in ("STRATMANCER_HOME", "STRATMANCER_TZ", "STRATMANCER_DDRAGON_URL", "STRATMANCER_METRICS_FILE"):
        assert name in text
    assert "refresh-patch     0 3 * * *" in text and "(defaults)" in text
    (root / "config/jobs.toml").write_text('[jobs.refresh_patch_meta]\nschedule = "30 4 * * 1-5"\n')
    configured = _help(root)
    assert "refresh-patch     30 4 * * 1-5" in configured and "(from config/jobs.toml)" in configured
    assert not TYPE_METAVAR.search(configured)
    assert max(len(line) for line in configured.splitlines()) <= 80


@pytest.mark.parametrize("option", [["--root", "/srv/x"], ["--root=/srv/x"], ["-v"], ["--log-file", "x.log"]])
def test_global_option_after_the_command_gets_a_hint(root: Path, option: list[str]) -> None:
    """`status --root DIR` says --root is global and goes before the command (exit 2)."""
    done = run_proc(root, "status", *option)
    assert done.returncode == 2
    name = option[0].split("=")[0]
    assert f"{name} is a global option: put it before the command" in done.stderr
