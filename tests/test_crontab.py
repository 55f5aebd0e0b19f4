"""crontab.example agrees with what `stratmancer-jobs crontab` generates from the defaults."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from stratmancer_jobs.config import load_settings
from stratmancer_jobs.crontab import render_crontab
from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.jobtable import JOBS
from stratmancer_jobs.layout import Layout
from tests.conftest import REPO, run_proc


def test_crontab_example_matches_defaults(root: Path) -> None:
    """The shipped crontab.example is exactly the generated text for /srv/stratmancer."""
    settings = replace(load_settings(root, {"TZ": "UTC"}), layout=Layout(Path("/srv/stratmancer")))
    generated = render_crontab(
        settings,
        executable="/srv/stratmancer/.venv/bin/stratmancer-jobs",
        path_env="/srv/stratmancer/.venv/bin:/usr/local/bin:/usr/bin:/bin",
    )
    assert (REPO / "crontab.example").read_text() == generated


def test_crontab_example_has_each_schedule_line() -> None:
    """Each job's default schedule and command appear once as a cron line, plus an @reboot --if-due line."""
    lines = (REPO / "crontab.example").read_text().splitlines()
    for spec in JOBS:
        scheduled = [ln for ln in lines if ln.startswith(spec.default_schedule + " ")]
        assert any(f" {spec.command} >> " in ln for ln in scheduled), spec.id
        assert any(ln.startswith("@reboot") and f"{spec.command} --if-due" in ln for ln in lines)
    assert lines[0] == "# BEGIN stratmancer-jobs /srv/stratmancer"
    assert lines[-1] == "# END stratmancer-jobs /srv/stratmancer"
    # no NAME=value line: it would leak into the user's entries written after the block
    assert not [ln for ln in lines if re.match(r"[A-Za-z_]+=", ln)]
    assert all(
        "cd /srv/stratmancer && STRATMANCER_HOME=/srv/stratmancer PATH=" in ln
        for ln in lines[3:-1]
        if not ln.startswith("#")
    )


def test_crontab_follows_configured_schedule(root: Path) -> None:
    """A schedule changed in config/jobs.toml shows up in the generated crontab."""
    (root / "config/jobs.toml").write_text('[jobs.refresh_patch_meta]\nschedule = "30 4 * * *"\n')
    text = render_crontab(load_settings(root, {}), executable="/x/stratmancer-jobs", path_env="/usr/bin")
    log = "logs/stratmancer-jobs.log"
    assert f"/x/stratmancer-jobs --log-file {log} refresh-patch >> {log} 2>&1\n" in text
    assert "\n30 4 * * * cd " in text


# --- crontab(5) round trip --------------------------------------------------------------------------
# Without a cron daemon (tests/test_crontab_install.py runs the real one where installed), the test
# applies crontab(5)'s own rules, as Vixie cron and cronie implement them (do_command.c): in the
# command part a "\\%" becomes "%" (any other backslash stays), the first unescaped "%" ends the
# command (the rest is stdin), and the command is then run by /bin/sh -c. Environment lines are
# NAME=value, value up to the end of the line with trailing blanks removed.

HOSTILE_ROOT = 'deploy 100% \\%x it\'s "quoted" $HOME `id` back\\slash café дерево'


def _cron_command(field: str) -> tuple[str, str]:
    """Split a crontab command field into (what /bin/sh -c gets, what the command gets on stdin)."""
    out: list[str] = []
    escaped = False
    for i, ch in enumerate(field):
        if escaped:
            if ch == "%":
                out[-1] = "%"
            else:
                out.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
        elif ch == "%":
            return "".join(out), field[i + 1 :].replace("%", "\n")
        out.append(ch)
    return "".join(out), ""


def _parse(text: str) -> tuple[dict[str, str], list[str]]:
    """The environment lines and the command fields of a crontab, as cron reads them."""
    env: dict[str, str] = {}
    commands: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("@"):
            commands.append(line.split(None, 1)[1])
        elif line[0].isalpha() and "=" in line.split(None, 1)[0]:
            name, value = line.split("=", 1)
            env[name.strip()] = value.strip()
        else:
            commands.append(line.split(None, 5)[5])
    return env, commands


def test_hostile_root_survives_crontab_percent_handling_and_sh(tmp_path: Path) -> None:
    """A root with %, \\%, spaces, quotes, $, `, backslash and non-ASCII reaches the job intact via cron."""
    root = tmp_path / HOSTILE_ROOT
    (root / "logs").mkdir(parents=True)
    bindir = root / ".venv" / "bin%"
    bindir.mkdir(parents=True)
    exe = bindir / "stratmancer-jobs"
    exe.write_text('#!/bin/sh\nprintf \'%s\\0\' "$0" "$@" "HOME=$STRATMANCER_HOME"\nprintf \'\\n\'\n')
    exe.chmod(0o755)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "sleep").write_text("#!/bin/sh\nexit 0\n")  # the @reboot lines' `sleep 60`
    (stubs / "sleep").chmod(0o755)
    settings = replace(load_settings(tmp_path, {"TZ": "UTC"}), layout=Layout(root))
    text = render_crontab(settings, executable=str(exe), path_env=f"{stubs}:/usr/bin:/bin")

    env, commands = _parse(text)
    assert env == {}  # every variable is set inline, on the block's own lines
    assert len(commands) == 2 * len(JOBS)
    for field in commands:
        command, stdin = _cron_command(field)
        assert stdin == "", field  # no "%" was taken as the end of the command
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            env={"PATH": f"{stubs}:/usr/bin:/bin"},  # cron's own PATH, with the stub `sleep`
            capture_output=True,
            check=False,
            timeout=30,
        )
        assert done.returncode == 0, (field, done.stderr)
    log = (root / "logs" / "stratmancer-jobs.log").read_bytes().decode("utf-8").splitlines()
    runs = [line.split("\0")[:-1] for line in log]
    log_opt = ["--log-file", "logs/stratmancer-jobs.log"]
    expected = [[str(exe), *log_opt, spec.command, f"HOME={root}"] for spec in JOBS]
    expected += [[str(exe), *log_opt, spec.command, "--if-due", f"HOME={root}"] for spec in JOBS]
    assert runs == expected


@pytest.mark.parametrize("name", ["a%b", "50%", "%lead", "x\\%y", "two %% signs"])
def test_every_percent_in_a_command_is_escaped(tmp_path: Path, name: str) -> None:
    """No job line holds a "%" that cron would turn into a newline (each one is written "\\%")."""
    settings = replace(load_settings(tmp_path, {"TZ": "UTC"}), layout=Layout(Path("/srv") / name))
    text = render_crontab(settings, executable="/usr/bin/stratmancer-jobs", path_env="/usr/bin")
    _, commands = _parse(text)
    for field in commands:
        command, stdin = _cron_command(field)
        assert stdin == "", field
        words = shlex.split(command)  # POSIX shell word splitting, as /bin/sh would do it
        assert words[words.index("cd") + 1] == f"/srv/{name}", field
        assert f"STRATMANCER_HOME=/srv/{name}" in words, field


def test_root_with_a_newline_is_refused_with_exit_2(tmp_path: Path) -> None:
    """A root whose name holds a newline cannot be a crontab line: one clear line and exit 2."""
    root = tmp_path / "two\nlines"
    (root / "config").mkdir(parents=True)
    with pytest.raises(ConfigError, match="contains a newline"):
        render_crontab(load_settings(root, {}), executable="/x/stratmancer-jobs", path_env="/usr/bin")
    done = run_proc(root, "crontab", env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "contains a newline" in done.stderr
