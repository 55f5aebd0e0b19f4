"""The one place this tool speaks HTTP: a session, the one retry loop (``request``, which URL hooks
use too), and a bounded, retrying JSON GET on it.

Policy (numbers come from the settings, see ``config.PatchSettings``):

* connect and read timeouts on every request (the read timeout bounds each wait for data);
* retried, up to ``max_attempts`` attempts in all: connection errors, timeouts, a body cut short, HTTP 5xx
  and HTTP 429. Nothing else: other 4xx, TLS certificate errors, oversized or non-JSON bodies fail at once;
* waits between attempts: ``Retry-After`` (seconds or an HTTP date) when the server sends one, capped at
  ``max_retry_after_s`` so that a daily job cannot hang for hours; otherwise exponential backoff
  ``backoff_base_s * 2**(n-1)`` capped at ``max_backoff_s``, with "equal jitter" (half fixed, half random)
  so that many clients do not retry in lockstep; ``instant_retries`` skips the waits (tests);
* the body is streamed and refused once it passes ``max_bytes`` (decoded), whatever Content-Length says.

Messages name the URL without its user-info or query string and never include request headers, so an
API key can never leak through them. Errors leave as ``FetchError`` (chained exceptions are dropped:
requests' own messages repeat the full URL).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests

from stratmancer_jobs import __version__
from stratmancer_jobs.errors import FetchError

USER_AGENT = f"stratmancer-jobs/{__version__}"
_CHUNK = 64 * 1024
_MAX_CAUSE_DEPTH = 8
MAX_REDIRECTS = 5

Sleep = Callable[[float], None]
T = TypeVar("T")


class RetrySettings(Protocol):
    """The settings ``request`` needs; ``config.PatchSettings`` and ``HookHttpSettings`` provide them."""

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


class HttpSettings(RetrySettings, Protocol):
    """The settings ``get_json`` needs; ``config.PatchSettings`` provides them."""

    @property
    def read_timeout_s(self) -> float: ...
    @property
    def max_bytes(self) -> int: ...


class _Retryable(Exception):
    """One attempt failed in a way worth retrying; ``retry_after`` is the server's wish, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def build_session() -> requests.Session:
    """A session naming this tool and its version; no credentials are ever attached to it."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    session.max_redirects = MAX_REDIRECTS
    return session


def display_url(url: str) -> str:
    """The URL as safe to print: without ``user:password@``, query string or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def backoff_delay(attempt: int, base_s: float, cap_s: float, rand: float) -> float:
    """Wait after failed attempt ``attempt`` (1-based): equal jitter on ``min(cap, base * 2**(n-1))``.

    ``rand`` is a number in [0, 1); the result lies in [d/2, d].
    """
    delay = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    return delay / 2.0 + rand * delay / 2.0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date); None when unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _os_reason(exc: BaseException) -> str | None:
    """The innermost operating-system reason (e.g. "Connection refused") behind a requests error."""
    seen: list[BaseException] = [exc]
    for _ in range(_MAX_CAUSE_DEPTH * 4):
        if not seen:
            break
        current = seen.pop(0)
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        for nxt in (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args):
            if isinstance(nxt, BaseException) and nxt is not current:
                seen.append(nxt)
    return None


def _describe(exc: requests.RequestException, timeout: tuple[float, float], read_phrase: str) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return f"connect timeout ({timeout[0]:g} s)"
    if isinstance(exc, requests.ReadTimeout) or "timed out" in str(exc).lower():
        return f"read timeout ({read_phrase} {timeout[1]:g} s)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection closed before the whole body arrived"
    reason = _os_reason(exc)
    return f"connection failed ({reason})" if reason else f"connection failed ({type(exc).__name__})"


def _printable(text: str | None, limit: int = 60) -> str:
    """A server-chosen reason phrase, made safe for a log line."""
    if not text:
        return ""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def _read_body(response: requests.Response, settings: HttpSettings) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > settings.max_bytes:
        raise FetchError(f"response too large: {int(declared)} bytes declared (limit {settings.max_bytes})")
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_content(chunk_size=_CHUNK):
        total += len(chunk)
        if total > settings.max_bytes:
            raise FetchError(f"response too large: more than {settings.max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _attempt(
    session: requests.Session,
    method: str,
    url: str,
    answer: Callable[[requests.Response, str], T],
    *,
    headers: Mapping[str, str] | None,
    timeout: tuple[float, float],
    follow_redirects: bool,
    read_phrase: str,
) -> T:
    """One attempt: ``answer``'s value, ``_Retryable`` for a transient fault, FetchError else."""
    try:
        response = session.request(
            method,
            url,
            headers=dict(headers) if headers is not None else None,
            timeout=timeout,
            stream=True,
            allow_redirects=follow_redirects,
        )
    except requests.exceptions.SSLError:
        raise FetchError("TLS error (certificate or handshake); not retried") from None
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise _Retryable(_describe(exc, timeout, read_phrase)) from None
    except requests.RequestException as exc:
        raise FetchError(f"request failed ({type(exc).__name__}); not retried") from None
    with response:
        status = response.status_code
        label = f"HTTP {status} {_printable(response.reason)}".rstrip()
        if status == 429 or status >= 500:
            wait = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
            raise _Retryable(label, retry_after=wait)
        try:
            return answer(response, label)
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.ConnectionError,
            requests.Timeout,
        ) as exc:
            raise _Retryable(_describe(exc, timeout, read_phrase)) from None
        except requests.RequestException as exc:
            raise FetchError(f"unreadable body ({type(exc).__name__}); not retried") from None


