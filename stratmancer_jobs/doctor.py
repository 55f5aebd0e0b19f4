"""``stratmancer-jobs doctor``: check a deployment the way ``nginx -t`` checks a configuration.

One line per check, ``ok``, ``warn`` or ``fail``, each problem with the command or edit that fixes it.
The exit code is the worst level: 0 all ok, 1 a warning, 2 a failure. Nothing is written; no secret
value is ever printed (hooks' variables are named, never shown).

``diagnose`` is a pure function of what was gathered; ``gather`` does the reading (the crontab, the
installed systemd units, the deployment's directories).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from stratmancer_jobs.config import Settings
from stratmancer_jobs.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, StratmancerError
from stratmancer_jobs.jobtable import JOBS

Level = Literal["ok", "warn", "fail"]
NEXT_RUNS = 5
ENV_PREFIX = "env:"


@dataclass(frozen=True)
class Check:
    """One finding: its level, what was checked and found, and (for a problem) how to fix it."""

    level: Level
    message: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"{self.level:<5} {self.message}"]
        if self.fix:
            out.append(f"      fix: {self.fix}")
        return out


def exit_code(checks: Sequence[Check]) -> int:
    """0 when every check is ok, 1 with a warning, 2 with a failure."""
    levels = {check.level for check in checks}
    return EXIT_USAGE if "fail" in levels else EXIT_FAILED if "warn" in levels else EXIT_OK


def summary_line(checks: Sequence[Check]) -> str:
    counts = {level: sum(c.level == level for c in checks) for level in ("ok", "warn", "fail")}
    return f"{counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failures"


@dataclass(frozen=True)
class Sources:
    """Where the root and the metrics file came from: the flags given (None: not given)."""

    root_flag: bool = False
    metrics_flag: bool = False


@dataclass(frozen=True)
class Gathered:
    """What ``gather`` read: the user's crontab (None when it cannot be read, with the reason), the
    installed systemd units of this root (file name -> text; empty when none), the TOML keys set."""

    crontab: str | None
    crontab_error: str | None
    expected_block: str
    units_dir: Path | None
    installed_units: Mapping[str, str]
    expected_units: Mapping[str, str]
    config_keys: frozenset[str] = field(default_factory=frozenset)
    writable: Mapping[str, bool] = field(default_factory=dict)


def config_sources(
    settings: Settings, env: Mapping[str, str], sources: Sources, keys: frozenset[str]
) -> list[tuple[str, str, str]]:
    """(setting, value, where it came from) for the settings an operator most often wonders about.

    Follows config.py's precedence: flag > environment (the process's, then the env file's) >
    config/jobs.toml > default. ``keys`` are the dotted keys set in jobs.toml.
    """

    def origin(variable: str | None, key: str | None, default: str, flag: bool = False) -> str:
        if flag:
            return "flag"
        if variable and env.get(variable):
            return f"env {variable}"
        if variable and variable in settings.env_file_names and settings.env.get(variable):
            return f"env file ({variable})"
        if key and key in keys:
            return f"config/jobs.toml {key}"
        return default

    root = str(settings.layout.root)
    metrics = str(settings.metrics_file) if settings.metrics_file else "none"
    return [
        ("root", root, origin("STRATMANCER_HOME", None, "current directory", sources.root_flag)),
        ("timezone", settings.timezone.key, origin("STRATMANCER_TZ", "timezone", "the machine's zone")),
        (
            "metrics_file",
            metrics,
            origin("STRATMANCER_METRICS_FILE", "metrics_file", "default", sources.metrics_flag),
        ),
        (
            "patch.base_url",
            settings.patch.base_url,
            origin("STRATMANCER_DDRAGON_URL", "patch.base_url", "default"),
        ),
    ]


def _root_checks(settings: Settings, writable: Mapping[str, bool]) -> list[Check]:
    layout = settings.layout
    checks = []
    for what, path, job in (
        ("match data", layout.processed_dir, "refresh-history"),
        ("model cards", layout.modelcards_dir, "refresh-registry"),
    ):
        if path.is_dir():
            checks.append(Check("ok", f"{what}: {path}"))
        else:
            checks.append(
                Check("warn", f"{what}: {path} is missing; {job} will fail", f"mkdir -p {path} and fill it")
            )
    for name, path in (("state", layout.state_dir), ("logs", layout.log_file.parent)):
        if writable.get(name, False):
            checks.append(Check("ok", f"{name}: {path} is writable"))
        else:
            checks.append(
                Check("fail", f"{name}: {path} is not writable by this user", f'chown -R "$USER" {path}')
            )
    if settings.config_file_found:
        checks.append(Check("ok", f"configuration: {layout.config_file}"))
    else:
        checks.append(Check("ok", f"configuration: no {layout.config_file}, defaults apply"))
    return checks


def _env_file_check(settings: Settings, keys: frozenset[str]) -> Check:
    if settings.env_file is None:
        return Check(
            "ok",
            f"env file: none ({settings.layout.env_file} does not exist; hooks' env: values come from "
            "the process environment only)",
        )
    origin = "config/jobs.toml env_file" if "env_file" in keys else "default"
    mode = settings.env_file.stat().st_mode & 0o777
    names = ", ".join(sorted(settings.env_file_names)) or "no variables"
    return Check("ok", f"env file: {settings.env_file} ({origin}, mode {mode:04o}) sets {names}")


def _job_checks(settings: Settings, now: datetime, keys: frozenset[str]) -> list[Check]:
    from stratmancer_jobs.schedule import describe, next_run

    checks = []
    for spec in JOBS:
        expr = settings.job(spec).schedule
        key = f"jobs.{spec.id}.schedule"
        where = key if key in keys else "default"
        runs: list[str] = []
        at = now
        for _ in range(NEXT_RUNS):
            at = next_run(expr, settings.timezone, at)
            runs.append(at.strftime("%Y-%m-%d %H:%M"))
        checks.append(
            Check(
                "ok",
                f"job {spec.command}: {describe(expr)} ({expr}, {where}); next in {settings.timezone.key}: "
                + ", ".join(runs),
            )
        )
    return checks


def _hook_checks(settings: Settings) -> list[Check]:
    from stratmancer_jobs.hookspec import describe

    checks = []
    for spec in JOBS:
        for hook in settings.job_hooks(spec):
            where = f"jobs.{spec.id}.on_change[{hook.index}]"
            problems = []
            for header, raw in hook.headers:
                if raw.startswith(ENV_PREFIX):
                    name = raw[len(ENV_PREFIX) :]
                    if not settings.env.get(name):
                        problems.append(
                            Check(
                                "fail",
                                f"hook {where}: header {header} needs {name}, which is not set "
                                "(cron and systemd start jobs with an empty environment)",
                                f"add {name}=... to {settings.env_file or settings.layout.env_file} "
                                "and chmod 600 it",
                            )
                        )
            if (
                hook.command is not None
                and shutil.which(hook.command[0], path=settings.env.get("PATH")) is None
            ):
                problems.append(
                    Check(
                        "warn",
                        f"hook {where}: program {hook.command[0]!r} is not found on PATH",
                        "give its absolute path in config/jobs.toml",
                    )
                )
            checks.extend(problems or [Check("ok", f"hook {where}: {describe(hook)}")])
    return checks


def _schedule_checks(g: Gathered, root: str) -> list[Check]:
    from stratmancer_jobs.crontab import find_block

    checks = []
    block_found = False
    if g.crontab is None:
        checks.append(Check("ok", f"crontab: not checked ({g.crontab_error})"))
    else:
        try:
            span = find_block(g.crontab, root)
        except StratmancerError as exc:
            return [Check("fail", f"crontab: {exc}", "crontab -e")]
        if span is not None:
            block_found = True
            installed = "\n".join(g.crontab.splitlines()[span.start : span.end + 1]) + "\n"
            if installed == g.expected_block:
                checks.append(Check("ok", "crontab: the installed block matches the configuration"))
            else:
                checks.append(
                    Check(
                        "fail",
                        "crontab: the installed block differs from the configuration",
                        "stratmancer-jobs crontab --install (--dry-run shows the difference)",
                    )
                )
    if g.installed_units:
        differ = sorted(n for n, t in g.expected_units.items() if g.installed_units.get(n) != t)
        if differ:
            checks.append(
                Check(
                    "fail",
                    f"systemd: {len(differ)} unit(s) in {g.units_dir} differ from the configuration "
                    f"({', '.join(differ)})",
                    f"stratmancer-jobs systemd --output {g.units_dir} && systemctl daemon-reload",
                )
            )
        else:
            checks.append(Check("ok", f"systemd: the units in {g.units_dir} match the configuration"))
    elif not block_found:
        checks.append(
            Check("ok", "schedule: nothing installed for this root yet (stratmancer-jobs crontab --install)")
        )
    return checks


def diagnose(
    settings: Settings, env: Mapping[str, str], sources: Sources, gathered: Gathered, now: datetime
) -> list[Check]:
    """Every check, in the order printed: root, configuration sources, env file, jobs, hooks, schedule."""
    checks = _root_checks(settings, gathered.writable)
    for name, value, origin in config_sources(settings, env, sources, gathered.config_keys):
        checks.append(Check("ok", f"{name} = {value} ({origin})"))
    checks.append(_env_file_check(settings, gathered.config_keys))
    checks += _job_checks(settings, now, gathered.config_keys)
    checks += _hook_checks(settings)
    checks += _schedule_checks(gathered, str(settings.layout.root))
    return checks


# --- reading what is installed (I/O) ------------------------------------------------------------------


def _writable(path: Path) -> bool:
    """Whether this user can write ``path``, or create it (its nearest existing parent is writable)."""
    while not path.exists():
        if path == path.parent:
            return False
        path = path.parent
    return os.access(path, os.W_OK)


def _config_keys(path: Path) -> frozenset[str]:
    """The dotted keys set in jobs.toml (it was parsed by load_settings already, so it is valid)."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()
    keys: set[str] = set()

    def walk(table: Mapping[str, object], prefix: str) -> None:
        for key, value in table.items():
            keys.add(prefix + key)
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")

    walk(data, "")
    return frozenset(keys)


