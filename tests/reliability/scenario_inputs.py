"""Shared inputs of the reliability scenarios: a scripted Data Dragon, growing and changing inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.ddragon_server import DDragonServer, json_reply
from tests.reliability.harness import (
    VERSIONS,
)


def ddragon() -> DDragonServer:
    server = DDragonServer()
    server.script("/api/versions.json", json_reply(VERSIONS))
    return server


# --- 1. load -------------------------------------------------------------------------------------------


def grow_history(root: Path, rng: random.Random, serial: int) -> None:
    """Change the inputs the way the collector does: append to a JSON array (rewritten whole) or JSONL."""
    processed = root / "data/processed"
    pool = list(range(1, 60))

    def match(i: int) -> dict[str, object]:
        champs = rng.sample(pool, 10)
        return {
            "match_id": f"NA1_{serial}_{i}",
            "blue_picks": champs[:5],
            "red_picks": champs[5:],
            "blue_win": rng.random() < 0.5,
            "champion_stats": [{"x": i}],
        }

    batch = [match(i) for i in range(rng.randint(1, 40))]
    target = rng.choice(sorted(processed.iterdir()))
    if target.suffix == ".jsonl":
        with target.open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(m) + "\n" for m in batch)
    elif rng.random() < 0.8:
        data = json.loads(target.read_bytes())
        target.write_text(json.dumps(data + batch, indent=2), encoding="utf-8")
    else:  # a rewrite that is not an append: the incremental path must notice
        data = json.loads(target.read_bytes())
        rng.shuffle(data)
        target.write_text(json.dumps(data[: max(1, len(data) - 3)] + batch, indent=2), encoding="utf-8")


def change_inputs(cmd: str, root: Path, rng: random.Random, serial: int, server: DDragonServer) -> None:
    if cmd == "refresh-history":
        grow_history(root, rng, serial)
    elif cmd == "refresh-registry":
        cards = sorted((root / "ml_pipeline/models/modelcards").glob("modelcard_*.json"))
        card = rng.choice(cards)
        data = json.loads(card.read_bytes())
        data["metrics"]["serial"] = serial
        card.write_text(json.dumps(data), encoding="utf-8")
    else:
        server.script("/api/versions.json", json_reply([f"16.{serial % 30}.1", *VERSIONS]))
