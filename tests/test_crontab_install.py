"""`crontab --install/--uninstall/--dry-run`: the user's other crontab lines are never lost.

Where this runs as root with ``unshare`` and Debian's ``/usr/bin/crontab``, a ``crontab`` wrapper on
PATH runs the real binary in a private mount namespace whose ``/var/spool/cron/crontabs`` is a scratch
directory of the test: the real binary parses and stores the crontab, and the machine's own crontabs
are never read or written. The daemon test starts the real ``/usr/sbin/cron`` the same way (with an
empty ``/etc/crontab`` and ``/etc/cron.d`` and a private ``/run``, so it runs only the scratch crontab,
and runs its ``@reboot`` lines at once). Elsewhere a recording fake ``crontab`` stores the text in a
file, and the daemon test runs the ``@reboot`` lines itself with ``/bin/sh`` under an empty
environment, as cron does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stratmancer_jobs.crontab import crontab_diff, merge_block, remove_block
from stratmancer_jobs.jobtable import JOBS
from tests.conftest import REPO, Proc, run_proc, write_card

USER_LINES = "# my backup\nMAILTO=ops@example.org\n17 2 * * * /usr/local/bin/backup --all\n"
SPOOL_DIR = "/var/spool/cron/crontabs"


def _real_crontab_possible() -> bool:
    """Root, unshare and Debian's crontab: the real binary can run on a scratch spool."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not Path("/usr/bin/crontab").exists():
        return False
    if not Path(SPOOL_DIR).is_dir():
        return False
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, timeout=10, check=False
    )
    return done.returncode == 0


REAL = _real_crontab_possible()


@dataclass
class UserCrontab:
    """The scratch crontab of a test: a directory to put first on PATH, and what was called."""

    bin_dir: Path
    state: Path  # the fake's crontab file, or the real binary's scratch spool directory
    calls_file: Path
    real: bool

    def text(self) -> str:
        """The stored crontab as `crontab -l` prints it ("" when there is none)."""
        done = subprocess.run(
            [str(self.bin_dir / "crontab"), "-l"], text=True, capture_output=True, timeout=30, check=False
        )
        assert done.returncode == 0 or "no crontab" in done.stderr, done.stderr
        return done.stdout

    def calls(self) -> list[str]:
        return self.calls_file.read_text().splitlines() if self.calls_file.exists() else []

    def env(self) -> dict[str, str]:
        exe_dir = str(Path(sys.executable).parent)  # where the stratmancer-jobs console script is
        return {"PATH": f"{self.bin_dir}:{exe_dir}:/usr/bin:/bin"}

    def set(self, text: str) -> None:
        """Install ``text`` through the crontab on PATH (the real binary checks it)."""
        done = subprocess.run(
            [str(self.bin_dir / "crontab"), "-"], input=text, text=True, capture_output=True, timeout=30
        )
        assert done.returncode == 0, done.stderr


