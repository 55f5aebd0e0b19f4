"""Configuration, resolved once into a frozen ``Settings``.

Precedence, highest first: command-line flag > environment variable > ``config/jobs.toml`` > default.

| setting | flag | environment | jobs.toml key | default |
| --- | --- | --- | --- | --- |
| deployment root | ``--root`` | ``STRATMANCER_HOME`` | - | current directory |
| a run's time limit | ``--timeout`` | - | ``jobs.<id>.timeout_seconds`` | the job table's default |
| schedule timezone | - | ``STRATMANCER_TZ`` | ``timezone`` | the machine's zone (``TZ``, /etc/localtime) |
| metrics textfile | ``--metrics-file`` | ``STRATMANCER_METRICS_FILE`` | ``metrics_file`` | none |
| Data Dragon URL | - | ``STRATMANCER_DDRAGON_URL`` | ``patch.base_url`` | the public Data Dragon host |
| instant retry waits | - | ``STRATMANCER_RETRY_INSTANT=1`` | ``patch.instant_retries`` | false |
| secrets file | - | - | ``env_file`` | ``config/stratmancer.env`` when it exists |

The secrets file's variables (systemd ``EnvironmentFile=`` syntax, ``envfile.py``) join the environment
below the process's own: a variable set in the process environment wins over the file.

Per-job keys live under ``[jobs.<job_id>]``: ``schedule``, ``grace_seconds``, ``timeout_seconds``, and
the change hooks ``[[jobs.<job_id>.on_change]]`` (parsed by ``hookspec.parse_hooks``).
This module is the only place precedence is applied: the CLI passes the raw flag values (None when not
given) and the environment mapping to ``load_settings``; Typer never reads the environment itself, and
core modules never read ``os.environ``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.freshness import FreshnessSettings, parse_freshness
from stratmancer_jobs.jobtable import JOBS, JobSpec
from stratmancer_jobs.layout import Layout
from stratmancer_jobs.logs import MIN_SECRET_LEN, secret_values
from stratmancer_jobs.smallfile import loads_toml, read_small_file

if TYPE_CHECKING:  # parse_hooks is imported in _hooks, only when a job has on_change
    from stratmancer_jobs.hookspec import HookSpec

DEFAULT_DDRAGON_URL = "https://ddragon.leagueoflegends.com"

# Upper bounds for numeric settings. Beyond them a value is a typo, and inf, nan or a huge number
# would only overflow later (setitimer, datetime arithmetic, socket timeouts) on every run.
MAX_TIMEOUT_S = 7 * 24 * 3600  # a job's maximum run time: --timeout and jobs.<id>.timeout_seconds
MAX_GRACE_S = 31 * 24 * 3600  # jobs.<id>.grace_seconds
MAX_HTTP_TIMEOUT_S = 3600.0  # patch.connect_timeout_s / read_timeout_s
MAX_WAIT_S = 24 * 3600.0  # patch.backoff_base_s / max_backoff_s / max_retry_after_s
MAX_ATTEMPTS = 100  # patch.max_attempts
MAX_BYTES = 1024**3  # patch.max_bytes (1 GiB)
MAX_MIN_GAMES = 1_000_000_000  # history.min_*_games


@dataclass(frozen=True)
class JobSchedule:
    """A job's schedule as data: cron expression, grace and maximum run time (0 = no limit)."""

    schedule: str
    grace_s: int
    timeout_s: int


@dataclass(frozen=True)
class HistorySettings:
    min_champ_games: int = 5
    min_pair_games: int = 3
    min_counter_games: int = 3


@dataclass(frozen=True)
class PatchSettings:
    base_url: str = DEFAULT_DDRAGON_URL
    region: str = "na"
    cross_check: bool = False
    # written with source "fallback" when no valid patch is known at all; opt-in (None: write nothing)
    default_patch: str | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0
    max_bytes: int = 4 * 1024 * 1024
    instant_retries: bool = False


@dataclass(frozen=True)
class RegistrySettings:
    # the app (predict.load_model) refuses a model without its calibrator_{elo}_{timestamp}.pkl
    require_calibrator: bool = True


