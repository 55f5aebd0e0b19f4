"""The pure half of refresh-patch: read Data Dragon's answers, choose the version, build meta.json.

The highest valid ``MAJOR.MINOR.PATCH`` entry of ``api/versions.json`` wins by integer comparison; the
patch is ``MAJOR.MINOR``. ``realms/{region}.json`` field ``v`` is only cross-checked (realms files are
known to lag behind a release). No I/O here: bytes and payloads in, values out (``job.py`` fetches and
writes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stratmancer_jobs.clock import iso
from stratmancer_jobs.errors import FetchError
from stratmancer_jobs.patchver import latest_version, normalize_patch, parse_version, patch_of
from stratmancer_jobs.smallfile import loads_json

SOURCE_DDRAGON = "ddragon"
SOURCE_FALLBACK = "fallback"
USED_VERSIONS = "api/versions.json"


@dataclass(frozen=True)
class ExistingMeta:
    """What meta.json held before this run: its keys (if an object), its valid patch, or a problem."""

    data: Mapping[str, Any]
    patch: str | None
    raw: bytes | None = None
    problem: str | None = None


def interpret_meta(raw: bytes | None) -> ExistingMeta:
    """Classify meta.json's bytes (None = no file): usable keys, a valid patch, or what is wrong with it."""
    if raw is None:
        return ExistingMeta(data={}, patch=None)
    try:
        data = loads_json(raw)  # a bounded depth: the keys kept are written back by json.dumps
    except ValueError:
        return ExistingMeta(data={}, patch=None, raw=raw, problem="is not valid JSON")
    if not isinstance(data, dict):
        return ExistingMeta(data={}, patch=None, raw=raw, problem="is not a JSON object")
    patch = normalize_patch(data.get("patch"))
    if patch is None:
        return ExistingMeta(data=data, patch=None, raw=raw, problem="holds no valid patch")
    return ExistingMeta(data=data, patch=patch, raw=raw)


def choose_version(payload: object) -> tuple[str, str]:
    """``(version, patch)`` from a versions.json payload; FetchError when its shape or content is unusable."""
    if not isinstance(payload, list):
        raise FetchError(f"expected a JSON array of version strings, got a JSON {_json_type(payload)}")
    best = latest_version(payload)
    if best is None:
        raise FetchError(f"no valid MAJOR.MINOR.PATCH version among {len(payload)} entries")
    return best[0], patch_of(best[1])


def realm_version(payload: object) -> str:
    """The ``v`` field of a realms file; FetchError when missing or not a valid version."""
    if not isinstance(payload, dict):
        raise FetchError(f"expected a JSON object, got a JSON {_json_type(payload)}")
    value = payload.get("v")
    if parse_version(value) is None or not isinstance(value, str):
        raise FetchError("field 'v' is missing or not a valid version")
    return value


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def cross_check_record(region: str, version: str, realm: str | None, error: str | None) -> dict[str, Any]:
    """The ``cross_check`` entry of meta.json: the realm's version (or why unknown) and what was used."""
    record: dict[str, Any] = {"region": region, "used": USED_VERSIONS}
    if realm is None:
        record["realm_version"] = None
        record["agrees"] = None
        record["error"] = error
    else:
        record["realm_version"] = realm
        record["agrees"] = parse_version(realm) == parse_version(version)
    return record


def build_meta(
    existing: Mapping[str, Any],
    *,
    patch: str,
    version: str | None,
    source: str,
    previous_patch: str | None,
    now: datetime,
    cross_check: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The new meta.json: ``existing`` keys kept, ours replaced. Refuses (ValueError) an invalid patch."""
    if normalize_patch(patch) != patch:
        raise ValueError(f"refusing to write invalid patch {patch!r}")
    meta = dict(existing)
    meta.update(
        patch=patch,
        version=version,
        last_updated=iso(now),
        source=source,
        previous_patch=previous_patch,
        patch_changed=previous_patch is not None and previous_patch != patch,
    )
    if cross_check is None:
        meta.pop("cross_check", None)
    else:
        meta["cross_check"] = dict(cross_check)
    return meta
