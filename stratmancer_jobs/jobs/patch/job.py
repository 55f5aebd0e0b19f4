"""refresh-patch (job ``refresh_patch_meta``): the current patch from Data Dragon into ``config/meta.json``.

Source: ``{base}/api/versions.json`` (Riot's platform-status API has no version field). The highest valid
``MAJOR.MINOR.PATCH`` entry wins by integer comparison; the patch is ``MAJOR.MINOR``. Optionally
``{base}/realms/{region}.json`` field ``v`` is cross-checked: on disagreement versions.json is still used
(realms files are known to lag behind a release), a warning is logged and ``cross_check`` in meta.json
records both values and which one was used.

meta.json keys written: ``patch``, ``version``, ``last_updated``, ``source`` (``ddragon`` or ``fallback``),
``previous_patch`` (the patch the file held before this run, null if none), ``patch_changed``
(``previous_patch`` set and different), and ``cross_check`` when enabled. Other keys are kept.

When every attempt fails the run is an error (``errors.PartialFailure``, exit 1): a valid existing
meta.json is left byte-for-byte untouched; without one nothing is written (StratMancer then derives the
patch from its own match data, which beats a made-up one), unless ``patch.default_patch`` is configured:
that is written with ``"source": "fallback"``. A meta.json that is not valid is copied aside
(``meta.json.corrupt-<UTC time>``) before it is replaced, and a warning says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratmancer_jobs.atomicio import atomic_write_bytes, atomic_write_json
from stratmancer_jobs.clock import file_stamp
from stratmancer_jobs.errors import FetchError, JobError, PartialFailure, StorageError
from stratmancer_jobs.freshness import Observed, recent_patches
from stratmancer_jobs.http import Sleep, display_url, get_json
from stratmancer_jobs.jobs import BeforeCommit, Change, JobContext, JobResult, nothing_to_record
from stratmancer_jobs.jobs.patch.meta import (
    SOURCE_DDRAGON,
    SOURCE_FALLBACK,
    ExistingMeta,
    build_meta,
    choose_version,
    cross_check_record,
    interpret_meta,
    realm_version,
)
from stratmancer_jobs.patchver import normalize_patch
from stratmancer_jobs.smallfile import read_small_file

if TYPE_CHECKING:
    import requests

    from stratmancer_jobs.config import PatchSettings


@dataclass(frozen=True)
class PatchOutcome:
    """What a refresh did. ``error`` is set when Data Dragon could not be used (the run failed)."""

    patch: str
    version: str | None
    source: str  # "ddragon", "fallback" (written), or "kept" (existing file left untouched)
    previous_patch: str | None
    changed: bool
    error: str | None = None
    preserved_copy: Path | None = None
    cross_check: Mapping[str, Any] | None = None
    versions: tuple[str, ...] = ()  # Data Dragon's recent patches, newest first (freshness.recent_patches)


def _read_raw(path: Path) -> bytes | None:
    """meta.json's bytes (None: no file); a FIFO, a device, a directory or a file over 1 MiB there is a
    StorageError naming it, before anything blocks or fills the memory."""
    return read_small_file(path, what="patch metadata", error=StorageError)


def _preserve(path: Path, existing: ExistingMeta, now: datetime, log: logging.Logger) -> Path | None:
    """Copy an invalid meta.json aside before it is replaced, so that nothing is lost silently."""
    if existing.raw is None or existing.problem is None:
        return None
    copy = path.with_name(f"{path.name}.corrupt-{file_stamp(now)}")
    atomic_write_bytes(copy, existing.raw)
    log.warning("%s %s; a copy was kept at %s before replacing it", path, existing.problem, copy)
    return copy


def _fetch_latest(
    session: requests.Session, settings: PatchSettings, log: logging.Logger, sleep: Sleep
) -> tuple[str, str, tuple[str, ...]]:
    """The latest version, its patch, and the recent patches in Data Dragon's order (newest first)."""
    url = f"{settings.base_url}/api/versions.json"
    payload = get_json(session, url, settings, log, sleep=sleep)
    try:
        version, patch = choose_version(payload)
        return version, patch, recent_patches(payload if isinstance(payload, list) else ())
    except FetchError as exc:
        raise FetchError(f"unusable response from {display_url(url)}: {exc.message}") from None


def _cross_check(
    session: requests.Session,
    settings: PatchSettings,
    version: str,
    log: logging.Logger,
    sleep: Sleep,
) -> dict[str, Any]:
    url = f"{settings.base_url}/realms/{settings.region}.json"
    try:
        realm = realm_version(get_json(session, url, settings, log, sleep=sleep))
    except FetchError as exc:
        log.warning("realms cross-check skipped (%s): %s", settings.region, exc.message)
        return cross_check_record(settings.region, version, None, exc.message)
    record = cross_check_record(settings.region, version, realm, None)
    if not record["agrees"]:
        log.warning(
            "Data Dragon disagrees with itself: api/versions.json says %s, realms/%s.json says %s; using %s",
            version, settings.region, realm, version,
        )  # fmt: skip
    return record


