"""systemd timer and service units for each job, and cron expressions translated to ``OnCalendar=``.

Each job becomes ``stratmancer-<command>.service`` (``Type=oneshot``, the command run directly without
a shell) and ``stratmancer-<command>.timer`` (``OnCalendar=`` from the job's cron expression,
``Persistent=true``). The translation is exact or refused: an expression whose fire times
``OnCalendar=`` cannot reproduce raises ConfigError naming it and why.

Quoting follows systemd.syntax(7) and systemd.service(5): ``%`` starts a specifier everywhere (``%%``),
``$`` starts a variable in ``ExecStart=`` arguments (``$$``; the executable word is not expanded), and a
double-quoted word takes C escapes (``\\\\``, ``\\"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from pathlib import PurePosixPath

from stratmancer_jobs.deploy import DeployJob, DeployTarget, check_timezone
from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.schedule import validate_cron

UNIT_PREFIX = "stratmancer-"

# the cron macros with a calendar meaning (Debian cron's list); @reboot has none
MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
CRON_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# systemd's weekday names indexed by cron's number (0 = Sunday), and systemd's week order (Monday first)
SYSTEMD_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
SYSTEMD_WEEK = (1, 2, 3, 4, 5, 6, 0)

# (name, lowest, highest) of the five cron fields; day-of-week 7 is Sunday again
FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
MINUTE, HOUR, DOM, MONTH, DOW = range(5)

_COMMAND_RE = re.compile(r"[a-z0-9][a-z0-9-]*")
_SAFE_WORD_RE = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def _untranslatable(expr: str, why: str) -> ConfigError:
    return ConfigError(f"cron expression {expr!r} cannot be written as a systemd OnCalendar= value: {why}")


def _value(token: str, field: int, expr: str) -> int:
    name, lo, hi = FIELDS[field]
    if field == MONTH and token in MONTH_NAMES:
        return MONTH_NAMES.index(token) + 1
    if field == DOW and token in CRON_DAY_NAMES:
        return CRON_DAY_NAMES.index(token)
    if not token.isdigit():
        raise _untranslatable(
            expr, f"{token!r} in the {name} field is not supported (L, W, # and ? have no OnCalendar= form)"
        )
    number = int(token)
    if not lo <= number <= hi:
        raise ConfigError(f"cron expression {expr!r}: {number} is outside the {name} range {lo}-{hi}")
    return number


def _parse_field(text: str, field: int, expr: str) -> set[int]:
    """The set of values one cron field matches (lists, ranges, steps and names expanded)."""
    name, lo, hi = FIELDS[field]
    values: set[int] = set()
    for term in text.split(","):
        base, slash, step_text = term.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _untranslatable(expr, f"step {step_text!r} in the {name} field is not positive")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, field, expr), _value(last, field, expr)
            if end < start:
                raise ConfigError(f"cron expression {expr!r}: range {base!r} in the {name} field is reversed")
        else:
            start = _value(base, field, expr)
            end = hi if slash else start  # cron's "a/n" means a, a+n, ... up to the field's end
        values.update(range(start, end + 1, step))
    if field == DOW and 7 in values:
        values = (values - {7}) | {0}
    return values


def _runs(ordered: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct numbers grouped into runs of consecutive values, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for value in ordered:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _render_numbers(values: set[int], lo: int, hi: int) -> str:
    """The shortest exact OnCalendar= component: ``*``, ``a/n``, ``a..b/n``, ranges and lists."""
    if values == set(range(lo, hi + 1)):
        return "*"
    ordered = sorted(values)
    if len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        if step > 1 and all(b - a == step for a, b in pairwise(ordered)):
            if ordered[-1] + step > hi:
                return f"{ordered[0]:02d}/{step}"
            return f"{ordered[0]:02d}..{ordered[-1]:02d}/{step}"
    parts: list[str] = []
    for first, last in _runs(ordered):
        if last - first >= 2:
            parts.append(f"{first:02d}..{last:02d}")
        else:
            parts.extend(f"{v:02d}" for v in range(first, last + 1))
    return ",".join(parts)


def _render_weekdays(days: set[int]) -> str:
    """systemd weekday names in its Monday-first order, three or more consecutive days as a range."""
    if days == set(range(7)):
        return ""
    positions = [i for i, day in enumerate(SYSTEMD_WEEK) if day in days]
    parts: list[str] = []
    for first, last in _runs(positions):
        names = [SYSTEMD_DAYS[SYSTEMD_WEEK[i]] for i in range(first, last + 1)]
        parts.append(f"{names[0]}..{names[-1]}" if len(names) >= 3 else ",".join(names))
    return ",".join(parts)


def cron_to_oncalendar(expr: str, timezone: str | None = None) -> str:
    """Translate a 5-field cron expression (or a calendar macro like ``@daily``) into ``OnCalendar=``.

    The result fires at exactly the times cron (and cronsim) would; ``timezone``, when given, is
    appended as systemd's trailing zone name. ConfigError names the expression when that is impossible:
    ``@reboot``; ``L``/``W``/``#``/``?``; or day-of-month and day-of-week both restricted (cron runs when
    either matches, ``OnCalendar=`` only when both do).
    """
    text = expr.strip()
    if text.startswith("@"):
        macro = text.lower()
        if macro == "@reboot":
            raise _untranslatable(
                expr, "@reboot runs once at boot, not on a calendar (Persistent=true already catches up)"
            )
        if macro not in MACROS:
            raise ConfigError(f"cron expression {expr!r}: unknown macro (known: {', '.join(MACROS)})")
        text = MACROS[macro]
    validate_cron(text, "schedule")
    fields = text.upper().split()
    values = [_parse_field(part, i, expr) for i, part in enumerate(fields)]
    days, weekdays = values[DOM], values[DOW]
    every_day, every_weekday = set(range(1, 32)), set(range(7))
    if not (fields[DOM].startswith("*") or fields[DOW].startswith("*")):
        # Debian cron (and cronsim): neither field starts with '*', so a day matches if EITHER does
        if days == every_day or weekdays == every_weekday:
            days, weekdays = every_day, every_weekday
        else:
            raise _untranslatable(
                expr,
                "day-of-month and day-of-week are both restricted; cron runs when either matches, "
                "OnCalendar= only when both do (write '*' in one of the two fields, or schedule this "
                "job with `stratmancer-jobs crontab --install`)",
            )
    dow = _render_weekdays(weekdays)
    month = _render_numbers(values[MONTH], 1, 12)
    day = _render_numbers(days, 1, 31)
    hour = _render_numbers(values[HOUR], 0, 23)
    minute = _render_numbers(values[MINUTE], 0, 59)
    spec = f"*-{month}-{day} {hour}:{minute}:00"
    if dow:
        spec = f"{dow} {spec}"
    if timezone:
        spec = f"{spec} {check_timezone(timezone)}"
    return spec


def unit_name(command: str, kind: str) -> str:
    """The unit file name of a job command: ``stratmancer-<command>.<kind>`` (service or timer)."""
    return f"{UNIT_PREFIX}{command}.{kind}"


def _check_path(value: str, what: str) -> str:
    if not PurePosixPath(value).is_absolute():
        raise ConfigError(f"{what} {value!r} must be an absolute path for systemd units")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ConfigError(f"{what} {value!r} contains a control character; systemd units cannot name it")
    return value


def _escape_specifiers(text: str) -> str:
    return text.replace("%", "%%")


def _quote_word(text: str, *, executable: bool = False) -> str:
    """One ``ExecStart=`` word: specifiers escaped, ``$`` doubled in arguments, quoted unless plain."""
    escaped = _escape_specifiers(text)
    if not executable:
        escaped = escaped.replace("$", "$$")
    if _SAFE_WORD_RE.fullmatch(text):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_assignment(name: str, value: str) -> str:
    """One ``Environment=`` assignment, double-quoted with C escapes and specifiers escaped."""
    escaped = _escape_specifiers(f"{name}={value}").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _seconds(value: int, what: str) -> str:
    if value < 0:
        raise ConfigError(f"{what} must be >= 0, got {value}")
    return f"{value}s"


def _header(filename: str, timers: Sequence[str], *, user: bool) -> list[str]:
    ctl = "systemctl --user" if user else "systemctl"
    unit_dir = "~/.config/systemd/user/" if user else "/etc/systemd/system/"
    lines = [
        f"# {filename}: generated by `stratmancer-jobs systemd`; regenerate rather than edit.",
        f"# Install: copy every stratmancer-*.service and stratmancer-*.timer file to {unit_dir}, then",
        f"#   {ctl} daemon-reload",
        f"#   {ctl} enable --now {' '.join(timers)}",
    ]
    if user:
        lines.append('#   loginctl enable-linger "$USER"   # so the timers also run while you are logged out')
    lines += [
        "# Persistent=true on the timers starts a run missed while the machine was off, so the crontab's",
        "# `@reboot ... --if-due` catch-up lines are not needed with systemd.",
        f"# Schedule: {ctl} list-timers 'stratmancer-*'; logs: journalctl{' --user' if user else ''}"
        " -u 'stratmancer-*'",
    ]
    return lines


def render_units(
    jobs: Sequence[DeployJob],
    target: DeployTarget,
    *,
    user: bool,
    randomized_delay_s: int | None = None,
    accuracy_s: int = 1,
    kill_margin_s: int = 30,
) -> dict[str, str]:
    """Unit file name -> text: a oneshot ``.service`` and a ``.timer`` per job, in job order.

    ``TimeoutStartSec`` is the job's timeout plus ``kill_margin_s`` (``infinity`` when the timeout is
    0), so the tool's own limit fires first and records ``timed out``; systemd's stop is the backstop.
    ``user`` makes user units (no ``User=``, no network-online ordering, ``--user`` in the comments).
    """
    if not jobs:
        raise ConfigError("no jobs to write systemd units for")
    root = _check_path(str(target.root), "deployment root")
    executable = _check_path(target.executable, "executable")
    if any(ch in executable for ch in "\\'\""):
        # systemd refuses an executable path with quotes or backslashes ("contains special characters")
        raise ConfigError(f"executable {executable!r} contains a quote or backslash; systemd cannot run it")
    if accuracy_s < 1:
        raise ConfigError(f"timer accuracy must be >= 1 s, got {accuracy_s}")
    if kill_margin_s < 0:
        raise ConfigError(f"kill margin must be >= 0 s, got {kill_margin_s}")
    zone = check_timezone(target.timezone) if target.timezone else None
    env_file = _check_path(str(target.env_file), "env file") if target.env_file else None
    seen: set[str] = set()
    for job in jobs:
        if not _COMMAND_RE.fullmatch(job.command):
            raise ConfigError(f"job command {job.command!r} cannot be part of a unit name")
        if job.command in seen:
            raise ConfigError(f"job command {job.command!r} appears twice")
        seen.add(job.command)
    timers = [unit_name(job.command, "timer") for job in jobs]
    units: dict[str, str] = {}
    for job in jobs:
        service, timer = unit_name(job.command, "service"), unit_name(job.command, "timer")
        if job.timeout_s < 0:
            raise ConfigError(f"job {job.id} timeout_seconds must be >= 0, got {job.timeout_s}")
        timeout = "infinity" if job.timeout_s == 0 else f"{job.timeout_s + kill_margin_s}s"
        description = _escape_specifiers(f"StratMancer job {job.name} ({job.id})")
        lines = [*_header(service, timers, user=user), "", "[Unit]", f"Description={description}"]
        if not user:
            lines += ["Wants=network-online.target", "After=network-online.target"]
        lines += [
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={_quote_word(executable, executable=True)} {_quote_word(job.command)}",
            f"WorkingDirectory={_escape_specifiers(root)}",
            f"Environment={_quote_assignment('STRATMANCER_HOME', root)}",
        ]
        if zone:
            lines.append(f"Environment={_quote_assignment('STRATMANCER_TZ', zone)}")
        if env_file:  # '-': a missing file is no error; the tool reads the same file itself
            lines.append(f"EnvironmentFile=-{_escape_specifiers(env_file)}")
        if target.run_as and not user:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", target.run_as):
                raise ConfigError(f"user name {target.run_as!r} is not a valid systemd User= value")
            lines.append(f"User={target.run_as}")
        lines += [
            f"TimeoutStartSec={timeout}",
            f"SyslogIdentifier={UNIT_PREFIX}{job.command}",
            "NoNewPrivileges=yes",
        ]
        units[service] = "\n".join(lines) + "\n"

        timer_lines = [
            *_header(timer, timers, user=user),
            "",
            "[Unit]",
            "Description="
            + _escape_specifiers(f"Schedule of StratMancer job {job.name} (cron: {job.schedule})"),
            "",
            "[Timer]",
            f"OnCalendar={cron_to_oncalendar(job.schedule, zone)}",
            "Persistent=true",
            f"AccuracySec={_seconds(accuracy_s, 'timer accuracy')}",
        ]
        if randomized_delay_s:
            timer_lines.append(f"RandomizedDelaySec={_seconds(randomized_delay_s, 'randomized delay')}")
        timer_lines += [f"Unit={service}", "", "[Install]", "WantedBy=timers.target"]
        units[timer] = "\n".join(timer_lines) + "\n"
    return units
