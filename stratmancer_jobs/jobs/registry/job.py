"""``refresh-registry``: re-read model cards, validate them, pick the active model per elo, snapshot.

I/O lives here (listing directories, reading cards, the previous snapshot, writing the new one);
validation, choice and diffing are pure functions in ``cards.py``; ``served.py`` judges what the running
app would serve (its file-name rule) and whether it can (artifacts checked, never unpickled). When the
served model differs from the active card, or an elo has no servable model, the run succeeds with a
warning. The output counts as changed (for the change hooks) when the active or served set changed, or
a served model or calibrator file was replaced under the same name (its size, mtime, inode or ctime).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from stratmancer_jobs.atomicio import atomic_write_json
from stratmancer_jobs.clock import iso
from stratmancer_jobs.errors import InputError
from stratmancer_jobs.freshness import Observed
from stratmancer_jobs.jobs import BeforeCommit, Change, JobContext, JobResult, nothing_to_record
from stratmancer_jobs.jobs.registry.cards import (
    MAX_CARD_BYTES,
    Changes,
    InvalidCard,
    ValidCard,
    diff_models,
    pick_active,
    validate_card,
)
from stratmancer_jobs.jobs.registry.served import (
    ServedReport,
    artifact_problem,
    card_artifact_problem,
    served_report,
)
from stratmancer_jobs.layout import Layout, contained

SNAPSHOT_SCHEMA = 1
LOGGED_PROBLEMS = 5  # invalid or unservable cards logged one by one per run; the rest are counted


@dataclass(frozen=True)
class RegistryOutcome:
    valid: list[ValidCard]
    invalid: list[InvalidCard]
    active: dict[str, ValidCard | None]
    changes: Changes
    served: ServedReport
    unservable: list[InvalidCard]
    changed: bool  # the active or served set differs from the previous snapshot's

    @property
    def warning(self) -> str | None:
        """One line: why the app does not serve what the registry calls active (None when it does)."""
        return "; ".join(self.served.warnings) if self.served.warnings else None

    def summary(self) -> str:
        c = self.changes
        active = " ".join(
            f"{elo}={card.card.get('model_type', '?')}@{card.timestamp:%Y-%m-%d}" if card else f"{elo}=none"
            for elo, card in self.active.items()
        )
        invalid = f", {len(self.invalid)} invalid" if self.invalid else ""
        unservable = f", {len(self.unservable)} unservable" if self.unservable else ""
        line = (
            f"Model registry refreshed: {len(self.valid)} models (+{len(c.added)} new, -{len(c.removed)} "
            f"removed, {len(c.changed)} changed){invalid}{unservable}, active: {active}"
        )
        return line + (f"; WARNING: {self.warning}" if self.warning else "")


def _inside(path: Path, root: Path) -> bool:
    """``layout.contained`` for an entry of its own directory (a symlinked ml_pipeline/ is followed)."""
    return contained(path, path.parent, root)


def _log_some(log: logging.Logger, lines: list[str], *, listed: bool) -> None:
    """The first LOGGED_PROBLEMS lines as warnings, then one line counting the rest: thousands of bad
    cards must not write thousands of lines every few minutes (``listed``: the registry names them all)."""
    for line in lines[:LOGGED_PROBLEMS]:
        log.warning(line)
    if len(lines) > LOGGED_PROBLEMS:
        where = "; model_registry.json lists every one with its reason" if listed else ""
        log.warning(f"... and {len(lines) - LOGGED_PROBLEMS} more like these, not logged one by one{where}")


def _artifacts(layout: Layout) -> frozenset[str]:
    """Names of regular files in trained/ that stay inside the root (symlinks pointing out are ignored)."""
    trained = layout.trained_dir
    if not trained.is_dir():
        raise InputError(f"model artifact directory {trained} does not exist")
    return frozenset(p.name for p in trained.iterdir() if p.is_file() and _inside(p, layout.root))


def _trained_entries(layout: Layout) -> list[str]:
    """Names of every entry of trained/ (the app's glob also matches directories and dangling links)."""
    try:
        return sorted(p.name for p in layout.trained_dir.iterdir())
    except OSError:
        return []


def _problems(layout: Layout, names: list[str]) -> dict[str, str]:
    """{name: why it cannot be served} for the artifacts the app may load (pickles are never loaded)."""
    problems: dict[str, str] = {}
    for name in names:
        if name.startswith(("draft_", "calibrator_")) or name.endswith(".pkl"):
            path = layout.trained_dir / name
            problem = (
                "symlink pointing outside the deployment root"
                if not _inside(path, layout.root)
                else artifact_problem(path)
            )
            if problem is not None:
                problems[name] = problem
    return problems


def _file_identities(layout: Layout, served: dict[str, dict[str, Any]]) -> dict[str, list[int] | None]:
    """{name: [size, mtime_ns, inode, ctime_ns]} of every served model and calibrator file (None when
    it cannot be stat'ed): a retrain that overwrites ``draft_*.pkl`` under the same name, in place or by
    rename, changes it. Cheap: one stat per file, nothing read, nothing unpickled."""
    names = sorted(
        {
            name
            for entry in served.values()
            for name in (entry.get("model_file"), entry.get("calibrator_file"))
            if isinstance(name, str) and name
        }
    )
    identities: dict[str, list[int] | None] = {}
    for name in names:
        try:
            st = os.stat(layout.trained_dir / name)
        except (OSError, ValueError):
            identities[name] = None
        else:
            identities[name] = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
    return identities


def _signature(snapshot: Any) -> Any:
    """What the app's state depends on: the active cards (file, sha256), the served files, and those
    files' identity (``served_files``: size, mtime, inode, ctime).

    ``generated_at`` and the change lists are left out, so an unchanged registry is not a change.
    """
    if not isinstance(snapshot, dict):
        return None
    active = snapshot.get("active")
    served = snapshot.get("served")
    active_sig = (
        {
            elo: [card.get("file"), card.get("sha256")] if isinstance(card, dict) else None
            for elo, card in active.items()
        }
        if isinstance(active, dict)
        else None
    )
    served_sig = (
        {
            elo: [entry.get(k) for k in ("model_file", "calibrator_file", "servable")]
            if isinstance(entry, dict)
            else None
            for elo, entry in served.items()
        }
        if isinstance(served, dict)
        else None
    )
    files = snapshot.get("served_files")
    return [active_sig, served_sig, files if isinstance(files, dict) else None]


def _read_snapshot(path: Path) -> bytes:
    """The last registry's bytes, read only from a regular file and without blocking (a FIFO planted
    there must not hang every run, nor a link to /dev/zero fill the memory); OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return handle.read()


def _previous_signature(path: Path) -> Any:
    try:
        return _signature(json.loads(_read_snapshot(path)))
    except (OSError, ValueError, RecursionError):
        return None


def _read_card(path: Path, root: Path) -> bytes | str:
    """The card's bytes, or a reason it cannot be read."""
    if not _inside(path, root):
        return "symlink pointing outside the deployment root"
    if not path.is_file():
        return "not a regular file"
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    return raw


def _previous_models(path: Path, log: logging.Logger) -> dict[str, str]:
    """{file: sha256} of the last snapshot; an unreadable snapshot counts as empty (with a warning)."""
    try:
        data = json.loads(_read_snapshot(path))
        return {
            str(m["file"]): str(m["sha256"])
            for m in data["models"]
            if isinstance(m, dict) and "file" in m and "sha256" in m
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning(f"previous registry {path} unreadable ({type(exc).__name__}); reporting all as new")
        return {}


def refresh_registry(
    layout: Layout,
    now: datetime,
    log: logging.Logger,
    *,
    require_calibrator: bool = True,
    before_commit: BeforeCommit = nothing_to_record,
) -> RegistryOutcome:
    """Validate every card, judge what the app serves, write the snapshot atomically, and return it.

    A snapshot that changes what the app serves is announced through ``before_commit`` first."""
    cards_dir = layout.modelcards_dir
    if not cards_dir.is_dir():
        raise InputError(f"model card directory {cards_dir} does not exist")
    artifacts = _artifacts(layout)
    valid: list[ValidCard] = []
    invalid: list[InvalidCard] = []
    for path in sorted(cards_dir.iterdir()):
        if not (path.name.startswith("modelcard_") and path.name.endswith(".json")):
            log.debug(f"ignoring {path} (not a model card file name)")
            continue
        raw = _read_card(path, layout.root)
        result = (
            InvalidCard(path.name, raw) if isinstance(raw, str) else validate_card(path.name, raw, artifacts)
        )
        if isinstance(result, InvalidCard):
            invalid.append(result)
        else:
            valid.append(result)
    _log_some(
        log,
        [f"invalid model card {cards_dir / bad.file}: {bad.reason}" for bad in invalid],
        listed=bool(valid),
    )
    if invalid and not valid:
        raise InputError(
            f"all {len(invalid)} model cards in {cards_dir} are invalid (first: {invalid[0].file}: "
            f"{invalid[0].reason}); previous registry kept"
        )
    changes = diff_models(
        _previous_models(layout.registry_file, log), {card.file: card.sha256 for card in valid}
    )
    active = pick_active(valid)
    names = _trained_entries(layout)
    problems = _problems(layout, names)
    served = served_report(
        names,
        active,
        problems,
        card_files=[card.file for card in valid],
        require_calibrator=require_calibrator,
    )
    unservable = [
        InvalidCard(card.file, reason)
        for card in valid
        if (reason := card_artifact_problem(card, problems, require_calibrator=require_calibrator))
    ]
    previous = _previous_signature(layout.registry_file)
    snapshot: dict[str, Any] = {
        "schema_version": SNAPSHOT_SCHEMA,
        "generated_at": iso(now),
        "active": {elo: (card.summary() if card else None) for elo, card in active.items()},
        "models": [card.summary() for card in sorted(valid, key=lambda c: (c.elo, c.timestamp, c.file))],
        "invalid": [{"file": bad.file, "reason": bad.reason} for bad in invalid],
        "served": served.served,
        "served_files": _file_identities(layout, served.served),
        "unservable": [{"file": bad.file, "reason": bad.reason} for bad in unservable],
        "changes": {"added": changes.added, "removed": changes.removed, "changed": changes.changed},
    }
    changed = previous != _signature(snapshot)
    if changed:
        before_commit(Change((str(layout.registry_file),)))
    atomic_write_json(layout.registry_file, snapshot)
    for name in changes.added:
        log.info(f"new model card: {name}")
    for name in changes.removed:
        log.info(f"model card removed: {name}")
    for name in changes.changed:
        log.info(f"model card changed: {name}")
    _log_some(
        log, [f"model card {bad.file} cannot be served: {bad.reason}" for bad in unservable], listed=True
    )
    for warning in served.warnings:
        log.warning(warning)
    if not valid:
        log.warning(f"no model cards in {cards_dir}")
    return RegistryOutcome(valid, invalid, active, changes, served, unservable, changed)


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def observe_inputs(ctx: JobContext, outcome: RegistryOutcome) -> Observed:
    """The served models' card patches and, for the rich ones, their feature assets for the current
    patch (built first when ``[freshness] build_assets_command`` is set)."""
    from stratmancer_jobs.jobs.registry.assets import Builder, check_assets
    from stratmancer_jobs.jobs.registry.inputs import current_patch, patch_matches, rich_models, served_models

    layout, fresh = ctx.settings.layout, ctx.settings.freshness
    patch = current_patch(_read_or_none(layout.meta_file))
    cards = {card.file: card for card in outcome.valid}
    served = outcome.served.served
    if patch is None:
        return Observed(current_patch=None, models=served_models(served, cards))
    sidecar = _read_or_none(layout.history_sidecar) if fresh.build_assets_command else None
    builder = Builder(
        fresh.build_assets_command,
        fresh.build_assets_timeout_s,
        # the patch announcement's threshold (issue 22), when this version has it; 0: at once
        int(getattr(ctx.settings.patch, "announce_after_matches", 0) or 0),
        lambda elo, p: patch_matches(sidecar, elo, p),
        ctx.settings.env,
        ctx.settings.redact_values,
    )
    assets = check_assets(rich_models(served, cards, layout.root), patch, layout, builder, ctx.now, ctx.log)
    return Observed(current_patch=patch, models=served_models(served, cards), assets=assets)


def run(ctx: JobContext) -> JobResult:
    """Runner entry point."""
    layout = ctx.settings.layout
    outcome = refresh_registry(
        layout,
        ctx.now,
        ctx.log,
        require_calibrator=ctx.settings.registry.require_calibrator,
        before_commit=ctx.before_commit,
    )
    inputs = observe_inputs(ctx, outcome)
    metrics: dict[str, float | str] = {
        "models_registered": len(outcome.valid),
        "models_invalid": len(outcome.invalid),
        "models_added": len(outcome.changes.added),
        "models_removed": len(outcome.changes.removed),
        "models_unservable": len(outcome.unservable),
    }
    # one gauge per elo; metrics.py publishes them as stratmancer_registry_servable{elo}
    metrics.update({f"servable_{elo}": int(ok) for elo, ok in outcome.served.servable.items()})
    return JobResult(
        summary=outcome.summary(),
        metrics=metrics,
        warning=outcome.warning,
        inputs=inputs,
    )
