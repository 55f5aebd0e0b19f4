"""What refresh-registry observes for the freshness checks; pure (names and values in, facts out).

StratMancer's inference service builds a feature context per elo from the served model's card: its
``feature_mode`` (``basic`` unless said otherwise) and ``assets_dir`` (``data/assets`` unless said
otherwise, relative to the app's working directory, the deployment root). In ``rich`` mode the
feature code reads ``priors_{elo}_{patch}.json`` and ``matchups_{elo}_{patch}.npz`` for the request's
patch and ``embeddings_{elo}.npy``, and quietly falls back to neutral values when one is missing; the
files are written by ``ml_pipeline/features/build_assets.py --elo ELO --patch PATCH``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from stratmancer_jobs.freshness import ServedModel
from stratmancer_jobs.jobs.registry.cards import ValidCard
from stratmancer_jobs.patchver import normalize_patch

DEFAULT_ASSETS_DIR: Final = "data/assets"
BUILD_COMMAND: Final = "python -m ml_pipeline.features.build_assets --elo {elo} --patch {patch}"


def current_patch(raw: bytes | None) -> str | None:
    """``config/meta.json``'s patch (``"16.23"``), None when the file is absent or has no valid one."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return normalize_patch(data.get("patch")) if isinstance(data, dict) else None


def served_models(
    served: Mapping[str, Mapping[str, Any]], cards: Mapping[str, ValidCard]
) -> dict[str, ServedModel | None]:
    """Per elo with a served model file: its card's facts (None when the app has no valid card for it)."""
    out: dict[str, ServedModel | None] = {}
    for elo, entry in served.items():
        if entry.get("model_file") is None:
            continue
        card = cards.get(entry.get("card") or "")
        if card is None:
            out[elo] = None
            continue
        source = card.card.get("source_patch")
        text = source if isinstance(source, str) else None
        out[elo] = ServedModel(card.file, normalize_patch(source) or text)
    return out


@dataclass(frozen=True)
class RichModel:
    """A served model whose card asks for rich features: where its assets live."""

    elo: str
    card: str
    assets_dir: Path


def rich_models(
    served: Mapping[str, Mapping[str, Any]], cards: Mapping[str, ValidCard], root: Path
) -> list[RichModel]:
    """The served models with ``feature_mode: "rich"``, their ``assets_dir`` taken under ``root``."""
    out: list[RichModel] = []
    for elo, entry in served.items():
        card = cards.get(entry.get("card") or "")
        if card is None or entry.get("model_file") is None or card.card.get("feature_mode") != "rich":
            continue
        where = card.card.get("assets_dir")
        directory = where if isinstance(where, str) and where and "\x00" not in where else DEFAULT_ASSETS_DIR
        out.append(RichModel(elo, card.file, root / directory))
    return out


def asset_files(elo: str, patch: str) -> tuple[str, str, str]:
    """The files a rich model of ``elo`` needs for ``patch``."""
    return f"priors_{elo}_{patch}.json", f"matchups_{elo}_{patch}.npz", f"embeddings_{elo}.npy"


def build_text(elo: str, patch: str) -> str:
    """The command that builds them, as an operator would type it."""
    return BUILD_COMMAND.format(elo=elo, patch=patch)


def fill(argv: tuple[str, ...], elo: str, patch: str) -> list[str]:
    """``build_assets_command`` with ``{elo}`` and ``{patch}`` filled in (nothing else is touched)."""
    return [arg.replace("{elo}", elo).replace("{patch}", patch) for arg in argv]


def patch_matches(sidecar: bytes | None, elo: str, patch: str) -> int:
    """How many matches of ``patch`` the history index holds for ``elo``'s group (its sidecar's table);
    0 when it cannot be read."""
    if sidecar is None:
        return 0
    try:
        data = json.loads(sidecar)
        table = data["freshness"]["matches_per_patch"][elo.upper()]
        value = table.get(patch, 0)
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return 0
    return value if type(value) is int and value >= 0 else 0
