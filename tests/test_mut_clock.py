"""clock.py's exact values: ISO output, parse limits, file stamps and the refusal of naive times."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest

from stratmancer_jobs.clock import MAX_YEAR, MIN_YEAR, file_stamp, iso, parse_iso, utc_now

PLUS2 = timezone(timedelta(hours=2))
NAIVE_MESSAGE = "naive datetime: every time the tool writes must carry its zone"


class NoOffset(tzinfo):
    """A tzinfo that is set but gives no offset, which Python treats as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None


@pytest.fixture
def far_local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone set to UTC+05:30, so a conversion to local time instead of UTC shows."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_conversions_ignore_the_local_zone(far_local_zone: None) -> None:
    """iso, file_stamp and parse_iso's year check use UTC, not the machine's zone."""
    assert datetime(2026, 1, 1, tzinfo=UTC).astimezone().utcoffset() == timedelta(hours=5, minutes=30)
    moment = datetime(2026, 11, 30, 1, 31, 53, tzinfo=PLUS2)
    assert iso(moment) == "2026-11-29T23:31:53+00:00"
    assert file_stamp(moment) == "20261129T233153Z"
    assert parse_iso("1970-01-01T00:30:00+01:00") is None
    assert parse_iso("9000-12-31T23:30:00+00:00") == datetime(9000, 12, 31, 23, 30, tzinfo=UTC)


def test_year_limits() -> None:
    """The accepted years are 1970 to 9000."""
    assert (MIN_YEAR, MAX_YEAR) == (1970, 9000)


def test_utc_now_is_aware_utc_and_current() -> None:
    """utc_now carries UTC and lies between two readings of the system clock."""
    before = datetime.now(UTC)
    now = utc_now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert before <= now <= after


def test_iso_converts_to_utc_and_drops_fractions() -> None:
    """iso writes UTC with an explicit offset and whole seconds."""
    assert iso(datetime(2026, 11, 30, 1, 31, 53, 987654, tzinfo=PLUS2)) == "2026-11-29T23:31:53+00:00"


@pytest.mark.parametrize("moment", [datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=NoOffset())])
def test_iso_refuses_naive(moment: datetime) -> None:
    """A naive time (no tzinfo, or one without an offset) is refused with the reason."""
    with pytest.raises(ValueError) as caught:
        iso(moment)
    assert str(caught.value) == NAIVE_MESSAGE


@pytest.mark.parametrize("moment", [datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=NoOffset())])
def test_file_stamp_refuses_naive(moment: datetime) -> None:
    """file_stamp refuses naive times with the same reason."""
    with pytest.raises(ValueError) as caught:
        file_stamp(moment)
    assert str(caught.value) == NAIVE_MESSAGE


def test_file_stamp_is_utc_without_colons() -> None:
    """file_stamp converts to UTC and formats as YYYYmmddTHHMMSSZ."""
    assert file_stamp(datetime(2026, 11, 30, 1, 31, 53, 5, tzinfo=PLUS2)) == "20261129T233153Z"


def test_parse_iso_keeps_the_offset() -> None:
    """A stored timestamp comes back with its own offset, not converted."""
    got = parse_iso("2026-11-30T01:31:53+02:00")
    assert got == datetime(2026, 11, 30, 1, 31, 53, tzinfo=PLUS2)
    assert got is not None and got.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    "text",
    [
        None,
        5,
        b"2026-01-01T00:00:00+00:00",
        "",
        "not a time",
        "2026-01-01T00:00:00",
        "1969-12-31T23:59:59+00:00",
        "9001-01-01T00:00:00+00:00",
        "9999-12-31T23:00:00-12:00",
    ],
)
def test_parse_iso_none_for_bad_input(text: object) -> None:
    """Non-strings, malformed, naive, out-of-range and overflowing timestamps read as None."""
    assert parse_iso(text) is None


@pytest.mark.parametrize(
    "text",
    ["1970-01-01T00:00:00+00:00", "9000-12-31T23:59:59+00:00", "1970-01-01T01:00:00+01:00"],
)
def test_parse_iso_accepts_the_limits(text: str) -> None:
    """The first and last accepted instants parse (years judged in UTC)."""
    assert parse_iso(text) == datetime.fromisoformat(text)


def test_parse_iso_judges_the_year_in_utc() -> None:
    """1970-01-01T00:30+01:00 is still 1969 in UTC, so it is refused."""
    assert parse_iso("1970-01-01T00:30:00+01:00") is None
    assert parse_iso("9000-12-31T23:30:00-01:00") is None