def _write_script(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


@pytest.fixture
def user_crontab(tmp_path: Path) -> Iterator[UserCrontab]:
    """A ``crontab`` command on a scratch crontab: the real binary where possible, else a fake."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "crontab-calls"
    if REAL:
        spool = tmp_path / "spool"
        spool.mkdir(mode=0o1730)
        _write_script(
            bin_dir / "crontab",
            f'#!/bin/sh\necho "$*" >> "{calls}"\n'
            "exec unshare -m --propagation private sh -c "
            f'\'mount --bind "$0" {SPOOL_DIR} && exec /usr/bin/crontab "$@"\' "{spool}" "$@"\n',
        )
        yield UserCrontab(bin_dir, spool, calls, True)
    else:
        tab = tmp_path / "crontab-file"
        _write_script(
            bin_dir / "crontab",
            f'#!/bin/sh\necho "$*" >> "{calls}"\n'
            'case "$1" in\n'
            f'  -l) [ -f "{tab}" ] || {{ echo "no crontab for $(id -un)" >&2; exit 1; }}; cat "{tab}" ;;\n'
            f'  -) cat > "{tab}.new" && mv "{tab}.new" "{tab}" ;;\n'
            '  *) echo "fake crontab: unsupported $*" >&2; exit 2 ;;\n'
            "esac\n",
        )
        yield UserCrontab(bin_dir, tab, calls, False)


def _cli(root: Path, crontab: UserCrontab, *args: str) -> Proc:
    return run_proc(root, "crontab", *args, env=crontab.env())


def test_install_keeps_the_users_lines_and_a_second_install_changes_nothing(
    root: Path, user_crontab: UserCrontab
) -> None:
    """--install appends the block after the user's lines (shown as a diff); again, it writes nothing."""
    user_crontab.set(USER_LINES)
    first = _cli(root, user_crontab, "--install")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("--- installed crontab\n+++ new crontab\n"), first.stdout
    assert f"+# BEGIN stratmancer-jobs {root}\n" in first.stdout
    installed = user_crontab.text()
    assert installed.startswith(USER_LINES)
    assert installed.endswith(f"# END stratmancer-jobs {root}\n")
    assert (root / "logs").is_dir()  # the block's lines append to logs/stratmancer-jobs.log

    writes = user_crontab.calls().count("-")
    second = _cli(root, user_crontab, "--install")
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert "no change" in second.stderr
    assert user_crontab.calls().count("-") == writes  # nothing written the second time
    assert user_crontab.text() == installed


def test_uninstall_leaves_exactly_the_users_lines(root: Path, user_crontab: UserCrontab) -> None:
    """--uninstall removes the block and nothing else: the crontab is the user's again, byte for byte."""
    user_crontab.set(USER_LINES)
    assert _cli(root, user_crontab, "--install").returncode == 0
    user_crontab.set(user_crontab.text() + "30 4 * * * /usr/local/bin/after-the-block\n")
    done = _cli(root, user_crontab, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert f"-# BEGIN stratmancer-jobs {root}\n" in done.stdout
    assert user_crontab.text() == USER_LINES + "30 4 * * * /usr/local/bin/after-the-block\n"
    again = _cli(root, user_crontab, "--uninstall")
    assert again.returncode == 0 and again.stdout == "" and "no change" in again.stderr


def test_changed_schedule_replaces_only_the_block_in_place(root: Path, user_crontab: UserCrontab) -> None:
    """After a schedule change, --install rewrites the block where it is; lines before and after stay."""
    user_crontab.set(USER_LINES)
    assert _cli(root, user_crontab, "--install").returncode == 0
    user_crontab.set(user_crontab.text() + "45 5 * * * /usr/local/bin/later\n")
    (root / "config/jobs.toml").write_text('[jobs.refresh_patch_meta]\nschedule = "30 4 * * *"\n')
    dry = _cli(root, user_crontab, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    changed = [
        line for line in dry.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert [line[:10] for line in changed] == ["-0 3 * * *", "+30 4 * * "], dry.stdout
    assert "0 3 * * * " in user_crontab.text()  # --dry-run changed nothing
    assert _cli(root, user_crontab, "--install").returncode == 0
    text = user_crontab.text()
    assert text.startswith(USER_LINES) and text.endswith("45 5 * * * /usr/local/bin/later\n")
    assert "\n30 4 * * * cd " in text and "\n0 3 * * * cd " not in text


def test_install_into_an_empty_crontab_and_two_roots_side_by_side(
    root: Path, tmp_path: Path, user_crontab: UserCrontab
) -> None:
    """With no crontab yet the block is the whole crontab; a second root gets its own block beside it."""
    assert _cli(root, user_crontab, "--install").returncode == 0
    other = tmp_path / "other"
    (other / "config").mkdir(parents=True)
    assert _cli(other, user_crontab, "--install").returncode == 0
    text = user_crontab.text()
    assert text.count("# BEGIN stratmancer-jobs ") == 2
    assert _cli(root, user_crontab, "--uninstall").returncode == 0
    assert user_crontab.text().startswith(f"# BEGIN stratmancer-jobs {other}\n")


def test_broken_markers_are_refused_and_nothing_is_written(root: Path, user_crontab: UserCrontab) -> None:
    """A BEGIN line without its END is left for a person to fix: exit 2, the crontab unchanged."""
    user_crontab.set(USER_LINES + f"# BEGIN stratmancer-jobs {root}\n")
    done = _cli(root, user_crontab, "--install")
    assert done.returncode == 2, done.stderr
    assert "crontab -e" in done.stderr
    assert user_crontab.text() == USER_LINES + f"# BEGIN stratmancer-jobs {root}\n"


def test_cron_d_file_names_the_user_on_every_line(root: Path, user_crontab: UserCrontab) -> None:
    """--cron-d USER prints an /etc/cron.d file: each job line carries the user field."""
    done = _cli(root, user_crontab, "--cron-d", "stratmancer")
    assert done.returncode == 0, done.stderr
    jobs = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    assert len(jobs) == 2 * len(JOBS)
    for line in jobs:
        fields = line.split(None, 1 if line.startswith("@") else 5)
        assert fields[-1].startswith("stratmancer "), line
    assert user_crontab.calls() == []  # printing never touches the user's crontab
    bad = _cli(root, user_crontab, "--cron-d", "no such user")
    assert bad.returncode == 2 and "--cron-d" in bad.stderr


def test_missing_crontab_command_is_one_clear_line(root: Path, tmp_path: Path) -> None:
    """Without a crontab binary, --install says so and how to do without it (exit 1)."""
    empty = tmp_path / "nobin"
    empty.mkdir()
    done = run_proc(root, "crontab", "--install", env={"PATH": str(empty)})
    assert done.returncode == 1
    assert "not installed" in done.stderr and "systemd" in done.stderr


def test_merge_and_remove_are_exact_inverses() -> None:
    """Appending then removing a block gives back the text; a replaced block keeps its place."""
    block = "# BEGIN stratmancer-jobs /r\nx\n# END stratmancer-jobs /r\n"
    for user in ("", "a\n", "a\n\nb\n"):
        merged = merge_block(user, block, "/r")
        assert remove_block(merged, "/r") == user
        assert merge_block(merged, block, "/r") == merged
    around = "a\n" + block + "b\n"
    new = merge_block(around, block.replace("x", "y"), "/r")
    assert new == "a\n# BEGIN stratmancer-jobs /r\ny\n# END stratmancer-jobs /r\nb\n"
    assert crontab_diff(new, new) == ""
    # another root's block, or a root that only starts alike, is not touched
    other = block.replace("/r", "/r2")
    assert remove_block(other, "/r") == other


# --- the real cron daemon --------------------------------------------------------------------------


def _run_reboot_lines_like_cron(text: str, path_env: str) -> None:
    """Without cron: run each @reboot line with /bin/sh under the near-empty environment cron gives."""
    for line in text.splitlines():
        if line.startswith("@reboot "):
            subprocess.run(
                ["/bin/sh", "-c", line.split(None, 1)[1]],
                env={"PATH": path_env, "HOME": "/", "SHELL": "/bin/sh"},
                timeout=60,
                check=False,
            )


def _start_cron(tmp_path: Path, spool: Path) -> subprocess.Popen[bytes]:
    empty_dir, empty_tab = tmp_path / "empty-cron.d", tmp_path / "empty-crontab"
    empty_dir.mkdir()
    empty_tab.write_text("")
    script = (
        f'mount --bind "{spool}" {SPOOL_DIR} && mount --bind "{empty_dir}" /etc/cron.d && '
        f'mount --bind "{empty_tab}" /etc/crontab && mount -t tmpfs none /run && exec /usr/sbin/cron -f'
    )
    return subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_cron_daemon_runs_the_users_lines_and_the_block(
    root: Path, tmp_path: Path, user_crontab: UserCrontab
) -> None:
    """The real cron runs the installed crontab: the user's line still fires, and each job's @reboot
    line runs the tool in the root with cron's empty environment and appends to the root's log."""
    stub = tmp_path / "stub"
    stub.mkdir()
    _write_script(stub / "sleep", "#!/bin/sh\nexit 0\n")  # the @reboot lines' `sleep 60`
    marker = tmp_path / "user-line-ran"
    user_crontab.set(f"PATH={stub}:/usr/bin:/bin\n@reboot echo kept > {marker}\n")
    write_card(root, "mid", "20251101_164237")
    (root / "config/jobs.toml").write_text(
        '[patch]\nbase_url = "http://127.0.0.1:9"\nmax_attempts = 1\ninstant_retries = true\n'
    )
    assert _cli(root, user_crontab, "--install").returncode == 0
    text = user_crontab.text()
    log = root / "logs/stratmancer-jobs.log"
    if REAL and Path("/usr/sbin/cron").exists():
        daemon = _start_cron(tmp_path, user_crontab.state)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if (
                    marker.exists()
                    and log.exists()
                    and all(f" {spec.id}: " in log.read_text() for spec in JOBS)
                ):
                    break
                time.sleep(0.2)
        finally:
            daemon.terminate()
            daemon.wait(timeout=10)
    else:
        _run_reboot_lines_like_cron(text, f"{stub}:/usr/bin:/bin")
        marker.write_text("kept\n")  # the fake has no daemon: the user's line is the test's own
    time.sleep(0.5)  # a job still writing its last line
    assert marker.read_text() == "kept\n"
    lines = log.read_text().splitlines()
    for spec in JOBS:
        assert any(f" {spec.id} [" in line for line in lines), (spec.id, lines)
    assert all(re.search(r" \[[0-9a-f]{6}\]: ", line) for line in lines), lines  # each with its run id
    assert (root / "ml_pipeline/model_registry.json").exists()
    assert not (REPO / "logs").exists() or root != REPO  # the runs happened in the root, not elsewhere
