"""Tier and elo-group names, input file names and the canonical order every count is made in."""

from __future__ import annotations

import re
from typing import Final

TIERS: Final = (
    "IRON",
    "BRONZE",
    "SILVER",
    "GOLD",
    "PLATINUM",
    "EMERALD",
    "DIAMOND",
    "MASTER",
    "GRANDMASTER",
    "CHALLENGER",
)
GROUPS: Final = {
    "LOW": ("IRON", "BRONZE", "SILVER"),
    "MID": ("GOLD", "PLATINUM", "EMERALD"),
    "HIGH": ("DIAMOND", "MASTER", "GRANDMASTER", "CHALLENGER"),
}
TIER_GROUP: Final = {tier: group for group, members in GROUPS.items() for tier in members}
TIER_INDEX: Final = {tier: i for i, tier in enumerate(TIERS)}

# Within a tier the JSON array comes before the JSONL file: "first occurrence" follows this order.
KINDS: Final = ("json", "jsonl")
_FILE_RE: Final = re.compile(r"^matches_([A-Z]+)\.(json|jsonl)$")


def parse_tier_file(name: str) -> tuple[str, str] | None:
    """``matches_GOLD.jsonl`` -> ``("GOLD", "jsonl")``; None for any other file name."""
    match = _FILE_RE.match(name)
    if match is None or match.group(1) not in TIER_INDEX:
        return None
    return match.group(1), match.group(2)


def file_rank(tier: str, kind: str) -> int:
    """Position of a tier file in the canonical order (tiers in TIERS order, JSON before JSONL)."""
    return TIER_INDEX[tier] * 2 + KINDS.index(kind)
