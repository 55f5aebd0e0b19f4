"""The feature-assets check and its optional builder: refresh-registry's second I/O edge (``job.py`` calls
it once per run with the served models).

For each served ``rich`` model the files it needs for the current patch are looked for (a stat each);
when ``[freshness] build_assets_command`` is set and the history holds ``announce_after`` matches of the
patch for the elo, the builder runs once per missing (elo, patch), as a change hook would: under a lock
(a second run does not start it twice), with a time limit, its outcome recorded in
``state/asset_builds.json`` *before* it starts ("started", written ahead) and after it ends. A build
that failed, timed out or never finished (the run was killed) is retried on the next run; one that
succeeded is not run again for that (elo, patch), even if it left files missing (the warning says so).
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from stratmancer_jobs.atomicio import atomic_write_json, make_dirs
from stratmancer_jobs.clock import iso
from stratmancer_jobs.freshness import AssetsState
from stratmancer_jobs.jobs.registry.inputs import RichModel, asset_files, build_text, fill
from stratmancer_jobs.layout import Layout
from stratmancer_jobs.logs import redact

OUTPUT_CHARS = 300  # the end of a failed build's output kept in its record


@dataclass(frozen=True)
class Builder:
    """How to build missing assets: the argv (empty: never), its time limit, the matches a patch needs
    first, what the history holds (``matches(elo, patch)``), and the environment and secrets to hide."""

    argv: tuple[str, ...]
    timeout_s: float
    announce_after: int
    matches: Callable[[str, str], int]
    env: Mapping[str, str]
    secrets: tuple[str, ...] = ()


def builds_file(layout: Layout) -> Path:
    return layout.state_dir / "asset_builds.json"


def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _missing(model: RichModel, patch: str) -> tuple[str, ...]:
    return tuple(name for name in asset_files(model.elo, patch) if not (model.assets_dir / name).is_file())


def _describe(record: Mapping[str, Any] | None) -> str | None:
    if record is None:
        return None
    status, at = record.get("status"), record.get("at")
    if status == "ok":
        return f"the build ran at {at} (exit 0) but left them missing"
    if status == "started":
        return f"a build started at {at} did not finish (retried next run)"
    if status == "waiting":
        return str(record.get("detail"))
    return f"the build at {at} failed: {record.get('detail')} (retried next run)"


def check_assets(
    models: list[RichModel],
    patch: str,
    layout: Layout,
    builder: Builder,
    now: datetime,
    log: logging.Logger,
) -> dict[str, AssetsState]:
    """Each rich model's assets for ``patch``, building the missing ones when configured."""
    path = builds_file(layout)
    records = _load(path)
    out: dict[str, AssetsState] = {}
    for model in models:
        key = f"{model.elo} {patch}"
        missing = _missing(model, patch)
        if missing and builder.argv and records.get(key, {}).get("status") != "ok":
            have = builder.matches(model.elo, patch)
            if have < builder.announce_after:
                records[key] = {
                    "status": "waiting",
                    "at": iso(now),
                    "detail": f"waiting for matches of {patch} ({have} of {builder.announce_after}) to build",
                }
            else:
                records[key] = _build(model, patch, layout, builder, records, path, log)
                missing = _missing(model, patch)
            atomic_write_json(path, records)
        build = _describe(records.get(key)) if missing else None
        out[model.elo] = AssetsState(patch, missing, build_text(model.elo, patch), build)
        if missing:
            log.warning(
                f"{model.elo}: rich model {model.card} has no feature assets for {patch} in "
                f"{model.assets_dir}: {', '.join(missing)} (build: {build_text(model.elo, patch)})"
            )
    return out


def _build(
    model: RichModel,
    patch: str,
    layout: Layout,
    builder: Builder,
    records: dict[str, dict[str, Any]],
    path: Path,
    log: logging.Logger,
) -> dict[str, Any]:
    """Run the builder for (elo, patch) under its lock; the record of how it ended."""
    from stratmancer_jobs.clock import utc_now

    key = f"{model.elo} {patch}"
    attempts = int(records.get(key, {}).get("attempts", 0) or 0) + 1
    make_dirs(layout.lock_dir)
    lock = FileLock(str(layout.lock_dir / "build_assets.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return {**records.get(key, {}), "status": "failed", "detail": "another build holds the lock"}
    try:
        records[key] = {"status": "started", "at": iso(utc_now()), "attempts": attempts}
        atomic_write_json(path, records)  # written ahead: a killed run leaves "started", retried
        argv = fill(builder.argv, model.elo, patch)
        env = {**builder.env, "STRATMANCER_ELO": model.elo, "STRATMANCER_PATCH": patch}
        shown = redact(" ".join(argv), builder.secrets)
        log.info(f"building feature assets for {model.elo} {patch}: {shown}")
        t0 = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                cwd=layout.root,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=builder.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            detail = f"timed out after {builder.timeout_s:g}s"
        except OSError as exc:
            detail = f"cannot run {argv[0]!r}: {exc.strerror or type(exc).__name__}"
        else:
            if done.returncode == 0:
                seconds = round(time.monotonic() - t0, 3)
                log.info(f"feature assets for {model.elo} {patch} built in {seconds}s")
                return {"status": "ok", "at": iso(utc_now()), "attempts": attempts, "duration_s": seconds}
            tail = (done.stderr or done.stdout or b"").decode("utf-8", "replace").strip()[-OUTPUT_CHARS:]
            detail = f"exit {done.returncode}" + (f": {tail.splitlines()[-1]}" if tail else "")
        detail = redact(detail, builder.secrets)
        log.warning(f"building feature assets for {model.elo} {patch} failed: {detail}")
        return {"status": "failed", "at": iso(utc_now()), "attempts": attempts, "detail": detail}
    finally:
        lock.release()

