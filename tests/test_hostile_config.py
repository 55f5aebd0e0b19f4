"""Hostile configuration and inputs (issue 20 items 4, 5, 6, 7, 13): one line, the right exit code, no
traceback and no hang, whatever sits at config/jobs.toml, config/meta.json or the state lock's name.

Every case runs the real CLI in a subprocess bounded by a timeout (a FIFO used to hang every command).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stratmancer_jobs.smallfile import toml_shape_problem
from tests.conftest import REPO, Proc, run_proc, write_card
from tests.ddragon_server import DDragonServer, json_reply

BOUND_S = 30  # every subprocess here answers in about a second; a hang fails the test instead


def one_error_line(done: Proc) -> str:
    """The single stderr line of a refused command (asserting there is exactly one, no traceback)."""
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to(endless_device())


def endless_device() -> str:
    """/dev/zero, or /dev/urandom should a process on this machine have replaced /dev/zero by a file."""
    for name in ("/dev/zero", "/dev/urandom"):
        if stat.S_ISCHR(os.stat(name).st_mode):
            return name
    raise AssertionError("neither /dev/zero nor /dev/urandom is a character device on this machine")


def _directory(path: Path) -> None:
    path.mkdir()


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "jobs.toml.new")


def _loop(path: Path) -> None:
    path.symlink_to(path.name)


def _two_mib(path: Path) -> None:
    path.write_bytes(b"# padding\n" * (200 * 1024))


SPECIAL = [
    (_fifo, "is a FIFO (named pipe), not a regular file"),
    (_dev_zero, "is a character device, not a regular file"),
    (_directory, "is a directory, not a regular file"),
    (_dangling, "is a symlink to "),
    (_loop, "is a symlink loop"),
    (_two_mib, "is larger than 1 MiB (2048000 bytes)"),
]


@pytest.mark.parametrize(("make", "reason"), SPECIAL, ids=[m.__name__.strip("_") for m, _ in SPECIAL])
def test_special_config_file_is_one_line_exit_2(
    root: Path, make: Callable[[Path], None], reason: str
) -> None:
    """A FIFO, /dev/zero, a directory, a dangling or looping link, 2 MiB as jobs.toml: exit 2, one line."""
    path = root / "config/jobs.toml"
    make(path)
    done = run_proc(root, "status", timeout=BOUND_S)
    assert done.returncode == 2, done.stderr[-2000:]
    line = one_error_line(done)
    assert line.startswith(f"error: config file {path} {reason}"), line


def test_dangling_config_symlink_is_not_silently_no_config(root: Path) -> None:
    """A jobs.toml link whose target is missing refuses to run the job (its hooks would be dropped)."""
    (root / "config/jobs.toml").symlink_to("jobs.toml.new")
    done = run_proc(root, "refresh-registry", timeout=BOUND_S)
    assert done.returncode == 2
    assert "which does not exist" in one_error_line(done)
    assert not (root / "ml_pipeline/model_registry.json").exists()


HOSTILE_TOML = [
    (
        "deep_array",
        "a = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "is not valid TOML: line 1: nested more than 64",
    ),
    (
        "deep_table",
        "a = " + "{b = " * 5000 + "1" + "}" * 5000 + "\n",
        "is not valid TOML: line 1: nested more than 64",
    ),
    (
        "dotted_key",
        ".".join(["a"] * 20_000) + " = 1\n",
        "is not valid TOML: line 1: a dotted key of more than 64",
    ),
    ("digits", "timezone = " + "9" * 5000 + "\n", "is not valid TOML: an integer with too many digits"),
    (
        "bom",
        "\ufefftimezone = 'UTC'\n",
        "starts with a UTF-8 byte order mark (BOM); save it as UTF-8 without",
    ),
]


@pytest.mark.parametrize(("text", "reason"), [c[1:] for c in HOSTILE_TOML], ids=[c[0] for c in HOSTILE_TOML])
def test_hostile_toml_is_one_line_naming_the_file(root: Path, text: str, reason: str) -> None:
    """100,000-deep arrays, 5000-deep tables, a 20,000-part key, 5000 digits, a BOM: exit 2, one line."""
    path = root / "config/jobs.toml"
    path.write_text(text, encoding="utf-8")
    done = run_proc(root, "status", timeout=BOUND_S)
    assert done.returncode == 2, done.stderr[-2000:]
    line = one_error_line(done)
    assert line.startswith(f"error: config file {path} {reason}"), line
    assert len(line) < 400, line


HOSTILE_VALUES = [
    ("nul", 'metrics_file = "metrics\\u0000.prom"\n', "config key metrics_file contains a NUL character"),
    (
        "huge_int",
        "[history]\nmin_champ_games = " + "9" * 4000 + "\n",
        "config key history.min_champ_games must be >= 1 and <= 1000000000, got an integer of 13288 bits",
    ),
    (
        "huge_float",
        "[patch]\nmax_backoff_s = " + "9" * 400 + "\n",
        "config key patch.max_backoff_s is too large",
    ),
    ("long_key", "x" * 100_000 + " = 1\n", "config key " + "x" * 79 + "\u2026 is unknown"),
]


@pytest.mark.parametrize(
    ("text", "reason"), [c[1:] for c in HOSTILE_VALUES], ids=[c[0] for c in HOSTILE_VALUES]
)
def test_hostile_value_is_one_line_naming_file_and_key(root: Path, text: str, reason: str) -> None:
    """A NUL in a path, a 4000-digit integer, a float overflow, a 100 KB key name: exit 2, one short line."""
    path = root / "config/jobs.toml"
    path.write_text(text, encoding="utf-8")
    done = run_proc(root, "status", timeout=BOUND_S)
    assert done.returncode == 2, done.stderr[-2000:]
    line = one_error_line(done)
    assert line.startswith(f"error: {path}: {reason}"), line
    assert len(line) < 400, line


def test_brackets_and_dots_inside_strings_and_comments_are_not_counted(root: Path) -> None:
    """Brackets and dots in strings (all four kinds) and comments are not nesting or key parts: it loads."""
    dots = "a." * 100
    (root / "config/jobs.toml").write_text(
        f"# {'[' * 100} {dots}\n"
        "[deploy]\n"
        f'image = "{dots}[[[[{{{{\\"{dots}"\n'
        f"namespace = '{dots}'\n"
        f'pvc = """\n{dots}\n{"[" * 100}"""\n'
        f"secret = '''{dots}\n{'{' * 100}'''  # {dots}\n",
        encoding="utf-8",
    )
    done = run_proc(root, "status", timeout=BOUND_S)
    assert done.returncode == 0, done.stderr


def test_shape_scan_counts_lines_and_stops_at_the_limit() -> None:
    """The pre-parse scan names the line of the first excess and accepts exactly the limit."""
    assert toml_shape_problem("a = 1\nb = " + "[" * 64 + "]" * 64) is None
    assert toml_shape_problem("a = 1\n\nb = " + "[" * 65) == "line 3: nested more than 64 levels deep"
    assert toml_shape_problem(".".join(["k"] * 64) + " = 1") is None
    assert toml_shape_problem("x = 1.5\n" + ".".join(["k"] * 65) + " = 1") == (
        "line 2: a dotted key of more than 64 parts"
    )


# --- item 5: config/meta.json for refresh-patch -----------------------------------------------------


@pytest.fixture
def ddragon() -> Iterator[DDragonServer]:
    """A Data Dragon stand-in on 127.0.0.1 answering 16.23.1."""
    with DDragonServer() as srv:
        srv.script("/api/versions.json", json_reply(["16.23.1", "16.22.1"]))
        yield srv


def _patch(root: Path, ddragon: DDragonServer) -> Proc:
    return run_proc(root, "refresh-patch", env={"STRATMANCER_DDRAGON_URL": ddragon.base_url}, timeout=BOUND_S)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_fifo, "is a FIFO (named pipe)"),
        (_dev_zero, "is a character device"),
        (_two_mib, "is larger than 1 MiB"),
    ],
    ids=["fifo", "dev_zero", "two_mib"],
)
def test_special_meta_json_fails_the_run_in_one_line(
    root: Path, ddragon: DDragonServer, make: Callable[[Path], None], reason: str
) -> None:
    """A FIFO, /dev/zero or 2 MiB at config/meta.json: exit 1, one line naming it, nothing replaced."""
    path = root / "config/meta.json"
    make(path)
    before = os.lstat(path)
    done = _patch(root, ddragon)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"patch metadata {path} {reason}" in errors[0], done.stderr
    after = os.lstat(path)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)  # left as it was


def test_deeply_nested_meta_json_is_set_aside_and_replaced(root: Path, ddragon: DDragonServer) -> None:
    """A meta.json nested 400 deep (it parses but could not be written back) is copied aside and replaced."""
    path = root / "config/meta.json"
    deep = b'{"patch": "16.22", "x": ' + b"[" * 400 + b"]" * 400 + b"}"
    path.write_bytes(deep)
    done = _patch(root, ddragon)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert json.loads(path.read_text())["patch"] == "16.23"
    copies = list(path.parent.glob("meta.json.corrupt-*"))
    assert [c.read_bytes() for c in copies] == [deep]


# --- item 6: a deployment root whose name is too long ------------------------------------------------


def test_root_name_too_long_is_one_short_line_exit_2() -> None:
    """A 120 KB STRATMANCER_HOME: exit 2, one line naming the root (cut) and the reason."""
    home = "/tmp/" + "d/" * 60_000
    done = _run_without_root(["status"], {"STRATMANCER_HOME": home})
    assert done.returncode == 2, done.stderr[-2000:]
    line = one_error_line(done)
    assert line.startswith("error: deployment root /tmp/d/d/"), line
    assert "(120004 characters) cannot be used: File name too long" in line and len(line) < 400, line


def test_metrics_file_name_too_long_is_a_warning_and_the_run_still_succeeds(root: Path) -> None:
    """A 300-character metrics file name: one 'metrics not written' warning, the run's exit 0 unchanged."""
    write_card(root, "mid", "20251030_220550")
    metrics = root / ("m" * 300 + ".prom")
    done = run_proc(root, "--metrics-file", str(metrics), "refresh-registry", timeout=BOUND_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "metrics not written" in line]
    assert len(warnings) == 1 and "File name too long" in warnings[0], done.stderr[-2000:]
    assert (root / "ml_pipeline/model_registry.json").is_file()


