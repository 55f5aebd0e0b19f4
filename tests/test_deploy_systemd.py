"""systemd units: `systemd-analyze verify` accepts them, and each timer fires exactly when cron would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from stratmancer_jobs.deploy import DeployJob, DeployTarget
from stratmancer_jobs.deploy.systemd import MACROS, cron_to_oncalendar, render_units
from stratmancer_jobs.errors import ConfigError

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)

# the three shipped schedules, then harder ones: ranges, steps, lists, names, macros, OR with a full field
DEFAULT_SCHEDULES = ("0 * * * *", "*/5 * * * *", "0 3 * * *")
HARDER_SCHEDULES = (
    "1-5/2 * * * *",
    "15,45 9-17 * * MON-FRI",
    "0 0 1 * *",
    "30 4 * * SUN",
    "0 0 1 JAN,jul *",
    "*/20 */6 * * *",
    "0 12 * FEB-APR sat,sun",
    "5/15 2-20/3 * * *",
    "0 0 */10 * *",
    "0 6 1-7 * *",
    "0 0 * * 5-7",
    "0 0 */2 * MON",
    "0 0 1-31 * MON",
    "0 0 1 * 0-6",
    "0 0 29 2 *",
    "59 23 31 DEC *",
    "0 0 31 * *",
    "7 7 * 3,6,9,12 tue,thu",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
)
ALL_SCHEDULES = DEFAULT_SCHEDULES + HARDER_SCHEDULES
# a Monday just before a leap day, and a time that is itself a fire time of most schedules
BASE_TIMES = (datetime(2024, 2, 26, 10, 17, 23, tzinfo=UTC), datetime(2024, 12, 31, 23, 0, tzinfo=UTC))

_ELAPSE_RE = re.compile(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")

JOBS = (
    DeployJob("refresh_history_index", "Refresh History Index", "refresh-history", "0 * * * *", 300, 1800),
    DeployJob("refresh_model_registry", "Refresh Model Registry", "refresh-registry", "*/5 * * * *", 60, 240),
    DeployJob("refresh_patch_meta", "Refresh Patch Metadata", "refresh-patch", "0 3 * * *", 3600, 0),
)


def _calendar(specs: list[str], base: datetime) -> list[list[datetime]]:
    """Five elapses per OnCalendar spec after ``base``, from one `systemd-analyze calendar` call, in UTC."""
    assert SYSTEMD_ANALYZE is not None
    proc = subprocess.run(
        [
            SYSTEMD_ANALYZE,
            "calendar",
            "--iterations=5",
            f"--base-time={base.strftime('%Y-%m-%d %H:%M:%S')} UTC",
            *specs,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},
        check=False,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    blocks = [b for b in re.split(r"\n\s*\n", proc.stdout) if "Normalized form" in b]
    assert len(blocks) == len(specs), proc.stdout
    return [
        [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in _ELAPSE_RE.findall(block)] for block in blocks
    ]


def _cron_times(expr: str, base: datetime, zone: str = "UTC") -> list[datetime]:
    """cronsim's next five fire times after ``base`` in ``zone``, as UTC datetimes."""
    expanded = MACROS.get(expr, expr)
    sim = CronSim(expanded, base.astimezone(ZoneInfo(zone)))
    return [t.astimezone(UTC) for t in islice(sim, 5)]


