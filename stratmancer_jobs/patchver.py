"""Pure parsing of game versions (``16.23.1``) and patches (``16.23``), compared as integers."""

from __future__ import annotations

import re
from collections.abc import Iterable

_VERSION_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})\.(\d{1,6})(?:[.\-+][0-9A-Za-z.\-+]*)?\Z", re.ASCII)
_PATCH_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})\Z", re.ASCII)


def parse_version(text: object) -> tuple[int, int, int] | None:
    """``"16.23.1"`` -> ``(16, 23, 1)``; None for legacy ``lolpatch_*`` entries and anything malformed."""
    if not isinstance(text, str):
        return None
    match = _VERSION_RE.match(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def parse_patch(text: object) -> tuple[int, int] | None:
    """``"16.23"`` -> ``(16, 23)``; None when it is not ``MAJOR.MINOR`` with numeric parts."""
    if not isinstance(text, str):
        return None
    match = _PATCH_RE.match(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def latest_version(entries: Iterable[object]) -> tuple[str, tuple[int, int, int]] | None:
    """The highest valid version in ``entries`` (compared as integers, order ignored), or None.

    Returns the entry as published (``"16.23.1"``) with its parsed form; legacy ``lolpatch_*`` entries,
    non-strings and malformed strings are skipped. On a tie the first such entry wins.
    """
    best: tuple[str, tuple[int, int, int]] | None = None
    for entry in entries:
        parsed = parse_version(entry)
        if parsed is None or not isinstance(entry, str):
            continue
        if best is None or parsed > best[1]:
            best = (entry, parsed)
    return best


def patch_of(version: tuple[int, int, int]) -> str:
    """``(16, 9, 1)`` -> ``"16.9"``: the ``MAJOR.MINOR`` patch of a parsed version, without leading zeros."""
    return f"{version[0]}.{version[1]}"


def normalize_patch(text: object) -> str | None:
    """A valid patch string in canonical form (``"16.09"`` -> ``"16.9"``), or None when it is not one."""
    parsed = parse_patch(text)
    if parsed is None:
        return None
    return f"{parsed[0]}.{parsed[1]}"