def request(
    session: requests.Session,
    method: str,
    url: str,
    settings: RetrySettings,
    answer: Callable[[requests.Response, str], T],
    *,
    timeout: tuple[float, float],
    log: logging.Logger,
    name: str,
    scrub: Callable[[str], str] = str,
    headers: Mapping[str, str] | None = None,
    follow_redirects: bool = True,
    read_phrase: str = "no data for",
    sleep: Sleep = time.sleep,
    rng: Callable[[], float] = random.random,
) -> tuple[T, int]:
    """Send one request, retrying transient faults; ``answer``'s value and the attempt that succeeded.

    ``answer(response, label)`` sees every response that is not retried (not 429, not 5xx) and returns
    the value or raises FetchError; read errors inside it are retried like connection errors. Each retry
    is logged as ``name`` plus the reason, passed through ``scrub``; ``sleep`` receives every wait unless
    ``instant_retries`` is set. FetchError carries the reason alone: callers add the URL or hook.
    """
    attempts = max(1, settings.max_attempts)
    for attempt in range(1, attempts + 1):
        try:
            value = _attempt(
                session,
                method,
                url,
                answer,
                headers=headers,
                timeout=timeout,
                follow_redirects=follow_redirects,
                read_phrase=read_phrase,
            )
        except _Retryable as exc:
            if attempt >= attempts:
                raise FetchError(f"{exc.reason} (gave up after {attempts} attempts)") from None
            if exc.retry_after is not None:
                wait = min(exc.retry_after, settings.max_retry_after_s)
                why = f"Retry-After {exc.retry_after:g} s" + (
                    f", capped at {settings.max_retry_after_s:g} s" if wait < exc.retry_after else ""
                )
            else:
                wait = backoff_delay(attempt, settings.backoff_base_s, settings.max_backoff_s, rng())
                why = "backoff"
            log.warning(
                scrub(
                    f"{name} failed: {exc.reason} (attempt {attempt} of {attempts}); "
                    f"retrying in {wait:.1f} s ({why})"
                )
            )
            if wait > 0 and not settings.instant_retries:
                sleep(wait)
            continue
        return value, attempt
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def parse_json_body(body: bytes, shown_url: str) -> Any:
    """Decode a JSON body; FetchError naming the URL when it is not JSON."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise FetchError(
            f"{shown_url} did not return JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except UnicodeDecodeError:
        raise FetchError(f"{shown_url} did not return JSON (not UTF-8 text)") from None
    except RecursionError:
        raise FetchError(f"{shown_url} did not return usable JSON (nested too deeply)") from None
    except ValueError:  # an int of thousands of digits (Python's int-size limit)
        raise FetchError(f"{shown_url} did not return usable JSON (a number too large)") from None


def get_json(
    session: requests.Session,
    url: str,
    settings: HttpSettings,
    log: logging.Logger,
    *,
    sleep: Sleep = time.sleep,
    rng: Callable[[], float] = random.random,
) -> Any:
    """GET ``url`` and decode its JSON body, retrying transient faults; FetchError naming the URL otherwise.

    ``sleep`` receives every wait (in seconds) between attempts unless ``instant_retries`` is set.
    """
    shown = display_url(url)

    def body_of(response: requests.Response, label: str) -> bytes:
        if not 200 <= response.status_code < 300:
            raise FetchError(f"{label}; not retried")
        return _read_body(response, settings)

    try:
        body, attempt = request(
            session,
            "GET",
            url,
            settings,
            body_of,
            timeout=(settings.connect_timeout_s, settings.read_timeout_s),
            log=log,
            name=f"GET {shown}",
            sleep=sleep,
            rng=rng,
        )
    except FetchError as exc:
        raise FetchError(f"cannot fetch {shown}: {exc.message}") from None
    log.debug("GET %s: %d bytes (attempt %d)", shown, len(body), attempt)
    return parse_json_body(body, shown)
