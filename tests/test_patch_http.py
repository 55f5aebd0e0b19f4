"""The HTTP helper against a real server on 127.0.0.1: retries, waits, timeouts, size cap, bad bodies."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from stratmancer_jobs import __version__
from stratmancer_jobs.config import PatchSettings
from stratmancer_jobs.errors import FetchError
from stratmancer_jobs.http import (
    backoff_delay,
    display_url,
    get_json,
    parse_json_body,
    parse_retry_after,
)
from tests.ddragon_server import DDragonServer, Reply, Waits, closed_port_url, json_reply

PATH = "/api/versions.json"
LOG = logging.getLogger("test.http")


def fast(**overrides: object) -> PatchSettings:
    """Settings with short timeouts and small numbers so that every test takes well under a second."""
    base = PatchSettings(
        connect_timeout_s=1.0,
        read_timeout_s=0.3,
        max_attempts=3,
        backoff_base_s=1.0,
        max_backoff_s=8.0,
        max_retry_after_s=60.0,
        max_bytes=10_000,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_user_agent_names_tool_and_version(server: DDragonServer, session: requests.Session) -> None:
    """Every request carries a User-Agent naming the tool and its version."""
    server.script(PATH, json_reply(["16.23.1"]))
    assert get_json(session, server.base_url + PATH, fast(), LOG) == ["16.23.1"]
    assert server.requests[0].headers["User-Agent"] == f"stratmancer-jobs/{__version__}"


def test_500_then_200_is_retried_with_backoff(server: DDragonServer, session: requests.Session) -> None:
    """A 500 is retried after a jittered backoff wait and the following 200 is used."""
    server.script(PATH, Reply(status=500, body=b"oops"), json_reply(["16.23.1"]))
    waits = Waits()
    data = get_json(session, server.base_url + PATH, fast(), LOG, sleep=waits, rng=lambda: 0.5)
    assert data == ["16.23.1"]
    assert server.hits(PATH) == 2
    assert waits.waits == [0.75]


def test_backoff_grows_and_gives_up_after_max_attempts(
    server: DDragonServer, session: requests.Session
) -> None:
    """A server that always answers 503 is tried max_attempts times with doubling waits, then FetchError."""
    server.script(PATH, Reply(status=503))
    waits = Waits()
    with pytest.raises(FetchError) as info:
        get_json(session, server.base_url + PATH, fast(max_attempts=4), LOG, sleep=waits, rng=lambda: 0.999)
    assert server.hits(PATH) == 4
    assert [round(w) for w in waits.waits] == [1, 2, 4]
    assert "HTTP 503" in str(info.value)
    assert "gave up after 4 attempts" in str(info.value)
    assert server.base_url + PATH in str(info.value)


def test_429_retry_after_seconds_is_honoured(server: DDragonServer, session: requests.Session) -> None:
    """A 429 with ``Retry-After: 7`` makes the client wait exactly 7 s before retrying."""
    server.script(PATH, Reply(status=429, headers={"Retry-After": "7"}), json_reply(["16.23.1"]))
    waits = Waits()
    assert get_json(session, server.base_url + PATH, fast(), LOG, sleep=waits) == ["16.23.1"]
    assert waits.waits == [7.0]


def test_429_retry_after_http_date_is_honoured(server: DDragonServer, session: requests.Session) -> None:
    """A ``Retry-After`` HTTP date about 30 s ahead becomes a wait of about 30 s."""
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    server.script(PATH, Reply(status=429, headers={"Retry-After": when}), json_reply(["16.23.1"]))
    waits = Waits()
    get_json(session, server.base_url + PATH, fast(), LOG, sleep=waits)
    assert len(waits.waits) == 1
    assert 25 <= waits.waits[0] <= 31


def test_retry_after_is_capped(server: DDragonServer, session: requests.Session) -> None:
    """A ``Retry-After`` of a day is capped at max_retry_after_s so that the job cannot hang for hours."""
    server.script(PATH, Reply(status=503, headers={"Retry-After": "86400"}), json_reply(["16.23.1"]))
    waits = Waits()
    get_json(session, server.base_url + PATH, fast(max_retry_after_s=45.0), LOG, sleep=waits)
    assert waits.waits == [45.0]


def test_other_4xx_is_not_retried(server: DDragonServer, session: requests.Session) -> None:
    """A 404 fails at once, naming the status and the URL."""
    server.script(PATH, Reply(status=404))
    waits = Waits()
    with pytest.raises(FetchError, match="HTTP 404") as info:
        get_json(session, server.base_url + PATH, fast(), LOG, sleep=waits)
    assert server.hits(PATH) == 1
    assert waits.waits == []
    assert "not retried" in str(info.value)


def test_instant_retries_skip_the_waits(server: DDragonServer, session: requests.Session) -> None:
    """With instant_retries the retry still happens but the sleep function is never called."""
    server.script(PATH, Reply(status=429, headers={"Retry-After": "3600"}), json_reply(["16.23.1"]))
    waits = Waits()
    assert get_json(session, server.base_url + PATH, fast(instant_retries=True), LOG, sleep=waits)
    assert waits.waits == []
    assert server.hits(PATH) == 2


def test_stall_past_read_timeout(server: DDragonServer, session: requests.Session) -> None:
    """A server that stalls past the read timeout is retried and then reported as a read timeout.

    The stall (30 s) is far beyond the read timeout (0.3 s): had the timeout not cut each attempt, the
    server's ``[]`` would have come back as the result, whatever the machine's load."""
    server.script(PATH, Reply(delay_s=30.0, body=b"[]"))
    waits = Waits()
    with pytest.raises(FetchError, match=r"read timeout \(no data for 0\.3 s\)") as info:
        get_json(session, server.base_url + PATH, fast(max_attempts=2), LOG, sleep=waits)
    assert server.hits(PATH) == 2
    assert len(waits.waits) == 1
    assert server.base_url + PATH in str(info.value)


def test_stall_in_the_body_is_retried(server: DDragonServer, session: requests.Session) -> None:
    """A body that stalls after the headers times out and the retry succeeds."""
    server.script(PATH, Reply(stall_after_headers_s=3.0, body=b'["16.1.1"]'), json_reply(["16.23.1"]))
    assert get_json(session, server.base_url + PATH, fast(), LOG, sleep=Waits()) == ["16.23.1"]
    assert server.hits(PATH) == 2


def test_connection_refused(session: requests.Session) -> None:
    """A closed port is retried, then reported as a refused connection naming the URL."""
    url = closed_port_url() + PATH
    waits = Waits()
    with pytest.raises(FetchError, match="Connection refused") as info:
        get_json(session, url, fast(), LOG, sleep=waits)
    assert len(waits.waits) == 2
    assert url in str(info.value)


def test_dropped_connection_is_retried(server: DDragonServer, session: requests.Session) -> None:
    """A connection closed without an answer counts as a connection error and is retried."""
    server.script(PATH, Reply(drop=True), json_reply(["16.23.1"]))
    assert get_json(session, server.base_url + PATH, fast(), LOG, sleep=Waits()) == ["16.23.1"]
    assert server.hits(PATH) == 2


def test_truncated_body_is_retried(server: DDragonServer, session: requests.Session) -> None:
    """A body shorter than its Content-Length is retried rather than parsed."""
    server.script(PATH, Reply(body=b'["16.23.1", "16.22.1"]', truncate_to=5), json_reply(["16.23.1"]))
    assert get_json(session, server.base_url + PATH, fast(), LOG, sleep=Waits()) == ["16.23.1"]
    assert server.hits(PATH) == 2


def test_oversized_body_is_refused_by_content_length(
    server: DDragonServer, session: requests.Session
) -> None:
    """A response declaring more than max_bytes is refused without retrying."""
    server.script(PATH, Reply(body=b"[" + b'"1.1.1",' * 2000 + b'"1.1.1"]'))
    with pytest.raises(FetchError, match="too large"):
        get_json(session, server.base_url + PATH, fast(max_bytes=1000), LOG, sleep=Waits())
    assert server.hits(PATH) == 1


def test_oversized_body_without_length_is_refused_while_streaming(
    server: DDragonServer, session: requests.Session
) -> None:
    """A response with no Content-Length is cut off once it passes max_bytes."""
    server.script(PATH, Reply(body=b"[" + b'"1.1.1",' * 50_000 + b'"1.1.1"]', length=False))
    with pytest.raises(FetchError, match="more than 1000 bytes"):
        get_json(session, server.base_url + PATH, fast(max_bytes=1000), LOG, sleep=Waits())


def test_non_json_body_names_the_url(server: DDragonServer, session: requests.Session) -> None:
    """An HTML page instead of JSON is a FetchError naming the URL, not retried."""
    server.script(PATH, Reply(body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(FetchError, match="did not return JSON") as info:
        get_json(session, server.base_url + PATH, fast(), LOG, sleep=Waits())
    assert server.base_url + PATH in str(info.value)
    assert server.hits(PATH) == 1


def test_parse_json_body_rejects_binary_and_deep_nesting() -> None:
    """Non-UTF-8 bytes and absurdly nested arrays are FetchErrors, not crashes."""
    with pytest.raises(FetchError, match=r"not UTF-8|did not return JSON"):
        parse_json_body(b"\xff\xfe\x00garbage", "http://x/y")
    with pytest.raises(FetchError):
        parse_json_body(b"[" * 200_000 + b"]" * 200_000, "http://x/y")


def test_display_url_hides_credentials_and_query() -> None:
    """User-info, query strings and fragments never reach a message."""
    shown = display_url("https://user:s3cret@mirror.example:8443/api/versions.json?api_key=RGAPI-x#f")
    assert shown == "https://mirror.example:8443/api/versions.json"


def test_parse_retry_after_forms() -> None:
    """Retry-After accepts delta-seconds and HTTP dates; junk and the past give None or zero."""
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("Sat, 28 Nov 2026 12:01:30 GMT", now) == 90.0
    assert parse_retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


@given(
    attempt=st.integers(min_value=1, max_value=60),
    base=st.floats(min_value=0, max_value=10),
    cap=st.floats(min_value=0, max_value=100),
    rand=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_delay_is_bounded(attempt: int, base: float, cap: float, rand: float) -> None:
    """Backoff waits never exceed the cap and never drop below half the un-jittered delay."""
    delay = min(cap, base * 2.0 ** (attempt - 1))
    wait = backoff_delay(attempt, base, cap, rand)
    assert delay / 2 - 1e-9 <= wait <= delay + 1e-9
    assert wait <= cap + 1e-9
