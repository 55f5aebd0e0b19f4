"""Change hooks, the I/O edge: run the hooks a pending change still owes, report each one.

* Hooks run in their configured order; one that fails does not stop the others (they are independent
  actions); ones that already succeeded for this change are skipped.
* ``command`` hooks: ``subprocess`` with the argv as given (no shell), stdin from ``/dev/null``, the
  caller's environment plus the hook's ``STRATMANCER_*`` variables, in a new session so that a timeout
  kills the whole process group (SIGTERM, then SIGKILL after ``kill_grace_s``). Output goes to a
  temporary file (a daemon the command leaves behind cannot hold a pipe open); the last
  ``output_tail_bytes`` of it appear in the error of a failed command.
* ``url`` hooks: ``requests`` with the rules of ``stratmancer_jobs.http``: connect and read timeouts
  (the read timeout is the hook's ``timeout_seconds``), up to ``max_attempts`` attempts, retried on
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
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, Protocol

import requests

from stratmancer_jobs.hookspec import HookError, HookSpec, PendingChange, describe, expand, resolve_headers
from stratmancer_jobs.http import Sleep, backoff_delay, build_session, display_url, parse_retry_after
from stratmancer_jobs.logs import redact

OUTPUT_TAIL_BYTES = 2000
KILL_GRACE_S = 2.0
_BODY_SNIPPET = 200
_BODY_READ_LIMIT = 64 * 1024


class RetryPolicy(Protocol):
    """The retry settings URL hooks use; ``config.PatchSettings`` and ``HookHttpSettings`` provide them."""

    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def backoff_base_s(self) -> float: ...
    @property
    def max_backoff_s(self) -> float: ...
    @property
    def max_retry_after_s(self) -> float: ...
    @property
    def instant_retries(self) -> bool: ...


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


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


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


def _request_error(exc: requests.RequestException, connect_s: float, read_s: float) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return f"connect timeout ({connect_s:g} s)"
    if isinstance(exc, requests.ReadTimeout):
        return f"read timeout (no answer within {read_s:g} s)"
    reason: BaseException | None = exc
    for _ in range(8):  # the innermost OS reason, e.g. "Connection refused"
        if reason is None:
            break
        if isinstance(reason, OSError) and reason.strerror:
            return f"connection failed ({reason.strerror})"
        nested = reason.args[0] if reason.args and isinstance(reason.args[0], BaseException) else None
        reason = reason.__cause__ or getattr(reason, "reason", None) or nested or reason.__context__
        if not isinstance(reason, BaseException):
            break
    return f"connection failed ({type(exc).__name__})"


def _snippet(response: requests.Response) -> str:
    try:
        body = response.raw.read(_BODY_READ_LIMIT, decode_content=True) if response.raw is not None else b""
    except Exception:  # a body that cannot be read adds nothing to the message
        return ""
    text = _single_line(body.decode("utf-8", errors="replace") if isinstance(body, bytes) else "")
    return text[:_BODY_SNIPPET] + ("..." if len(text) > _BODY_SNIPPET else "")


def _call_once(
    session: requests.Session,
    method: str,
    url: str,
    headers: Mapping[str, str],
    connect_s: float,
    read_s: float,
) -> str:
    try:
        response = session.request(
            method,
            url,
            headers=dict(headers),
            timeout=(connect_s, read_s),
            stream=True,
            allow_redirects=False,
        )
    except requests.exceptions.SSLError:
        raise _Failed("TLS error (certificate or handshake); not retried") from None
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise _Retryable(_request_error(exc, connect_s, read_s)) from None
    except requests.RequestException as exc:
        raise _Failed(f"request failed ({type(exc).__name__}); not retried") from None
    with response:
        status = response.status_code
        label = f"HTTP {status} {_single_line(response.reason or '')[:60]}".rstrip()
        if 200 <= status < 300:
            return label
        if status == 429 or status >= 500:
            wait = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
            raise _Retryable(label, retry_after=wait)
        if 300 <= status < 400:
            raise _Failed(f"{label}: redirect not followed (the hook's headers stay with its URL)")
        body = _snippet(response)
        raise _Failed(f"{label}; not retried" + (f"; body: {body}" if body else ""))


def _call_url(
    session: requests.Session,
    hook: HookSpec,
    url: str,
    headers: Mapping[str, str],
    policy: RetryPolicy,
    log: logging.Logger,
    secrets: Sequence[str],
    *,
    sleep: Sleep,
    rng: Callable[[], float],
) -> str:
    shown = display_url(url)
    connect_s = min(policy.connect_timeout_s, hook.timeout_s)
    attempts = max(1, policy.max_attempts)
    for attempt in range(1, attempts + 1):
        try:
            label = _call_once(session, hook.method, url, headers, connect_s, hook.timeout_s)
        except _Retryable as exc:
            if attempt >= attempts:
                raise _Failed(f"{exc.reason} (gave up after {attempts} attempts)") from None
            if exc.retry_after is not None:
                wait = min(exc.retry_after, policy.max_retry_after_s)
                why = f"Retry-After {exc.retry_after:g} s" + (
                    f", capped at {policy.max_retry_after_s:g} s" if wait < exc.retry_after else ""
                )
            else:
                wait = backoff_delay(attempt, policy.backoff_base_s, policy.max_backoff_s, rng())
                why = "backoff"
            log.warning(
                redact(
                    f"hook on_change[{hook.index}] {hook.method} {shown} failed: {exc.reason} "
                    f"(attempt {attempt} of {attempts}); retrying in {wait:.1f} s ({why})",
                    secrets,
                )
            )
            if wait > 0 and not policy.instant_retries:
                sleep(wait)
            continue
        return label + (f" (attempt {attempt})" if attempt > 1 else "")
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


# --- the runner ----------------------------------------------------------------------------------------


def run_hooks(
    hooks: Sequence[HookSpec],
    pending: PendingChange,
    *,
    env: Mapping[str, str],
    log: logging.Logger,
    http: RetryPolicy | None = None,
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
    policy: RetryPolicy = http if http is not None else HookHttpSettings()
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
                log.warning(redact(f"{name} failed after {elapsed:.1f} s: {exc.reason}", secrets))
                continue
            elapsed = time.monotonic() - started
            text = redact(message, secrets)
            results.append(HookResult(hook.index, key, desc, "ok", text, elapsed))
            log.info(redact(f"{name}: ok, {message}, {elapsed:.1f} s", secrets))
    finally:
        if session is not None:
            session.close()
    return HookReport(tuple(results))