@pytest.fixture(scope="module")
def elapses() -> dict[tuple[str, datetime], list[datetime]]:
    """systemd's next five elapses for every schedule and base time, two subprocess calls in all."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    result: dict[tuple[str, datetime], list[datetime]] = {}
    specs = [cron_to_oncalendar(expr) for expr in ALL_SCHEDULES]
    for base in BASE_TIMES:
        for expr, times in zip(ALL_SCHEDULES, _calendar(specs, base), strict=True):
            result[(expr, base)] = times
    return result


@needs_systemd_analyze
@pytest.mark.parametrize("base", BASE_TIMES, ids=lambda b: b.strftime("%Y%m%dT%H%M"))
@pytest.mark.parametrize("expr", ALL_SCHEDULES)
def test_oncalendar_fires_when_cron_does(
    elapses: dict[tuple[str, datetime], list[datetime]], expr: str, base: datetime
) -> None:
    """The translated timer's next five elapses are exactly cronsim's next five times for the expression."""
    assert elapses[(expr, base)] == _cron_times(expr, base), cron_to_oncalendar(expr)


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("expr", "zone", "base"),
    [
        # 03:00 still exists on the spring-forward day, and 02:30 happens once on the fall-back day
        ("0 3 * * *", "Europe/Paris", datetime(2024, 3, 29, 12, 0, tzinfo=UTC)),
        ("30 2 * * *", "Europe/Paris", datetime(2024, 10, 25, 12, 0, tzinfo=UTC)),
        ("*/30 9-17 * * MON-FRI", "America/New_York", datetime(2024, 3, 8, 20, 0, tzinfo=UTC)),
        ("0 * * * *", "Asia/Kolkata", datetime(2024, 6, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_oncalendar_timezone_matches_cron_in_that_zone(expr: str, zone: str, base: datetime) -> None:
    """With a zone appended, the timer fires at cronsim's times evaluated in that zone (across DST here)."""
    spec = cron_to_oncalendar(expr, zone)
    assert spec.endswith(f" {zone}")
    assert _calendar([spec], base)[0] == _cron_times(expr, base, zone)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 * * * *", "*-*-* *:00:00"),
        ("*/5 * * * *", "*-*-* *:00/5:00"),
        ("0 3 * * *", "*-*-* 03:00:00"),
        ("1-5/2 * * * *", "*-*-* *:01..05/2:00"),
        ("0 9-17 * * mon-fri", "Mon..Fri *-*-* 09..17:00:00"),
        ("30 4 * * SUN", "Sun *-*-* 04:30:00"),
        ("0 0 * * 0,6", "Sat,Sun *-*-* 00:00:00"),
        ("@weekly", "Sun *-*-* 00:00:00"),
        ("0 0 1 JAN,JUL *", "*-01,07-01 00:00:00"),
    ],
)
def test_oncalendar_text(expr: str, expected: str) -> None:
    """Common expressions translate to the short, readable OnCalendar= form."""
    assert cron_to_oncalendar(expr) == expected


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("0 0 1 * MON", "both restricted"),
        ("0 0 1,15 * 5", "both restricted"),
        ("@reboot", "runs once at boot"),
        ("0 0 L * *", "'L' in the day-of-month field"),
        ("0 0 LW * *", "'LW' in the day-of-month field"),
        ("0 0 * * 5#2", "'5#2' in the day-of-week field"),
        ("0 0 * * 5L", "'5L' in the day-of-week field"),
        ("@fortnightly", "unknown macro"),
        ("61 * * * *", "Bad minute"),
        ("0 * * *", "not a 5-field cron expression"),
    ],
)
def test_untranslatable_expression_is_a_clear_config_error(expr: str, why: str) -> None:
    """An expression OnCalendar= cannot express raises ConfigError naming the expression and the reason."""
    with pytest.raises(ConfigError) as info:
        cron_to_oncalendar(expr)
    assert repr(expr) in str(info.value)
    assert why in str(info.value)


def test_unknown_timezone_is_a_config_error() -> None:
    """A zone systemd and zoneinfo do not know is refused instead of written into the timer."""
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        cron_to_oncalendar("0 3 * * *", "Mars/Olympus")


def test_untranslatable_schedule_fails_render_units() -> None:
    """render_units refuses the whole set when one job's schedule has no OnCalendar= form."""
    bad = (DeployJob("j", "J", "job", "0 0 1 * MON", 0, 0),)
    with pytest.raises(ConfigError, match=re.escape("'0 0 1 * MON'")):
        render_units(bad, DeployTarget(Path("/srv/s"), "/bin/true"), user=False)


def _write(units: dict[str, str], directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (directory / name).write_text(text)
    return [str(directory / name) for name in units]


def _verify(paths: list[str], *, user: bool, runtime_dir: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    runtime_dir.mkdir(exist_ok=True)
    # --user verify needs a runtime directory; --man=no keeps it from looking up Documentation= pages
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir), "SYSTEMD_LOG_COLOR": "0"}
    args = [SYSTEMD_ANALYZE, *(["--user"] if user else []), "--man=no", "verify", *paths]
    return subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=60)


