"""Change hooks, the I/O edge: run the hooks a pending change still owes, report each one.

* Hooks run in their configured order; one that fails does not stop the others (they are independent
  actions); ones that already succeeded for this change are skipped.
* ``command`` hooks: ``subprocess`` with the argv as given (no shell), stdin from ``/dev/null``, the
  caller's environment plus the hook's ``STRATMANCER_*`` variables, in a new session so that a timeout
  kills the whole process group (SIGTERM, then SIGKILL after ``kill_grace_s``). Output goes to a
  temporary file (a daemon the command leaves behind cannot hold a pipe open); the last
  ``output_tail_bytes`` of it appear in the error of a failed command.
* ``url`` hooks: ``stratmancer_jobs.http.request``, the retry loop ``get_json`` uses: connect and read
  timeouts (the read timeout is the hook's ``timeout_seconds``), up to ``max_attempts`` attempts, retried on
  connection errors, timeouts, HTTP 5xx and 429 (``Retry-After`` honoured, capped at
  ``max_retry_after_s``; otherwise exponential backoff with equal jitter), ``instant_retries`` for
  tests. Other 4xx fail at once. Redirects are not followed: the hook's headers (secrets) must not go to
  another address. A retried POST may reach the app twice: delivery is at least once.
* Every message (result, log line) has every header value, literal or from the environment, and every
  value in ``redact_values`` replaced by ``[REDACTED]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from stratmancer_jobs.errors import FetchError
from stratmancer_jobs.hookspec import HookError, HookSpec, PendingChange, describe, expand, resolve_headers
from stratmancer_jobs.http import RetrySettings, Sleep, build_session, display_url, request
from stratmancer_jobs.logs import redact

if TYPE_CHECKING:
    import requests

OUTPUT_TAIL_BYTES = 2000
KILL_GRACE_S = 2.0
_BODY_SNIPPET = 200
_BODY_READ_LIMIT = 64 * 1024


@dataclass(frozen=True)
class HookHttpSettings:
    """Default retry settings for URL hooks (the same numbers as ``config.PatchSettings``)."""

    connect_timeout_s: float = 5.0
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0
    instant_retries: bool = False


Status = Literal["ok", "error", "skipped"]


@dataclass(frozen=True)
class HookResult:
    """One hook's outcome in this run; ``key``, ``description`` and ``message`` are redacted.

    ``key`` is ``HookSpec.key`` with secrets redacted: what ``PendingChange.succeeded`` stores.
    """

    index: int
    key: str
    description: str
    status: Status
    message: str
    duration_s: float = 0.0


@dataclass(frozen=True)
class HookReport:
    """Every hook's outcome, in configured order."""

    results: tuple[HookResult, ...]

    @property
    def ok(self) -> bool:
        """True when no hook failed in this run."""
        return all(r.status != "error" for r in self.results)

    @property
    def succeeded_keys(self) -> tuple[str, ...]:
        """Keys of the hooks that succeeded in this run (for ``spec.after_run``)."""
        return tuple(r.key for r in self.results if r.status == "ok")

    @property
    def error(self) -> str | None:
        """One line naming every failed hook and why (already redacted), or None."""
        failed = [
            f"hook on_change[{r.index}] ({r.description}) failed: {r.message}"
            for r in self.results
            if r.status == "error"
        ]
        return "; ".join(failed) if failed else None


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _single_line(text: str) -> str:
    """Whitespace runs collapsed to one space, other control characters replaced."""
    cleaned = "".join(c if c.isprintable() or c.isspace() else "?" for c in text)
    return " ".join(cleaned.split())


# --- command hooks -------------------------------------------------------------------------------------


def _tail(handle: IO[bytes], limit: int) -> str:
    handle.flush()
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - limit))
    text = _single_line(handle.read(limit).decode("utf-8", errors="replace"))
    return ("..." + text if size > limit else text) if text else ""


def _exited(pid: int) -> bool:
    """True once ``pid`` has exited, without reaping it (its pid, hence its group, stays reserved)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace_s``, then reap the leader."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:  # e.g. a set-uid member of the group: at least stop the leader
            proc.kill()
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not _exited(proc.pid):
            time.sleep(0.02)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _run_command(
    argv: Sequence[str],
    extra_env: Mapping[str, str],
    env: Mapping[str, str],
    timeout_s: float,
    *,
    cwd: Path | None,
    tail_bytes: int,
    grace_s: float,
) -> str:
    """Run one command; its success message, or _Failed with the reason and the output's tail."""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(  # argv list, no shell
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**env, **extra_env},
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise _Failed(f"cannot start {argv[0]!r}: {exc.strerror or type(exc).__name__}") from None
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc, grace_s)
            tail = _tail(out, tail_bytes)
            raise _Failed(
                f"timed out after {timeout_s:g} s; process group killed"
                + (f"; output: {tail}" if tail else "")
            ) from None
        except BaseException:
            _kill_group(proc, 0.0)
            raise
        tail = _tail(out, tail_bytes)
    if code == 0:
        return "exit status 0"
    if code < 0:
        try:
            why = f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            why = f"killed by signal {-code}"
    else:
        why = f"exit status {code}"
    raise _Failed(why + (f"; output: {tail}" if tail else ""))


# --- URL hooks -----------------------------------------------------------------------------------------


