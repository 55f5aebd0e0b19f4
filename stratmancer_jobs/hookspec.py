"""Change hooks, pure part: the configuration model, expansion, descriptions and the pending change.

Configuration (``config/jobs.toml``), one table per action, run in the order written::

    [[jobs.refresh_model_registry.on_change]]
    url = "http://127.0.0.1:8000/models/registry/reload"   # http or https only
    method = "POST"                                        # default POST; GET PUT PATCH DELETE also
    headers = { X-STRATMANCER-KEY = "env:STRATMANCER_API_KEY" }
    timeout_seconds = 30                                   # default 30, (0, 3600]

    [[jobs.refresh_model_registry.on_change]]
    command = ["systemctl", "restart", "stratmancer-api"]  # argv, no shell
    timeout_seconds = 60

URL placeholders ``{patch}``, ``{previous_patch}`` and ``{job_id}`` are filled in (URL-quoted; a field
the change does not have becomes empty). Commands get no placeholders; they receive the environment
variables ``STRATMANCER_JOB_ID``, ``STRATMANCER_CHANGED_PATHS`` (``os.pathsep``-joined) and, when the
change has them, ``STRATMANCER_PATCH`` and ``STRATMANCER_PREVIOUS_PATCH``.

Header values are secrets: they are never part of ``describe``, of an error message or of the state.

Nothing in this module reads the process environment: callers pass ``env`` in.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlsplit

from stratmancer_jobs.errors import ConfigError, JobError

DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 3600.0
MAX_HOOKS = 20
MAX_ARGV = 256
MAX_TEXT = 4096
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PLACEHOLDERS = ("job_id", "patch", "previous_patch")
ENV_PREFIX = "env:"
KNOWN_KEYS = frozenset({"command", "url", "method", "headers", "timeout_seconds"})

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


class HookError(JobError):
    """A hook could not be prepared or run (e.g. a header's environment variable is not set)."""


@dataclass(frozen=True)
class HookSpec:
    """One ``on_change`` action: exactly one of ``command`` (argv) and ``url``.

    ``headers`` pairs a header name with a literal value or ``env:NAME``; ``index`` is the hook's
    position (0-based) in the job's ``on_change`` array.
    """

    index: int
    command: tuple[str, ...] | None = None
    url: str | None = None
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def key(self) -> str:
        """The identity a succeeded hook is remembered by: position and description."""
        return f"{self.index}:{describe(self)}"


# --- parsing -------------------------------------------------------------------------------------------


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"config key {where} must be a string, got {type(value).__name__}")
    if not value or len(value) > MAX_TEXT:
        raise ConfigError(f"config key {where} must be a non-empty string of at most {MAX_TEXT} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ConfigError(f"config key {where} must not contain control characters")
    return value


def _command(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"config key {where} must be an array of strings (argv, no shell)")
    if not value:
        raise ConfigError(f"config key {where} must not be empty")
    if len(value) > MAX_ARGV:
        raise ConfigError(f"config key {where} has more than {MAX_ARGV} items")
    argv: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"config key {where}[{i}] must be a string, got {type(item).__name__}")
        if "\x00" in item or len(item) > MAX_TEXT:
            raise ConfigError(f"config key {where}[{i}] must not contain NUL or exceed {MAX_TEXT} characters")
        argv.append(item)
    if not argv[0]:
        raise ConfigError(f"config key {where}[0] (the program) must not be empty")
    return tuple(argv)


def _url(value: object, where: str, placeholders: Collection[str]) -> str:
    url = _text(value, where)
    if any(c.isspace() for c in url):
        raise ConfigError(f"config key {where} must not contain whitespace")
    for name in _PLACEHOLDER_RE.findall(url):
        if name not in placeholders:
            allowed = ", ".join("{" + p + "}" for p in placeholders) or "none"
            raise ConfigError(f"config key {where}: unknown placeholder {{{name}}} (allowed: {allowed})")
    bare = _PLACEHOLDER_RE.sub("x", url)
    if "{" in bare or "}" in bare:
        raise ConfigError(f"config key {where} has an unbalanced '{{' or '}}'")
    try:
        parts = urlsplit(bare)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"config key {where} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"config key {where} must be an http:// or https:// URL")
    if not host:
        raise ConfigError(f"config key {where} has no host")
    if "@" in parts.netloc:
        raise ConfigError(
            f"config key {where} must not carry credentials (user:password@); "
            'use headers = { Name = "env:VARIABLE" }'
        )
    if parts.fragment:
        raise ConfigError(f"config key {where} must not have a #fragment")
    return url


def _method(value: object, where: str) -> str:
    if not isinstance(value, str) or value.upper() not in METHODS:
        shown = value if isinstance(value, str) else type(value).__name__
        raise ConfigError(f"config key {where} must be one of {', '.join(METHODS)}, got {shown!r}"[:300])
    return value.upper()