@dataclass(frozen=True)
class DeploySettings:
    """Defaults for the generated systemd timers and Kubernetes CronJobs (flags override them)."""

    randomized_delay_s: int = 0  # systemd RandomizedDelaySec (0 = off)
    accuracy_s: int = 1  # systemd AccuracySec
    namespace: str = "stratmancer"
    image: str = "stratmancer-jobs:latest"
    pvc: str = "stratmancer-data"
    secret_name: str | None = None  # a Secret whose keys become the jobs' environment (by reference)


JOB_KEYS = {"schedule", "grace_seconds", "timeout_seconds", "on_change"}  # [jobs.<id>]
PATCH_JOB_ID = "refresh_patch_meta"  # the one job whose hooks may use {patch} and {previous_patch}


@dataclass(frozen=True)
class Settings:
    layout: Layout
    timezone: ZoneInfo
    jobs: Mapping[str, JobSchedule]
    history: HistorySettings = field(default_factory=HistorySettings)
    patch: PatchSettings = field(default_factory=PatchSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    freshness: FreshnessSettings = field(default_factory=FreshnessSettings)  # [freshness] (freshness.py)
    # jobs.<id>.on_change, per job id (absent: no hooks)
    hooks: Mapping[str, tuple[HookSpec, ...]] = field(default_factory=dict)
    metrics_file: Path | None = None
    # the --timeout flag of this run (None: each job's timeout_seconds); see time_limit()
    run_timeout_s: float | None = None
    config_file_found: bool = False
    # values of secret-looking environment variables, scrubbed from every log line, state field and
    # message; repr=False keeps them out of tracebacks and reprs
    redact_values: tuple[str, ...] = field(default=(), repr=False)
    # the process environment handed in by the CLI over the env file's variables (env:NAME hook
    # headers, hook commands' environment)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    env_file: Path | None = None  # the secrets file read (None: none)
    env_file_names: tuple[str, ...] = ()  # the names it set (its values are in ``env``)

    def job_hooks(self, spec: JobSpec) -> tuple[HookSpec, ...]:
        """The job's ``on_change`` hooks, in the order written (empty when none are configured)."""
        return self.hooks.get(spec.id, ())

    def job(self, spec: JobSpec) -> JobSchedule:
        return self.jobs[spec.id]

    def time_limit(self, spec: JobSpec) -> float:
        """The run's maximum time in seconds (0 = no limit): the --timeout flag, else the job's setting."""
        return self.job(spec).timeout_s if self.run_timeout_s is None else self.run_timeout_s


T = TypeVar("T")


def _typed(table: Mapping[str, Any], key: str, where: str, kind: type[T], default: T) -> T:
    """Fetch ``key`` from a TOML table, checking its type; ConfigError names the full key."""
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"config key {where}{key} is too large, got {_shown(value)}") from None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"config key {where}{key} must be {kind.__name__}, got {type(value).__name__} {_shown(value)}"
        )
    return value


def _shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a value or key from the file may be a megabyte long
    (the repr of an integer of thousands of digits is not even computed)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits"
    return _cut(repr(value), limit)


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _in_range(value: float, name: str, low: float, high: float, *, low_open: bool = False) -> None:
    """ConfigError naming the key unless ``value`` is finite and in [low, high] ((low, high] if open)."""
    above_low = value > low if low_open else value >= low
    finite = isinstance(value, int) or math.isfinite(value)  # isfinite() overflows on a huge int
    if not (finite and above_low and value <= high):
        lower = f"> {_number(low)}" if low_open else f">= {_number(low)}"
        raise ConfigError(f"config key {name} must be {lower} and <= {_number(high)}, got {_shown(value)}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _zone(name: str, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where}: unknown timezone {name!r} (use an IANA name like Europe/Paris)"
        ) from None