def _snippet(response: requests.Response) -> str:
    try:
        body = response.raw.read(_BODY_READ_LIMIT, decode_content=True) if response.raw is not None else b""
    except Exception:  # a body that cannot be read adds nothing to the message
        return ""
    text = _single_line(body.decode("utf-8", errors="replace") if isinstance(body, bytes) else "")
    return text[:_BODY_SNIPPET] + ("..." if len(text) > _BODY_SNIPPET else "")


def _answer(response: requests.Response, label: str) -> str:
    """A hook's verdict on a response that is not retried: its label when 2xx, FetchError else."""
    status = response.status_code
    if 200 <= status < 300:
        return label
    if 300 <= status < 400:
        raise FetchError(f"{label}: redirect not followed (the hook's headers stay with its URL)")
    body = _snippet(response)
    raise FetchError(f"{label}; not retried" + (f"; body: {body}" if body else ""))


def _call_url(
    session: requests.Session,
    hook: HookSpec,
    url: str,
    headers: Mapping[str, str],
    policy: RetrySettings,
    log: logging.Logger,
    secrets: Sequence[str],
    *,
    sleep: Sleep,
    rng: Callable[[], float],
) -> str:
    try:
        label, attempt = request(
            session,
            hook.method,
            url,
            policy,
            _answer,
            timeout=(min(policy.connect_timeout_s, hook.timeout_s), hook.timeout_s),
            log=log,
            name=f"hook on_change[{hook.index}] {hook.method} {display_url(url)}",
            scrub=lambda text: redact(text, secrets),
            headers=headers,
            follow_redirects=False,
            read_phrase="no answer within",
            sleep=sleep,
            rng=rng,
        )
    except FetchError as exc:
        raise _Failed(exc.message) from None
    return label + (f" (attempt {attempt})" if attempt > 1 else "")


# --- the runner ----------------------------------------------------------------------------------------


def run_hooks(
    hooks: Sequence[HookSpec],
    pending: PendingChange,
    *,
    env: Mapping[str, str],
    log: logging.Logger,
    http: RetrySettings | None = None,
    redact_values: Sequence[str] = (),
    session_factory: Callable[[], requests.Session] = build_session,
    cwd: Path | None = None,
    sleep: Sleep = time.sleep,
    rng: Callable[[], float] = random.random,
    output_tail_bytes: int = OUTPUT_TAIL_BYTES,
    kill_grace_s: float = KILL_GRACE_S,
) -> HookReport:
    """Run every hook that has not yet succeeded for ``pending``, in order, and report each one.

    ``env`` is the process environment (for ``env:NAME`` headers and as the base of a command's
    environment); ``redact_values`` are further secrets to scrub (e.g. ``Settings.redact_values``).
    Never raises for a hook's failure: it is a result with status ``error``.
    """
    policy: RetrySettings = http if http is not None else HookHttpSettings()
    fields = {"job_id": pending.job_id, **pending.fields}
    # resolve every hook's headers first, so that any header value is redacted from every message
    resolved: dict[int, tuple[tuple[tuple[str, str], ...], str | None]] = {}
    secrets_all: set[str] = {v for v in redact_values if v}
    for hook in hooks:
        try:
            headers, secrets = resolve_headers(hook, env)
        except HookError as exc:
            resolved[hook.index] = ((), exc.message)
        else:
            resolved[hook.index] = (headers, None)
            secrets_all.update(secrets)
        secrets_all.update(value for _, value in hook.headers if not value.startswith("env:"))
    secrets = tuple(sorted(secrets_all, key=len, reverse=True))

    results: list[HookResult] = []
    session: requests.Session | None = None
    try:
        for hook in hooks:
            # a secret in an argv or URL must not reach the state either: keys are redacted too
            desc = redact(describe(hook), secrets)
            key = redact(hook.key, secrets)
            name = f"hook on_change[{hook.index}] ({desc})"
            if key in pending.succeeded:
                results.append(HookResult(hook.index, key, desc, "skipped", "already succeeded"))
                log.debug(f"{name}: already succeeded for this change")
                continue
            started = time.monotonic()
            expanded = expand(hook, fields, pending.paths)
            try:
                headers, header_error = resolved[hook.index]
                if header_error is not None:
                    raise _Failed(header_error)
                if expanded.url is not None:
                    if session is None:
                        session = session_factory()
                    message = _call_url(
                        session, hook, expanded.url, dict(headers), policy, log, secrets, sleep=sleep, rng=rng
                    )
                else:
                    assert hook.command is not None
                    message = _run_command(
                        hook.command,
                        expanded.env,
                        env,
                        hook.timeout_s,
                        cwd=cwd,
                        tail_bytes=output_tail_bytes,
                        grace_s=kill_grace_s,
                    )
            except _Failed as exc:
                elapsed = time.monotonic() - started
                text = redact(exc.reason, secrets)
                results.append(HookResult(hook.index, key, desc, "error", text, elapsed))
                # debug only: the run's one failure line carries this error already
                log.debug(redact(f"{name} failed after {elapsed:.1f} s: {exc.reason}", secrets))
                continue
            elapsed = time.monotonic() - started
            text = redact(message, secrets)
            results.append(HookResult(hook.index, key, desc, "ok", text, elapsed))
            log.debug(redact(f"{name}: ok, {message}, {elapsed:.1f} s", secrets))
    finally:
        if session is not None:
            session.close()
    return HookReport(tuple(results))
