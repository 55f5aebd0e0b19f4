"""patchver.py's exact values: version and patch parsing limits, the latest version, canonical patches."""

from __future__ import annotations

import pytest

from stratmancer_jobs.patchver import latest_version, normalize_patch, parse_patch, parse_version, patch_of


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("16.23.1", (16, 23, 1)),
        ("9999.9999.999999", (9999, 9999, 999999)),
        ("0.0.0", (0, 0, 0)),
        ("16.09.01", (16, 9, 1)),
        ("16.23.1-hotfix", (16, 23, 1)),
        ("16.23.1.2", (16, 23, 1)),
        ("16.23.1+build.7", (16, 23, 1)),
        ("16.23.1-", (16, 23, 1)),
    ],
)
def test_parse_version_valid(text: str, parsed: tuple[int, int, int]) -> None:
    """MAJOR.MINOR.PATCH with 1-4, 1-4 and 1-6 digits, optionally followed by a suffix."""
    assert parse_version(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        None,
        16,
        b"16.23.1",
        "",
        "lolpatch_7.20",
        "16.23",
        "16.23.",
        "a.23.1",
        "16.23.x",
        "12345.1.1",
        "1.12345.1",
        "1.1.1234567",
        " 16.23.1",
        "16.23.1\n",
        "16.23.1_x",
        "16.23.1-é",
        "١٦.23.1",
    ],
)
def test_parse_version_invalid(text: object) -> None:
    """Non-strings, legacy names, too many digits, stray whitespace and non-ASCII digits give None."""
    assert parse_version(text) is None


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("16.23", (16, 23)), ("16.09", (16, 9)), ("9999.9999", (9999, 9999)), ("0.0", (0, 0))],
)
def test_parse_patch_valid(text: str, parsed: tuple[int, int]) -> None:
    """MAJOR.MINOR with 1-4 digits each parses to integers."""
    assert parse_patch(text) == parsed


@pytest.mark.parametrize(
    "text",
    [None, 16.23, "", "16", "16.23.1", "12345.1", "1.12345", "16.x", " 16.23", "16.23\n", "١٦.23"],
)
def test_parse_patch_invalid(text: object) -> None:
    """Anything but MAJOR.MINOR with ASCII digits gives None."""
    assert parse_patch(text) is None


def test_latest_version_compares_as_integers() -> None:
    """16.10.0 beats 16.9.5 (integers, not strings) and order does not matter."""
    entries = ["16.9.5", "16.10.0", "lolpatch_7.20", 17, "16.2.0"]
    assert latest_version(entries) == ("16.10.0", (16, 10, 0))
    assert latest_version(list(reversed(entries))) == ("16.10.0", (16, 10, 0))


def test_latest_version_first_of_a_tie() -> None:
    """On a tie the first entry as published wins, also when a later one is equal."""
    assert latest_version(["16.023.1", "16.23.1", "16.23.01"]) == ("16.023.1", (16, 23, 1))


def test_latest_version_skips_everything_invalid() -> None:
    """No valid entry, or no entries at all, gives None."""
    assert latest_version(["lolpatch_7.20", None, 3, "x"]) is None
    assert latest_version([]) is None


def test_latest_version_last_is_highest() -> None:
    """The highest entry is found when it comes last after lower ones."""
    assert latest_version(["1.0.0", "1.0.1", "1.1.0", "2.0.0"]) == ("2.0.0", (2, 0, 0))


def test_patch_of() -> None:
    """The patch of a parsed version is MAJOR.MINOR without leading zeros."""
    assert patch_of((16, 9, 1)) == "16.9"
    assert patch_of((0, 10, 7)) == "0.10"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("16.09", "16.9"), ("16.23", "16.23"), ("016.0", "16.0"), ("16.23.1", None), (None, None), ("x", None)],
)
def test_normalize_patch(text: object, canonical: str | None) -> None:
    """A patch is written canonically; anything else is None."""
    assert normalize_patch(text) == canonical