def _run_without_root(args: list[str], env: dict[str, str]) -> Proc:
    """The CLI without --root (run_proc always passes one), so that STRATMANCER_HOME is used."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMANCER_")}
    full_env.update(env, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "stratmancer_jobs", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=BOUND_S,
        check=False,
    )
    return Proc(done.returncode, done.stdout, done.stderr)


# --- item 7: the state lock file ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo"])
def test_state_lock_symlink_or_directory_is_one_line_and_status_reports_it(root: Path, kind: str) -> None:
    """state/jobs_state.json.lock as a link, a directory or a FIFO: the run exits 1 in one line with the
    fix; status exits 1 saying so and --check is critical (no 'never run' with exit 0)."""
    lock = root / "state/jobs_state.json.lock"
    lock.parent.mkdir()
    target = root / "elsewhere.txt"
    target.write_text("not a lock\n")
    if kind == "symlink":
        lock.symlink_to(target)
        expected = f"state lock {lock} is a symbolic link, not a regular file; delete it (it is recreated)"
    elif kind == "directory":
        lock.mkdir()
        expected = f"state lock {lock} is a directory, not a regular file; remove the directory"
    else:  # flock works on a FIFO: refused anyway, so that runs and status agree
        os.mkfifo(lock)
        expected = f"state lock {lock} is a FIFO (named pipe), not a regular file; delete it"
    done = run_proc(root, "refresh-registry", timeout=BOUND_S)
    assert done.returncode == 1, done.stderr
    assert expected in one_error_line(done)
    assert target.read_text() == "not a lock\n"
    status = run_proc(root, "status", timeout=BOUND_S)
    assert status.returncode == 1 and expected in status.stderr, status.stderr
    check = run_proc(root, "status", "--check", timeout=BOUND_S)
    assert (
        check.returncode == 2
        and check.stdout.startswith("STRATMANCER JOBS CRITICAL")
        and expected in check.stdout
    )


# --- item 13: the Data Dragon URL, checked at configuration time ---------------------------------------


BAD_URLS = [
    ("http://127.0.0.1:1\n/x", "must not contain whitespace or control characters"),
    ("http://127.0.0.1:99999", "is not a valid URL (Port out of range 0-65535)"),
    ("http://127.0.0.1:0", "has port 0 (use 1-65535)"),
    ("http://127.0.0.1:80x", "is not a valid URL"),
    ("http://[::1", "is not a valid URL"),
    ("http:///path", "has no host"),
    ("file:///etc", "must be an http(s) URL"),
    ("http://127.0.0.1/?q=1", "must not have a query or fragment"),
]


@pytest.mark.parametrize(("url", "reason"), BAD_URLS)
def test_bad_ddragon_url_is_refused_before_any_run(root: Path, url: str, reason: str) -> None:
    """A newline, a port out of range, no host, a query in STRATMANCER_DDRAGON_URL: exit 2 at start-up."""
    done = run_proc(root, "status", env={"STRATMANCER_DDRAGON_URL": url}, timeout=BOUND_S)
    assert done.returncode == 2, done.stderr
    assert one_error_line(done).startswith(f"error: STRATMANCER_DDRAGON_URL {reason}")


def test_bad_base_url_in_config_names_the_file_and_key(root: Path) -> None:
    """patch.base_url with port 70000 in jobs.toml: exit 2, one line naming the file and the key."""
    path = root / "config/jobs.toml"
    path.write_text('[patch]\nbase_url = "https://user:hunter2@example.org:70000"\n')
    done = run_proc(root, "status", timeout=BOUND_S)
    assert done.returncode == 2
    line = one_error_line(done)
    assert line.startswith(f"error: {path}: config key patch.base_url is not a valid URL"), line
    assert "hunter2" not in line


def test_good_ddragon_urls_are_accepted(root: Path) -> None:
    """An IPv6 literal with a port, a path and a trailing slash are all fine."""
    for url in ("http://[::1]:8080/cdn/", "https://ddragon.example.org"):
        done = run_proc(root, "status", env={"STRATMANCER_DDRAGON_URL": url}, timeout=BOUND_S)
        assert done.returncode == 0, (url, done.stderr)


# --- item 12: a run refused for its configuration is recorded ------------------------------------------


def test_run_refused_for_half_written_config_is_recorded_and_shown(root: Path) -> None:
    """A scheduled run refused for a half-written jobs.toml is a failed run in the state: once the file
    is whole again, status shows the error and --check is not ok."""
    (root / "state").mkdir()
    path = root / "config/jobs.toml"
    path.write_text('[jobs.refresh_model_registry]\nschedule = "*/5 * *')  # cut off mid-write
    done = run_proc(root, "refresh-registry", timeout=BOUND_S)
    assert done.returncode == 2
    line = one_error_line(done)
    assert line.startswith(f"error: config file {path} is not valid TOML"), line
    path.write_text('[jobs.refresh_model_registry]\nschedule = "*/5 * * * *"\n')
    status = run_proc(root, "status", "--json", timeout=BOUND_S)
    assert status.returncode == 0, status.stderr
    job = next(j for j in json.loads(status.stdout)["jobs"] if j["id"] == "refresh_model_registry")
    assert job["last_status"] == "error" and job["consecutive_failures"] == 1, job
    assert job["last_error_message"] == f"not run, configuration error: {line.removeprefix('error: ')}", job
    check = run_proc(root, "status", "--check", timeout=BOUND_S)
    assert check.returncode != 0 and "refresh_model_registry=failing" in check.stdout, check.stdout


def test_refused_run_creates_no_state_where_there_was_none(root: Path) -> None:
    """Without a state/ directory (a mistyped root, or never run) a refused run creates nothing."""
    (root / "config/jobs.toml").write_text("colour = true\n")
    done = run_proc(root, "refresh-registry", timeout=BOUND_S)
    assert done.returncode == 2 and "config key colour is unknown" in one_error_line(done)
    assert not (root / "state").exists()


def test_bad_timeout_flag_is_not_recorded(root: Path) -> None:
    """A bad --timeout is the typist's mistake, seen at once: refused (exit 2) but not recorded."""
    (root / "state").mkdir()
    done = run_proc(root, "refresh-registry", "--timeout", "nan", timeout=BOUND_S)
    assert done.returncode == 2 and one_error_line(done).startswith("error: --timeout must be between")
    assert list((root / "state").iterdir()) == []