@needs_systemd_analyze
@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_generated_units_pass_systemd_analyze_verify(tmp_path: Path, user: bool) -> None:
    """`systemd-analyze verify` accepts every generated service and timer, system and user flavours."""
    target = DeployTarget(tmp_path, "/bin/true", timezone="Europe/Paris", run_as="daemon")
    units = render_units(JOBS, target, user=user, randomized_delay_s=30, accuracy_s=1)
    proc = _verify(_write(units, tmp_path / "units"), user=user, runtime_dir=tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


@needs_systemd_analyze
def test_quoting_survives_systemd_parsing(tmp_path: Path) -> None:
    """An executable path with spaces, % and $ reaches systemd as the real file (verify checks it exists)."""
    odd = tmp_path / "odd dir %n $HOME"
    odd.mkdir()
    shutil.copy("/bin/true", odd / "stratmancer jobs")
    root = odd / '"q" back\\slash'
    units = render_units(JOBS[:1], DeployTarget(root, str(odd / "stratmancer jobs")), user=False)
    service = units["stratmancer-refresh-history.service"]
    assert '"' + str(odd).replace("%", "%%") + '/stratmancer jobs" refresh-history' in service
    escaped_root = str(root).replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    assert f'Environment="STRATMANCER_HOME={escaped_root}"' in service.splitlines()
    proc = _verify(_write(units, tmp_path / "units"), user=False, runtime_dir=tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


@needs_systemd_analyze
def test_executable_with_quote_or_backslash_is_refused() -> None:
    """systemd cannot run an executable whose path has a quote or backslash, so it is a ConfigError."""
    for bad in ('/opt/a"b/stratmancer-jobs', "/opt/a\\b/stratmancer-jobs", "/opt/it's/stratmancer-jobs"):
        with pytest.raises(ConfigError, match="quote or backslash"):
            render_units(JOBS, DeployTarget(Path("/srv"), bad), user=False)


@needs_systemd_analyze
def test_verify_catches_a_missing_executable(tmp_path: Path) -> None:
    """The verify check is real: a unit naming an executable that does not exist is rejected."""
    units = render_units(JOBS[:1], DeployTarget(tmp_path, str(tmp_path / "no such file")), user=False)
    proc = _verify(_write(units, tmp_path / "units"), user=False, runtime_dir=tmp_path / "run")
    assert proc.returncode != 0
    assert "no such file" in proc.stderr


def test_render_units_files_and_fields() -> None:
    """Each job gets a oneshot service running the command without a shell and a persistent timer."""
    target = DeployTarget(Path("/srv/stratmancer"), "/srv/stratmancer/.venv/bin/stratmancer-jobs")
    units = render_units(JOBS, target, user=False, randomized_delay_s=None, accuracy_s=5)
    assert list(units) == [
        "stratmancer-refresh-history.service",
        "stratmancer-refresh-history.timer",
        "stratmancer-refresh-registry.service",
        "stratmancer-refresh-registry.timer",
        "stratmancer-refresh-patch.service",
        "stratmancer-refresh-patch.timer",
    ]
    service = units["stratmancer-refresh-history.service"].splitlines()
    assert "Type=oneshot" in service
    assert "ExecStart=/srv/stratmancer/.venv/bin/stratmancer-jobs refresh-history" in service
    assert "WorkingDirectory=/srv/stratmancer" in service
    assert 'Environment="STRATMANCER_HOME=/srv/stratmancer"' in service
    assert "TimeoutStartSec=1830s" in service  # the job's own 1800 s limit fires first
    assert "User=" not in "\n".join(service)
    assert "TimeoutStartSec=infinity" in units["stratmancer-refresh-patch.service"].splitlines()
    timer = units["stratmancer-refresh-registry.timer"].splitlines()
    assert "OnCalendar=*-*-* *:00/5:00" in timer
    assert "Persistent=true" in timer
    assert "AccuracySec=5s" in timer
    assert not any(line.startswith("RandomizedDelaySec=") for line in timer)
    assert "Unit=stratmancer-refresh-registry.service" in timer
    assert timer[-2:] == ["[Install]", "WantedBy=timers.target"]


def test_render_units_install_comments_and_options() -> None:
    """Install lines name every timer, --user flavour says --user, and optional settings appear when set."""
    target = DeployTarget(Path("/srv/s"), "/usr/bin/stratmancer-jobs", timezone="UTC", run_as="strat")
    system = render_units(JOBS, target, user=False, randomized_delay_s=45)
    user = render_units(JOBS, target, user=True, randomized_delay_s=45)
    timers = " ".join(f"stratmancer-{job.command}.timer" for job in JOBS)
    for text in system.values():
        assert "#   systemctl daemon-reload" in text
        assert f"#   systemctl enable --now {timers}" in text
        assert "--if-due" in text and "Persistent=true" in text
    for text in user.values():
        assert "#   systemctl --user daemon-reload" in text
        assert f"#   systemctl --user enable --now {timers}" in text
        assert "loginctl enable-linger" in text
    timer = system["stratmancer-refresh-patch.timer"].splitlines()
    assert "OnCalendar=*-*-* 03:00:00 UTC" in timer
    assert "RandomizedDelaySec=45s" in timer
    assert "User=strat" in system["stratmancer-refresh-patch.service"].splitlines()
    assert "User=strat" not in user["stratmancer-refresh-patch.service"]
    assert 'Environment="STRATMANCER_TZ=UTC"' in system["stratmancer-refresh-patch.service"].splitlines()


@pytest.mark.parametrize(
    ("target", "jobs", "message"),
    [
        (DeployTarget(Path("srv"), "/bin/true"), JOBS, "absolute path"),
        (DeployTarget(Path("/srv"), "bin/stratmancer-jobs"), JOBS, "absolute path"),
        (DeployTarget(Path("/srv/a\nb"), "/bin/true"), JOBS, "control character"),
        (DeployTarget(Path("/srv"), "/bin/true"), (*JOBS, JOBS[0]), "appears twice"),
        (
            DeployTarget(Path("/srv"), "/bin/true"),
            (DeployJob("x", "X", "A B", "0 * * * *", 0, 0),),
            "unit name",
        ),
        (DeployTarget(Path("/srv"), "/bin/true"), (), "no jobs"),
    ],
)
def test_render_units_rejects_bad_inputs(
    target: DeployTarget, jobs: tuple[DeployJob, ...], message: str
) -> None:
    """Inputs that cannot make a correct unit are a ConfigError, not a broken file."""
    with pytest.raises(ConfigError, match=message):
        render_units(jobs, target, user=False)
