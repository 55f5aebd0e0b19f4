"""crontab.example agrees with what `stratmancer-jobs crontab` generates from the defaults."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from stratmancer_jobs.config import Layout, load_settings
from stratmancer_jobs.crontab import render_crontab
from stratmancer_jobs.jobs import JOBS
from tests.conftest import REPO


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
    assert "STRATMANCER_HOME=/srv/stratmancer" in lines
    assert any(ln.startswith("PATH=") for ln in lines)


def test_crontab_follows_configured_schedule(root: Path) -> None:
    """A schedule changed in config/jobs.toml shows up in the generated crontab."""
    (root / "config/jobs.toml").write_text('[jobs.refresh_patch_meta]\nschedule = "30 4 * * *"\n')
    text = render_crontab(load_settings(root, {}), executable="/x/stratmancer-jobs", path_env="/usr/bin")
    assert "30 4 * * * /x/stratmancer-jobs refresh-patch >> " in text
