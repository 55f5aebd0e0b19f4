"""The one clock helper: every timestamp the tool writes is ISO 8601 in UTC with an explicit offset."""

from __future__ import annotations

from datetime import UTC, datetime

# far outside any real run, and too close to datetime's limits for schedule arithmetic
MIN_YEAR, MAX_YEAR = 1970, 9000


def utc_now() -> datetime:
    """The clock every command uses (injected as ``clock``/``now`` in tests)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with an explicit offset (``2026-11-29T23:31:53+00:00``); naive times are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: every time the tool writes must carry its zone")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_iso(text: object) -> datetime | None:
    """A stored timestamp with its offset; None when absent, malformed or naive (readers keep working)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.utcoffset() is None:
            return None
        in_utc = moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: e.g. 9999-12-31T23:00-12:00 is past year 9999
        return None
    return moment if MIN_YEAR <= in_utc.year <= MAX_YEAR else None


def file_stamp(moment: datetime) -> str:
    """A UTC stamp for file names such as ``.corrupt-`` copies (``20261129T233153Z``): sortable, no colons."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: every time the tool writes must carry its zone")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