def local_zone(env: Mapping[str, str]) -> ZoneInfo:
    """The machine's zone as an IANA zone (DST-aware), from ``TZ`` or ``/etc/localtime``; UTC otherwise."""
    tz = env.get("TZ", "").lstrip(":")
    if tz:
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        marker = "/zoneinfo/"
        if marker in target:
            return ZoneInfo(target.split(marker, 1)[1])
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        return ZoneInfo(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except (OSError, ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


_BOMS = (
    (b"\xef\xbb\xbf", "a UTF-8 byte order mark (BOM)"),
    (b"\xff\xfe", "a UTF-16 byte order mark (BOM)"),
    (b"\xfe\xff", "a UTF-16 byte order mark (BOM)"),
)


def _read_toml(path: Path) -> dict[str, Any] | None:
    """The parsed config file, None when there is none; every problem is one ConfigError naming it.

    Only a regular file of at most 1 MiB is read (see ``smallfile``); a dangling symlink is an error,
    not "no config": the hooks it configured would be dropped silently.
    """
    raw = read_small_file(path, what="config file", error=ConfigError)
    if raw is None:
        return None
    for mark, name in _BOMS:
        if raw.startswith(mark):
            raise ConfigError(f"config file {path} starts with {name}; save it as UTF-8 without a BOM")
    try:
        data = loads_toml(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid UTF-8 (byte {exc.start})") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError, or too deep, too long a key, too many digits
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    nul = _nul_key(data, "")
    if nul is not None:
        raise ConfigError(f"{path}: config key {nul} contains a NUL character")
    return data


def _nul_key(value: object, where: str) -> str | None:
    """The first key (dotted, ``[i]`` for array items) whose name or string value holds a NUL, or None;
    a path or command with one can never be used (every system call refuses it)."""
    if isinstance(value, str):
        return _cut(where) if "\0" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else key
            if "\0" in key:
                return _cut(name.replace("\0", "\\0"))
            found = _nul_key(item, name)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_key(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"config key {where}{key} must be a table")
    return value


def _job_schedules(data: Mapping[str, Any]) -> dict[str, JobSchedule]:
    from stratmancer_jobs.schedule import validate_cron

    jobs_table = _table(data, "jobs", "")
    for name in jobs_table:
        if name not in {spec.id for spec in JOBS}:
            valid = ", ".join(spec.id for spec in JOBS)
            raise ConfigError(f"config key jobs.{_cut(name)}: unknown job (valid: {valid})")
    result: dict[str, JobSchedule] = {}
    for spec in JOBS:
        where = f"jobs.{spec.id}."
        table = _table(jobs_table, spec.id, "jobs.")
        _reject_unknown(table, where, JOB_KEYS)
        schedule = _typed(table, "schedule", where, str, spec.default_schedule)
        validate_cron(schedule, f"config key {where}schedule")
        grace = _typed(table, "grace_seconds", where, int, spec.default_grace_s)
        timeout = _typed(table, "timeout_seconds", where, int, spec.default_timeout_s)
        _in_range(grace, where + "grace_seconds", 0, MAX_GRACE_S)
        _in_range(timeout, where + "timeout_seconds", 0, MAX_TIMEOUT_S)
        result[spec.id] = JobSchedule(schedule=schedule, grace_s=grace, timeout_s=timeout)
    return result


def _hooks(data: Mapping[str, Any]) -> dict[str, tuple[HookSpec, ...]]:
    """Every job's ``[[jobs.<id>.on_change]]``; URL placeholders ``{patch}`` and ``{previous_patch}``
    only for the patch job (the others have no patch to fill in)."""
    jobs_table = _table(data, "jobs", "")
    result: dict[str, tuple[HookSpec, ...]] = {}
    for spec in JOBS:
        table = _table(jobs_table, spec.id, "jobs.")
        placeholders = ("job_id", "patch", "previous_patch") if spec.id == PATCH_JOB_ID else ("job_id",)
        raw = table.get("on_change")
        if raw is None:  # parse_hooks(None) is (); hookspec is not imported (`status` start-up)
            continue
        from stratmancer_jobs.hookspec import parse_hooks

        hooks = parse_hooks(spec.id, raw, placeholders)
        if hooks:
            result[spec.id] = hooks
    return result


def _registry(data: Mapping[str, Any]) -> RegistrySettings:
    table = _table(data, "registry", "")
    d = RegistrySettings()
    settings = RegistrySettings(
        require_calibrator=_typed(table, "require_calibrator", "registry.", bool, d.require_calibrator)
    )
    _reject_unknown(table, "registry.", set(RegistrySettings.__dataclass_fields__))
    return settings


def _deploy(data: Mapping[str, Any]) -> DeploySettings:
    table = _table(data, "deploy", "")
    _reject_unknown(
        table,
        "deploy.",
        {"randomized_delay_seconds", "accuracy_seconds", "namespace", "image", "pvc", "secret"},
    )
    defaults = DeploySettings()
    delay = _typed(table, "randomized_delay_seconds", "deploy.", int, defaults.randomized_delay_s)
    _in_range(delay, "deploy.randomized_delay_seconds", 0, MAX_GRACE_S)
    accuracy = _typed(table, "accuracy_seconds", "deploy.", int, defaults.accuracy_s)
    _in_range(accuracy, "deploy.accuracy_seconds", 1, MAX_GRACE_S)
    secret = _typed(table, "secret", "deploy.", str, "")
    return DeploySettings(
        randomized_delay_s=delay,
        accuracy_s=accuracy,
        namespace=_typed(table, "namespace", "deploy.", str, defaults.namespace),
        image=_typed(table, "image", "deploy.", str, defaults.image),
        pvc=_typed(table, "pvc", "deploy.", str, defaults.pvc),
        secret_name=secret or None,
    )


def _history(data: Mapping[str, Any]) -> HistorySettings:
    table = _table(data, "history", "")
    defaults = HistorySettings()
    values: dict[str, int] = {}
    for key in ("min_champ_games", "min_pair_games", "min_counter_games"):
        value = _typed(table, key, "history.", int, getattr(defaults, key))
        _in_range(value, f"history.{key}", 1, MAX_MIN_GAMES)
        values[key] = value
    _reject_unknown(table, "history.", set(values))
    return HistorySettings(**values)


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _patch(data: Mapping[str, Any], env: Mapping[str, str]) -> PatchSettings:
    table = _table(data, "patch", "")
    d = PatchSettings()
    w = "patch."
    base_url = env.get("STRATMANCER_DDRAGON_URL") or _typed(table, "base_url", w, str, d.base_url)
    check_url(base_url, "config key patch.base_url")  # the variable was checked in _check_environment
    default_patch = _typed(table, "default_patch", w, str, "") if "default_patch" in table else None
    from stratmancer_jobs.patchver import parse_patch

    if default_patch is not None and parse_patch(default_patch) is None:
        raise ConfigError(f"config key patch.default_patch must look like 16.23, got {default_patch!r}")
    instant = _typed(table, "instant_retries", w, bool, d.instant_retries)
    if "STRATMANCER_RETRY_INSTANT" in env:
        instant = _truthy(env["STRATMANCER_RETRY_INSTANT"])
    settings = PatchSettings(
        base_url=base_url.rstrip("/"),
        region=_typed(table, "region", w, str, d.region),
        cross_check=_typed(table, "cross_check", w, bool, d.cross_check),
        default_patch=default_patch,
        connect_timeout_s=_typed(table, "connect_timeout_s", w, float, d.connect_timeout_s),
        read_timeout_s=_typed(table, "read_timeout_s", w, float, d.read_timeout_s),
        max_attempts=_typed(table, "max_attempts", w, int, d.max_attempts),
        backoff_base_s=_typed(table, "backoff_base_s", w, float, d.backoff_base_s),
        max_backoff_s=_typed(table, "max_backoff_s", w, float, d.max_backoff_s),
        max_retry_after_s=_typed(table, "max_retry_after_s", w, float, d.max_retry_after_s),
        max_bytes=_typed(table, "max_bytes", w, int, d.max_bytes),
        instant_retries=instant,
    )
    if not settings.region.isalnum():
        raise ConfigError(f"config key patch.region must be alphanumeric, got {settings.region!r}")
    _in_range(settings.max_attempts, w + "max_attempts", 1, MAX_ATTEMPTS)
    _in_range(settings.max_bytes, w + "max_bytes", 1, MAX_BYTES)
    for key in ("connect_timeout_s", "read_timeout_s"):
        _in_range(getattr(settings, key), w + key, 0, MAX_HTTP_TIMEOUT_S, low_open=True)
    for key in ("backoff_base_s", "max_backoff_s", "max_retry_after_s"):
        _in_range(getattr(settings, key), w + key, 0, MAX_WAIT_S)
    _reject_unknown(table, w, set(PatchSettings.__dataclass_fields__))
    return settings


def _reject_unknown(table: Mapping[str, Any], where: str, known: set[str]) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"config key {where}{_cut(key)} is unknown (known: {', '.join(sorted(known))})")


def check_url(url: str, where: str) -> None:
    """ConfigError naming ``where`` unless ``url`` is a usable http(s) base URL: a host, a port in
    1-65535, no whitespace or control character (requests would drop a newline and fetch elsewhere),
    no query or fragment (paths are appended to it). Checked here, not when the first request fails."""
    shown = _shown(_without_userinfo(url))
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ConfigError(f"{where} must not contain whitespace or control characters, got {shown}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number, a bad [IPv6] address
        raise ConfigError(f"{where} is not a valid URL ({exc}), got {shown}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where} must be an http(s) URL, got {shown}")
    if not parts.hostname:
        raise ConfigError(f"{where} has no host, got {shown}")
    if port == 0:
        raise ConfigError(f"{where} has port 0 (use 1-65535), got {shown}")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ConfigError(f"{where} must not have a query or fragment (paths follow it), got {shown}")


def _without_userinfo(url: str) -> str:
    """The URL with any ``user:password@`` masked, for messages."""
    scheme, sep, rest = url.partition("://")
    host, at, tail = rest.partition("@") if sep else ("", "", "")
    if at and "/" not in host:
        return f"{scheme}://***@{tail}"
    return url


def _metrics_path(root: Path, value: str, where: str) -> Path | None:
    """An absolute path is the operator's explicit choice (node_exporter's textfile directory lives
    outside the root); a relative one is taken under the root and may not climb out of it."""
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_absolute():
        return named_path(path)
    named = named_path(root / path)
    if not named.is_relative_to(root):
        raise ConfigError(f"{where} {value!r} points outside the deployment root; use an absolute path")
    return named


def named_path(path: Path) -> Path:
    """``path`` made absolute with its directories resolved but its last component kept as named: the
    metrics file is written beside the name and renamed over it, so a symlink there is replaced, never
    followed (resolving it would write through the link into its target)."""
    path = Path(os.path.abspath(path))
    return path.parent.resolve() / path.name


def check_timeout(value: float | None) -> float | None:
    """The --timeout flag: a finite number of seconds in [0, MAX_TIMEOUT_S]; nan and inf are refused."""
    if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_TIMEOUT_S):
        raise ConfigError(
            f"--timeout must be between 0 and {MAX_TIMEOUT_S} seconds (7 days; 0 = no limit), got {value!r}"
        )
    return value


def load_settings(
    root: Path | None,
    env: Mapping[str, str],
    *,
    metrics_file: Path | None = None,
    timeout_s: float | None = None,
) -> Settings:
    """Resolve the configuration once, applying every precedence rule of this module's table.

    ``root``, ``metrics_file`` and ``timeout_s`` are the raw command-line flags (None when not given).
    """
    run_timeout_s = check_timeout(timeout_s)  # a bad flag is reported before anything is read
    layout = Layout(deployment_root(root, env))
    data = _read_toml(layout.config_file)
    with _naming(layout.config_file):
        env_path = _env_file_path(layout, _typed(data or {}, "env_file", "", str, ""))
    from_file: dict[str, str] = {}
    if env_path is not None:  # its errors name the env file
        from stratmancer_jobs.envfile import read_env_file

        from_file = read_env_file(env_path)
    env = {**from_file, **env}  # the process environment wins over the file
    _check_environment(layout.root, env, metrics_file)
    with _naming(layout.config_file):  # the flags and variables were checked above: this is the file
        return _resolve(
            layout,
            data,
            env,
            metrics_file=metrics_file,
            run_timeout_s=run_timeout_s,
            env_file=(env_path, from_file),
        )


@contextlib.contextmanager
def _naming(config_file: Path) -> Iterator[None]:
    """Prefix a ConfigError about the file's content with the file's path."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(f"{config_file}: {exc}") from None


def deployment_root(root: Path | None, env: Mapping[str, str]) -> Path:
    """The deployment root, absolute: the --root flag, else ``STRATMANCER_HOME``, else the current
    directory; ConfigError (one line, the path cut) when it is not a usable directory."""
    shown = "the current directory"
    try:
        if root is None:
            home = env.get("STRATMANCER_HOME", "").strip()
            root = Path(home) if home else Path.cwd()
        text = str(root)
        shown = text if len(text) <= 200 else f"{text[:200]}\u2026 ({len(text)} characters)"
        root = root.expanduser().resolve()
        if root.is_dir():
            return root
        reason = "is not a directory"
    except (OSError, RuntimeError, ValueError) as exc:  # a name too long, a symlink loop, a NUL
        reason = f"cannot be used: {exc.strerror if isinstance(exc, OSError) else exc}"
    raise ConfigError(f"deployment root {shown} {reason} (set --root or STRATMANCER_HOME)")


def _check_environment(root: Path, env: Mapping[str, str], metrics_flag: Path | None) -> None:
    """Refuse a bad environment variable before the file's values are read, naming the variable:
    every later ConfigError is about the file's content and names the file."""
    if env.get("STRATMANCER_TZ"):
        _zone(env["STRATMANCER_TZ"], "STRATMANCER_TZ")
    if env.get("STRATMANCER_DDRAGON_URL"):
        check_url(env["STRATMANCER_DDRAGON_URL"], "STRATMANCER_DDRAGON_URL")
    from_env = env.get("STRATMANCER_METRICS_FILE", "").strip()
    if metrics_flag is None and from_env:
        _metrics_path(root, from_env, "STRATMANCER_METRICS_FILE")


def _resolve(
    layout: Layout,
    data: dict[str, Any] | None,
    env: Mapping[str, str],
    *,
    metrics_file: Path | None,
    run_timeout_s: float | None,
    env_file: tuple[Path | None, Mapping[str, str]],
) -> Settings:
    """``load_settings`` once the root is known, the file is read (None: there is none) and ``env``
    holds the env file's variables under the process's own (``env_file``: its path and variables)."""
    root = layout.root
    found = data is not None
    data = data or {}
    known_top = {
        "timezone", "metrics_file", "env_file", "jobs", "history", "patch", "registry", "deploy", "freshness"
    }  # fmt: skip
    _reject_unknown(data, "", known_top)
    env_path, from_file = env_file

    if env.get("STRATMANCER_TZ"):
        zone = _zone(env["STRATMANCER_TZ"], "STRATMANCER_TZ")
    elif "timezone" in data:
        zone = _zone(_typed(data, "timezone", "", str, "UTC"), "config key timezone")
    else:
        zone = local_zone(env)

    if metrics_file is None:
        from_env = env.get("STRATMANCER_METRICS_FILE", "").strip()
        from_cfg = _typed(data, "metrics_file", "", str, "")
        chosen = from_env or from_cfg
        metrics_file = _metrics_path(root, chosen, "STRATMANCER_METRICS_FILE" if from_env else "metrics_file")
    else:
        metrics_file = named_path(metrics_file.expanduser())

    return Settings(
        layout=layout,
        timezone=zone,
        jobs=_job_schedules(data),
        history=_history(data),
        patch=_patch(data, env),
        registry=_registry(data),
        deploy=_deploy(data),
        freshness=parse_freshness(_table(data, "freshness", "")),
        hooks=_hooks(data),
        metrics_file=metrics_file,
        run_timeout_s=run_timeout_s,
        config_file_found=found,
        redact_values=_secrets(env, from_file),
        env=env,
        env_file=env_path,
        env_file_names=tuple(from_file),
    )


def _env_file_path(layout: Layout, value: str) -> Path | None:
    """The secrets file: ``env_file`` (relative to the root) when set, which must exist; else the
    default ``config/stratmancer.env`` when it exists; else None."""
    if not value:
        return layout.env_file if os.path.lexists(layout.env_file) else None
    path = Path(value).expanduser()
    path = path if path.is_absolute() else layout.root / path
    if not os.path.lexists(path):
        raise ConfigError(f"config key env_file: {path} does not exist")
    return path


def _secrets(env: Mapping[str, str], from_file: Mapping[str, str]) -> tuple[str, ...]:
    """Values to scrub: secret-looking variables, and every value of the env file whatever its name."""
    values = set(secret_values(env)) | {v for v in from_file.values() if len(v) >= MIN_SECRET_LEN}
    return tuple(sorted(values, key=len, reverse=True))
