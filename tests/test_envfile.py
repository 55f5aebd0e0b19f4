"""Secrets from config/stratmancer.env: systemd EnvironmentFile= syntax, permissions, precedence,
and a hook header that works under cron's and systemd's empty environment without the value showing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stratmancer_jobs.config import load_settings
from stratmancer_jobs.envfile import parse_env
from stratmancer_jobs.errors import ConfigError
from tests.conftest import run_proc, write_card
from tests.hook_server import hook_server

SECRET = "file-secret-value-3b9d1e77"
RELOAD = "/models/registry/reload"


def _env_file(root: Path, text: str, mode: int = 0o600) -> Path:
    path = root / "config/stratmancer.env"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\n", {"A": "1"}),
        ("# comment\n; also a comment\n\n  B = two words  \n", {"B": "two words"}),
        ("C='single $quoted \\n'\n", {"C": "single $quoted \\n"}),
        ('D="a \\"b\\" \\\\ \\$x"\n', {"D": 'a "b" \\ $x'}),
        ("E=back\\\nslash\n", {"E": "backslash"}),
        ("F=a\\ b\\\\c\n", {"F": "a b\\c"}),
        ("G='multi\nline'\nH=2", {"G": "multi\nline", "H": "2"}),
        ("I=\n", {"I": ""}),
        ("J=x=y#not a comment\n", {"J": "x=y#not a comment"}),
        ("K=1\nK=2\n", {"K": "2"}),
        ("L=a 'b' c\n", {"L": "a 'b' c"}),
    ],
)
def test_environment_file_syntax_as_systemd_reads_it(text: str, expected: dict[str, str]) -> None:
    """Comments, blanks, quotes, backslashes and continuation lines are read as EnvironmentFile= does."""
    assert parse_env(text, "f") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just words\n", "line 1: not a NAME=value line"),
        ("A=1\n1BAD=2\n", "line 2: the name is not a valid variable name"),
        ("export A=1\n", "line 1: the name is not a valid variable name"),
        ("A='open\n", "line 1: a quote is not closed"),
    ],
)
def test_bad_lines_are_refused_without_showing_them(text: str, message: str) -> None:
    """A bad line is named by its number; its text (maybe a secret) is not repeated."""
    with pytest.raises(ConfigError) as info:
        parse_env(text, "config/stratmancer.env")
    assert message in str(info.value)
    assert "open" not in str(info.value) and "words" not in str(info.value)


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640, 0o620, 0o666])
def test_env_file_open_to_others_is_refused_with_the_fix(root: Path, mode: int) -> None:
    """A file group or others may read or write stops every command: exit 2, the file and chmod 600."""
    path = _env_file(root, f"STRATMANCER_API_KEY={SECRET}\n", mode)
    done = run_proc(root, "status")
    assert done.returncode == 2, done.stderr
    assert str(path) in done.stderr and f"chmod 600 {path}" in done.stderr
    assert SECRET not in done.stderr + done.stdout
    path.chmod(0o600)
    assert run_proc(root, "status").returncode == 0


def test_process_environment_wins_over_the_file(root: Path) -> None:
    """A variable in both places takes the process's value; the file fills in the rest."""
    _env_file(root, "STRATMANCER_API_KEY=from-file-123456\nOTHER_TOKEN=only-in-file-98765\n")
    settings = load_settings(root, {"STRATMANCER_API_KEY": "from-process-654321"})
    assert settings.env["STRATMANCER_API_KEY"] == "from-process-654321"
    assert settings.env["OTHER_TOKEN"] == "only-in-file-98765"
    assert settings.env_file == root / "config/stratmancer.env"
    assert "only-in-file-98765" in settings.redact_values


def test_env_file_key_names_another_file_which_must_exist(root: Path) -> None:
    """`env_file` in jobs.toml is read relative to the root; a missing named file is exit 2."""
    (root / "config/jobs.toml").write_text('env_file = "secrets/prod.env"\n')
    with pytest.raises(ConfigError, match="env_file"):
        load_settings(root, {})
    (root / "secrets").mkdir()
    (root / "secrets/prod.env").write_text("HOOK_AUTH=abcdef-123\n")
    (root / "secrets/prod.env").chmod(0o600)
    assert load_settings(root, {}).env["HOOK_AUTH"] == "abcdef-123"


def _hook_config(root: Path, url: str) -> None:
    (root / "config/jobs.toml").write_text(
        "[[jobs.refresh_model_registry.on_change]]\n"
        f'url = "{url}"\n'
        'headers = { X-STRATMANCER-KEY = "env:STRATMANCER_API_KEY", X-Plain = "env:HOOK_AUTH" }\n',
        encoding="utf-8",
    )


def _run_empty_env(root: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "stratmancer-jobs")
    return subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in env.items()), exe, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=root,
    )


def test_hook_header_from_the_env_file_works_under_env_i_and_never_shows(root: Path) -> None:
    """Under `env -i` (as cron starts a job) the hook gets both headers from the file; neither value
    appears in the output, the log, the state or status, even when the value's name looks harmless."""
    write_card(root, "mid", "20251101_164237")
    _env_file(root, f"STRATMANCER_API_KEY={SECRET}\nHOOK_AUTH=harmless-named-9c1\n")
    with hook_server() as server:
        _hook_config(root, server.base_url + RELOAD)
        done = _run_empty_env(root, ["-v", "refresh-registry"], {})
        assert done.returncode == 0, done.stderr
        assert len(server.requests) == 1
        headers = server.requests[0].headers
        assert headers.get("X-STRATMANCER-KEY") == SECRET and headers.get("X-Plain") == "harmless-named-9c1"
    status = _run_empty_env(root, ["status", "--json"], {})
    seen = done.stdout + done.stderr + status.stdout + (root / "state/jobs_state.json").read_text()
    assert SECRET not in seen and "harmless-named-9c1" not in seen


def test_systemd_unit_loads_the_env_file_and_its_environment_runs_the_hook(root: Path) -> None:
    """The service unit has EnvironmentFile=-<root>/config/stratmancer.env; started with exactly the
    unit's Environment= lines (as systemd would, the file read by the tool), the hook succeeds."""
    write_card(root, "mid", "20251101_164237")
    _env_file(root, f"STRATMANCER_API_KEY={SECRET}\nHOOK_AUTH=harmless-named-9c1\n")
    with hook_server() as server:
        _hook_config(root, server.base_url + RELOAD)
        units = run_proc(root, "systemd")
        assert units.returncode == 0, units.stderr
        service = units.stdout.split("# ---- stratmancer-refresh-registry.service\n", 1)[1].split("# ----")[0]
        assert f"EnvironmentFile=-{root}/config/stratmancer.env" in service.splitlines()
        env = {}
        for line in service.splitlines():
            if line.startswith("Environment="):
                name, value = line[len("Environment=") :].strip('"').split("=", 1)
                env[name] = value
        cwd = next(
            line.split("=", 1)[1] for line in service.splitlines() if line.startswith("WorkingDirectory=")
        )
        assert Path(cwd) == root and env["STRATMANCER_HOME"] == str(root)
        done = _run_empty_env(root, ["refresh-registry"], env)
        assert done.returncode == 0, done.stderr
        assert server.requests and server.requests[0].headers.get("X-STRATMANCER-KEY") == SECRET
        assert SECRET not in done.stdout + done.stderr
    assert json.loads((root / "state/jobs_state.json").read_text())  # a real recorded run
