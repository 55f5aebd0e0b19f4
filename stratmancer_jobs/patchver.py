"""Pure parsing of game versions (``16.23.1``) and patches (``16.23``), compared as integers."""

from __future__ import annotations

import re

_VERSION_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})\.(\d{1,6})(?:[.\-+][0-9A-Za-z.\-+]*)?$")
_PATCH_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})$")


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