def _installed_units(
    settings: Settings, unit_dirs: Sequence[tuple[Path, bool]], executable: str
) -> tuple[Path | None, dict[str, str], dict[str, str]]:
    """The first unit directory holding this root's units: (dir, installed texts, expected texts)."""
    from stratmancer_jobs.deploy.targets import systemd_units

    root_line = f"WorkingDirectory={settings.layout.root}"
    for directory, user in unit_dirs:
        try:
            names = sorted(p.name for p in directory.glob("stratmancer-*.service"))
            texts = {n: (directory / n).read_text(encoding="utf-8") for n in names}
        except OSError:
            continue
        if not any(root_line in text.splitlines() for text in texts.values()):
            continue
        expected = systemd_units(settings, executable=executable, user=user)
        installed = {}
        for name in expected:
            try:
                installed[name] = (directory / name).read_text(encoding="utf-8")
            except OSError:
                installed[name] = ""
        return directory, installed, expected
    return None, {}, {}


def gather(
    settings: Settings,
    *,
    executable: str,
    path_env: str,
    unit_dirs: Sequence[tuple[Path, bool]],
    crontab_command: str = "crontab",
) -> Gathered:
    """Read the user's crontab, this root's installed systemd units and what is writable."""
    from stratmancer_jobs.crontab import read_crontab, render_crontab

    block = render_crontab(settings, executable=executable, path_env=path_env)
    text: str | None
    try:
        text, error = read_crontab(crontab_command), None
    except StratmancerError as exc:
        text, error = None, str(exc).split(";")[0]
    units_dir, installed, expected = _installed_units(settings, unit_dirs, executable)
    layout = settings.layout
    return Gathered(
        crontab=text,
        crontab_error=error,
        expected_block=block,
        units_dir=units_dir,
        installed_units=installed,
        expected_units=expected,
        config_keys=_config_keys(layout.config_file) if settings.config_file_found else frozenset(),
        writable={"state": _writable(layout.state_dir), "logs": _writable(layout.log_file.parent)},
    )
