"""`stratmancer-jobs doctor`: one ok/warn/fail line per check with its fix, exit 0/1/2.

It passes on the shipped sample after the set-up, and fails naming the fix for a missing hook
variable, an env file others can read, a bad schedule and an installed crontab block that differs.
The crontab is a recording fake on PATH (the install tests exercise the real binary).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Proc, run_proc

SECRET = "doctor-secret-value-51c0ffee"


def _sample_root(tmp_path: Path) -> Path:
    """A copy of the repository's sample deployment (data, models, config example)."""
    root = tmp_path / "sample"
    for sub in ("data", "ml_pipeline", "config"):
        shutil.copytree(REPO / sub, root / sub)
    return root


def _fake_crontab(tmp_path: Path, text: str | None) -> dict[str, str]:
    """A `crontab` on PATH whose `-l` prints ``text`` (None: the user has no crontab)."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir(exist_ok=True)
    tab = tmp_path / "fake-crontab"
    if text is not None:
        tab.write_text(text)
    script = bin_dir / "crontab"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in\n  -l) [ -f "{tab}" ] || {{ echo "no crontab for x" >&2; exit 1; }}; cat "{tab}" ;;\n'
        f'  -) cat > "{tab}" ;;\nesac\n'
    )
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"}


def _doctor(root: Path, env: dict[str, str]) -> Proc:
    return run_proc(root, "doctor", env=env)


def _levels(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines() if line.split()[:1] in (["ok"], ["warn"], ["fail"])]


def test_doctor_passes_on_the_sample_and_again_after_the_crontab_install(tmp_path: Path) -> None:
    """On the sample root every check is ok (exit 0), with where each setting came from and each
    job's next runs; after `crontab --install` it says the installed block matches."""
    root = _sample_root(tmp_path)
    env = _fake_crontab(tmp_path, None)
    done = _doctor(root, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(_levels(done.stdout)) == {"ok"}
    assert f"root = {root} (flag)" in done.stdout
    assert "timezone = UTC (env STRATMANCER_TZ)" not in done.stdout  # TZ=UTC is the machine's zone here
    assert "job refresh-registry: " in done.stdout and "(*/5 * * * *, default)" in done.stdout
    registry = next(line for line in done.stdout.splitlines() if "job refresh-registry" in line)
    assert registry.count(", 20") == 4  # five next runs
    assert "nothing installed" in done.stdout
    assert run_proc(root, "crontab", "--install", env=env).returncode == 0
    again = _doctor(root, env)
    assert again.returncode == 0, again.stdout
    assert "the installed block matches the configuration" in again.stdout


def test_doctor_fails_on_a_block_that_differs_and_names_the_fix(tmp_path: Path) -> None:
    """A schedule changed after the install makes the crontab check fail with `crontab --install`."""
    root = _sample_root(tmp_path)
    env = _fake_crontab(tmp_path, "17 2 * * * /usr/local/bin/backup\n")
    assert run_proc(root, "crontab", "--install", env=env).returncode == 0
    (root / "config/jobs.toml").write_text('[jobs.refresh_patch_meta]\nschedule = "30 4 * * *"\n')
    done = _doctor(root, env)
    assert done.returncode == 2, done.stdout
    assert "fail  crontab: the installed block differs from the configuration" in done.stdout
    assert "fix: stratmancer-jobs crontab --install" in done.stdout


def test_doctor_fails_on_a_missing_hook_variable_without_printing_values(tmp_path: Path) -> None:
    """A hook header's variable missing from the env file fails, naming the variable and the file;
    a present one is ok and its value is never printed."""
    root = _sample_root(tmp_path)
    (root / "config/jobs.toml").write_text(
        "[[jobs.refresh_model_registry.on_change]]\n"
        'url = "http://127.0.0.1:8000/models/registry/reload"\n'
        'headers = { X-Key = "env:STRATMANCER_API_KEY", X-Other = "env:OTHER_TOKEN" }\n'
    )
    envfile = root / "config/stratmancer.env"
    envfile.write_text(f"STRATMANCER_API_KEY={SECRET}\n")
    envfile.chmod(0o600)
    done = _doctor(root, _fake_crontab(tmp_path, None))
    assert done.returncode == 2, done.stdout
    assert "header X-Other needs OTHER_TOKEN, which is not set" in done.stdout
    assert f"fix: add OTHER_TOKEN=... to {envfile}" in done.stdout
    assert "STRATMANCER_API_KEY" in done.stdout  # the env file's names are listed
    assert SECRET not in done.stdout + done.stderr


def test_doctor_fails_on_a_world_readable_env_file(tmp_path: Path) -> None:
    """An env file others can read is a failure line with the chmod 600 fix, not a crash."""
    root = _sample_root(tmp_path)
    envfile = root / "config/stratmancer.env"
    envfile.write_text(f"STRATMANCER_API_KEY={SECRET}\n")
    envfile.chmod(0o644)
    done = _doctor(root, _fake_crontab(tmp_path, None))
    assert done.returncode == 2
    assert done.stdout.startswith("fail  configuration: env file ")
    assert f"chmod 600 {envfile}" in done.stdout
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize("schedule", ["61 * * * *", "every day"])
def test_doctor_fails_on_a_bad_schedule_naming_the_key(tmp_path: Path, schedule: str) -> None:
    """A bad cron expression is a failure naming jobs.<id>.schedule and where to fix it."""
    root = _sample_root(tmp_path)
    (root / "config/jobs.toml").write_text(f'[jobs.refresh_history_index]\nschedule = "{schedule}"\n')
    done = _doctor(root, _fake_crontab(tmp_path, None))
    assert done.returncode == 2
    assert done.stdout.startswith("fail  configuration: ")
    assert "config key jobs.refresh_history_index.schedule" in done.stdout
    assert f"fix: edit {root}/config/jobs.toml" in done.stdout


def test_doctor_warns_on_missing_inputs(tmp_path: Path) -> None:
    """A root without data/processed is a warning (exit 1) with the fix."""
    root = _sample_root(tmp_path)
    shutil.rmtree(root / "data/processed")
    done = _doctor(root, _fake_crontab(tmp_path, None))
    assert done.returncode == 1, done.stdout
    assert f"warn  match data: {root}/data/processed is missing" in done.stdout


def test_installed_systemd_units_are_compared_with_the_configuration(tmp_path: Path) -> None:
    """Units of this root in a unit directory: ok when they are what `systemd` generates, a failure
    naming the differing unit and the regenerate command when one was edited."""
    from stratmancer_jobs.config import load_settings
    from stratmancer_jobs.deploy.targets import systemd_units
    from stratmancer_jobs.doctor import gather

    root = _sample_root(tmp_path)
    settings = load_settings(root, {"TZ": "UTC"})
    units_dir = tmp_path / "units"
    units_dir.mkdir()
    for name, text in systemd_units(settings, executable="/x/stratmancer-jobs", user=True).items():
        (units_dir / name).write_text(text)

    def check() -> list[str]:
        g = gather(
            settings,
            executable="/x/stratmancer-jobs",
            path_env="/usr/bin",
            unit_dirs=[(units_dir, True)],
            crontab_command=str(tmp_path / "no-such-crontab"),
        )
        from stratmancer_jobs.doctor import _schedule_checks

        return [line for c in _schedule_checks(g, str(root)) for line in c.lines()]

    assert any(line.startswith("ok    systemd: the units in") for line in check()), check()
    timer = units_dir / "stratmancer-refresh-patch.timer"
    timer.write_text(timer.read_text().replace("OnCalendar=*-*-* 03:00:00", "OnCalendar=*-*-* 04:00:00"))
    lines = check()
    assert any(
        line.startswith("fail  systemd: 1 unit(s)") and "stratmancer-refresh-patch.timer" in line
        for line in lines
    )
    assert any(f"fix: stratmancer-jobs systemd --output {units_dir}" in line for line in lines)