def _headers(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"config key {where} must be a table of header names to strings")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, raw in value.items():
        key = f"{where}.{name}"
        if not _HEADER_NAME_RE.match(name):
            raise ConfigError(f"config key {key}: {name!r} is not a valid header name"[:300])
        if name.lower() in seen:
            raise ConfigError(f"config key {key}: header given twice (names are case-insensitive)")
        seen.add(name.lower())
        # the value is never echoed: it may be a literal secret
        if not isinstance(raw, str):
            raise ConfigError(f"config key {key} must be a string, got {type(raw).__name__}")
        if not raw or len(raw) > MAX_TEXT or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
            raise ConfigError(
                f"config key {key} must be a non-empty string without control characters "
                f"(at most {MAX_TEXT} characters)"
            )
        if raw.startswith(ENV_PREFIX) and not _ENV_NAME_RE.match(raw[len(ENV_PREFIX) :]):
            raise ConfigError(f"config key {key}: after 'env:' must come an environment variable name")
        out.append((name, raw))
    return tuple(out)


def _timeout(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"config key {where} must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT_S):
        raise ConfigError(f"config key {where} must be > 0 and <= {MAX_TIMEOUT_S:g}, got {value!r}")
    return seconds


def parse_hook(
    job_id: str, index: int, raw: object, placeholders: Collection[str] = PLACEHOLDERS
) -> HookSpec:
    """Validate one ``[[jobs.<job_id>.on_change]]`` table; ConfigError names the full key."""
    where = f"jobs.{job_id}.on_change[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"config key {where} must be a table, got {type(raw).__name__}")
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"config key {where}.{unknown[0]} is unknown (known: {', '.join(sorted(KNOWN_KEYS))})"[:300]
        )
    has_command, has_url = "command" in raw, "url" in raw
    if has_command == has_url:
        raise ConfigError(f"config key {where} must have exactly one of command and url")
    timeout = (
        _timeout(raw["timeout_seconds"], f"{where}.timeout_seconds") if "timeout_seconds" in raw else None
    )
    if has_command:
        for key in ("method", "headers"):
            if key in raw:
                raise ConfigError(f"config key {where}.{key} applies only to url hooks")
        return HookSpec(
            index=index,
            command=_command(raw["command"], f"{where}.command"),
            timeout_s=DEFAULT_TIMEOUT_S if timeout is None else timeout,
        )
    return HookSpec(
        index=index,
        url=_url(raw["url"], f"{where}.url", placeholders),
        method=_method(raw["method"], f"{where}.method") if "method" in raw else "POST",
        headers=_headers(raw["headers"], f"{where}.headers") if "headers" in raw else (),
        timeout_s=DEFAULT_TIMEOUT_S if timeout is None else timeout,
    )


def parse_hooks(
    job_id: str, raw: object, placeholders: Collection[str] = PLACEHOLDERS
) -> tuple[HookSpec, ...]:
    """Validate a job's ``on_change`` value (a TOML array of tables; absent = None = no hooks).

    ``placeholders`` are the URL placeholders this job may use (the wiring can narrow them per job,
    e.g. only ``job_id`` for jobs without a patch).
    """
    where = f"jobs.{job_id}.on_change"
    if raw is None:
        return ()
    if isinstance(raw, dict):
        raise ConfigError(f"config key {where} must be an array of tables: write [[{where}]], not [{where}]")
    if not isinstance(raw, list):
        raise ConfigError(f"config key {where} must be an array of tables, got {type(raw).__name__}")
    if len(raw) > MAX_HOOKS:
        raise ConfigError(f"config key {where} has {len(raw)} hooks (at most {MAX_HOOKS})")
    return tuple(parse_hook(job_id, i, item, placeholders) for i, item in enumerate(raw))


# --- descriptions, expansion, headers ------------------------------------------------------------------


def describe(hook: HookSpec) -> str:
    """A one-line description safe for logs and state: never a header value.

    ``POST http://127.0.0.1:8000/models/registry/reload`` or ``command systemctl restart stratmancer-api``.
    URLs are shown as configured (placeholders unexpanded); they cannot carry credentials.
    """
    if hook.command is not None:
        return "command " + shlex.join(hook.command)
    return f"{hook.method} {hook.url}"


@dataclass(frozen=True)
class Expanded:
    """A hook made concrete for one change: the URL to call, or the variables to add to a command's env."""

    url: str | None
    env: dict[str, str]


def expand(hook: HookSpec, fields: Mapping[str, str], changed_paths: Sequence[str] = ()) -> Expanded:
    """Fill ``{patch}``/``{previous_patch}``/``{job_id}`` in a URL (URL-quoted), or build a command's env.

    ``fields`` holds ``job_id`` and, for the patch job, ``patch`` and ``previous_patch``; a placeholder
    without a field becomes the empty string.
    """
    if hook.url is not None:
        url = _PLACEHOLDER_RE.sub(lambda m: quote(fields.get(m.group(1), ""), safe=""), hook.url)
        return Expanded(url=url, env={})
    env = {
        "STRATMANCER_JOB_ID": fields.get("job_id", ""),
        "STRATMANCER_CHANGED_PATHS": os.pathsep.join(changed_paths),
    }
    if "patch" in fields:
        env["STRATMANCER_PATCH"] = fields["patch"]
    if "previous_patch" in fields:
        env["STRATMANCER_PREVIOUS_PATCH"] = fields["previous_patch"]
    return Expanded(url=None, env=env)