def refresh_patch(
    meta_path: Path,
    session: requests.Session,
    settings: PatchSettings,
    now: datetime,
    log: logging.Logger,
    *,
    sleep: Sleep = time.sleep,
    before_commit: BeforeCommit = nothing_to_record,
) -> PatchOutcome:
    """Fetch the current patch and update ``meta_path``; see the module docstring for every case.

    A new patch (not the one meta.json held) is announced through ``before_commit`` before the write.

    Raises StorageError when meta.json cannot be read or written; network trouble is returned in
    ``PatchOutcome.error`` after the fallback rules have been applied.
    """
    # meta.json is read after the network calls, right before it is rewritten, so that a concurrent
    # edit of its other keys is overwritten only in a window of milliseconds, not of a slow fetch
    try:
        version, patch, versions = _fetch_latest(session, settings, log, sleep)
    except FetchError as exc:
        return _on_failure(meta_path, interpret_meta(_read_raw(meta_path)), settings, now, log, exc.message)
    check = _cross_check(session, settings, version, log, sleep) if settings.cross_check else None
    existing = interpret_meta(_read_raw(meta_path))
    preserved = _preserve(meta_path, existing, now, log)
    meta = build_meta(
        existing.data,
        patch=patch,
        version=version,
        source=SOURCE_DDRAGON,
        previous_patch=existing.patch,
        now=now,
        cross_check=check,
    )
    if patch != existing.patch:  # the app must hear of it: announced before it is written
        before_commit(Change((str(meta_path),), {"patch": patch, "previous_patch": existing.patch or ""}))
    atomic_write_json(meta_path, meta)
    if meta["patch_changed"]:
        log.info("Patch changed: %s -> %s", existing.patch, patch)
    elif existing.patch == patch and existing.data.get("version") not in (None, version):
        log.info("Version changed within patch %s: %s -> %s", patch, existing.data.get("version"), version)
    return PatchOutcome(
        patch=patch,
        version=version,
        source=SOURCE_DDRAGON,
        previous_patch=existing.patch,
        changed=bool(meta["patch_changed"]),
        preserved_copy=preserved,
        cross_check=check,
        versions=versions,
    )


def _on_failure(
    meta_path: Path,
    existing: ExistingMeta,
    settings: PatchSettings,
    now: datetime,
    log: logging.Logger,
    reason: str,
) -> PatchOutcome:
    if existing.patch is not None:
        error = f"{reason}; {meta_path.name} left unchanged (patch {existing.patch})"
        return PatchOutcome(
            patch=existing.patch,
            version=_str_or_none(existing.data.get("version")),
            source="kept",
            previous_patch=existing.patch,
            changed=False,
            error=error,
        )
    if settings.default_patch is None:
        raise JobError(
            f"{reason}; no valid patch in {meta_path.name} and no patch.default_patch configured: "
            "nothing written"
        )
    default = normalize_patch(settings.default_patch)
    if default is None:
        raise JobError(f"{reason}; and the configured default patch {settings.default_patch!r} is invalid")
    preserved = _preserve(meta_path, existing, now, log)
    meta = build_meta(
        existing.data,
        patch=default,
        version=None,
        source=SOURCE_FALLBACK,
        previous_patch=None,
        now=now,
        cross_check=None,
    )
    atomic_write_json(meta_path, meta)
    error = f"{reason}; no valid patch in {meta_path.name}, wrote fallback patch {default}"
    return PatchOutcome(
        patch=default,
        version=None,
        source=SOURCE_FALLBACK,
        previous_patch=None,
        changed=False,
        error=error,
        preserved_copy=preserved,
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def summarize(outcome: PatchOutcome) -> str:
    """The job's one-line summary."""
    if outcome.source == "kept":
        return f"Patch metadata NOT refreshed: Data Dragon failed, kept {outcome.patch}"
    if outcome.source == SOURCE_FALLBACK:
        return f"Patch metadata NOT refreshed: Data Dragon failed, wrote fallback {outcome.patch}"
    if outcome.changed:
        state = f"changed from {outcome.previous_patch}"
    elif outcome.previous_patch is None:
        state = "first valid patch"
    else:
        state = "unchanged"
    line = f"Patch metadata refreshed: {outcome.patch} ({outcome.version}), {state}"
    if outcome.cross_check is not None and outcome.cross_check.get("agrees") is False:
        line += f"; realms/{outcome.cross_check['region']}.json says {outcome.cross_check['realm_version']}"
    if outcome.preserved_copy is not None:
        line += f"; invalid meta.json copied to {outcome.preserved_copy.name}"
    return line


def run(ctx: JobContext) -> JobResult:
    """Runner entry point: one session, one refresh; PartialFailure (with summary, metrics) if it failed."""
    from stratmancer_jobs.http import build_session

    with build_session() as session:
        outcome = refresh_patch(
            ctx.settings.layout.meta_file,
            session,
            ctx.settings.patch,
            ctx.now,
            ctx.log,
            before_commit=ctx.before_commit,
        )
    metrics: dict[str, float | str] = {
        "patch": outcome.patch,
        "patch_changed": 1 if outcome.changed else 0,
        "fetch_ok": 0 if outcome.error else 1,
        "fallback": 1 if outcome.source == SOURCE_FALLBACK else 0,
    }
    if outcome.error is not None:  # the fallback rules were applied, but Data Dragon could not be used
        raise PartialFailure(outcome.error, summary=summarize(outcome), metrics=metrics)
    inputs = Observed(versions=outcome.versions) if outcome.versions else None
    return JobResult(summary=summarize(outcome), metrics=metrics, inputs=inputs)