def resolve_headers(
    hook: HookSpec, env: Mapping[str, str]
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """The headers to send, with ``env:NAME`` values looked up in ``env``, and every value to redact.

    HookError names the header and the variable (never a value) when the variable is unset or empty.
    The secrets are all header values, literal or resolved, longest first.
    """
    resolved: list[tuple[str, str]] = []
    for name, raw in hook.headers:
        if raw.startswith(ENV_PREFIX):
            variable = raw[len(ENV_PREFIX) :]
            value = env.get(variable)
            if not value:
                state = "is not set" if value is None else "is empty"
                raise HookError(f"header {name}: environment variable {variable} {state}")
            resolved.append((name, value))
        else:
            resolved.append((name, raw))
    secrets = tuple(sorted({v for _, v in resolved}, key=len, reverse=True))
    return tuple(resolved), secrets


# --- the pending change --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A job's output really changed in this run (after it was committed to disk)."""

    job_id: str
    paths: tuple[str, ...]
    fields: Mapping[str, str]
    seen_at: str  # ISO 8601


@dataclass(frozen=True)
class PendingChange:
    """A change whose hooks have not all succeeded yet (kept in the job's state until they have).

    ``succeeded`` holds the ``HookSpec.key`` of each hook that already succeeded for this change;
    ``attempts`` counts the runs that tried the hooks; ``last_error`` is the last failure, redacted.
    """

    job_id: str
    paths: tuple[str, ...]
    fields: dict[str, str]
    first_seen: str | None
    attempts: int = 0
    last_error: str | None = None
    succeeded: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for the state file."""
        return {
            "job_id": self.job_id,
            "paths": list(self.paths),
            "fields": dict(self.fields),
            "first_seen": self.first_seen,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "succeeded": list(self.succeeded),
        }

    @classmethod
    def from_json(cls, raw: object, job_id: str) -> PendingChange | None:
        """Read a stored pending change, tolerating garbage; None only when nothing is stored.

        The rule favours running a hook twice over never: anything stored that is not ``null`` is a
        pending change; a bad field becomes its empty value (a bad ``succeeded`` list means every hook
        runs again), a bad ``first_seen``/``last_error`` becomes None. ``job_id`` is the caller's.
        """
        if raw is None:
            return None
        data: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        paths = data.get("paths")
        fields = data.get("fields")
        attempts = data.get("attempts")
        succeeded = data.get("succeeded")
        return cls(
            job_id=job_id,
            paths=tuple(p for p in paths if isinstance(p, str)) if isinstance(paths, list) else (),
            fields=(
                {k: v for k, v in fields.items() if isinstance(k, str) and isinstance(v, str)}
                if isinstance(fields, dict)
                else {}
            ),
            first_seen=_str_or_none(data.get("first_seen")),
            attempts=attempts
            if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts >= 0
            else 0,
            last_error=_str_or_none(data.get("last_error")),
            succeeded=(
                tuple(succeeded)
                if isinstance(succeeded, list) and all(isinstance(s, str) for s in succeeded)
                else ()
            ),
        )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def next_pending(previous: PendingChange | None, changed_now: Change | None) -> PendingChange | None:
    """The pending change after this run's output was committed (before the hooks run).

    * nothing pending, nothing changed: None;
    * nothing changed: the previous pending change as it was (its remaining hooks are retried);
    * a new change: paths are the union (sorted) of the old and new ones, fields are the new change's,
      ``first_seen``, ``attempts`` and ``last_error`` are kept from the old one (how long the app has
      been out of date), and ``succeeded`` is emptied: every hook runs again, because a hook that
      succeeded told the app about the old output, not the new one.
    """
    if changed_now is None:
        return previous
    if previous is None:
        return PendingChange(
            job_id=changed_now.job_id,
            paths=tuple(sorted(set(changed_now.paths))),
            fields=dict(changed_now.fields),
            first_seen=changed_now.seen_at,
        )
    return PendingChange(
        job_id=changed_now.job_id,
        paths=tuple(sorted(set(previous.paths) | set(changed_now.paths))),
        fields=dict(changed_now.fields),
        first_seen=previous.first_seen if previous.first_seen is not None else changed_now.seen_at,
        attempts=previous.attempts,
        last_error=previous.last_error,
        succeeded=(),
    )


def after_run(
    pending: PendingChange, succeeded_keys: Sequence[str], error: str | None
) -> PendingChange | None:
    """The pending change after its hooks ran: None when every hook has now succeeded (``error`` None).

    Otherwise ``attempts`` grows by one, ``succeeded`` gains ``succeeded_keys`` and ``last_error`` is
    ``error`` (already redacted by the caller).
    """
    if error is None:
        return None
    merged = tuple(dict.fromkeys((*pending.succeeded, *succeeded_keys)))
    return replace(pending, attempts=pending.attempts + 1, last_error=error, succeeded=merged)
