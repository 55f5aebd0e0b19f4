"""Scenarios about damaged files of the tool's own: a corrupt state file, a corrupt history cache."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.reliability.harness import (
    STATE,
    Outcome,
    make_root,
    run_cli,
    tail,
)
from tests.reliability.scenario_inputs import grow_history

CORRUPTIONS: dict[str, bytes] = {
    "empty": b"",
    "truncated": b"",  # filled in from the real file
    "garbage": b"\x00\xff garbage \xfe{{{",
    "wrong schema": json.dumps({"schema_version": 99, "jobs": {}}).encode(),
    "bad counts": json.dumps(
        {"schema_version": 1, "jobs": {"refresh_model_registry": {"success_count": "7"}}}
    ).encode(),
    "not an object": b"[1, 2, 3]\n",
}


def corrupt_state(base: Path) -> Outcome:
    """Each kind of bad state file: status says so (exit 1, file untouched); a job moves it aside, says so."""
    out = Outcome(
        "corrupt state",
        checked="status exit 1 naming the file and leaves it; the job runs, "
        "preserves the exact bytes as .corrupt-*, logs that counts restart, records recovered_from",
    )
    for kind, content in CORRUPTIONS.items():
        out.trials += 1
        root = make_root(base, f"corrupt-{kind.replace(' ', '-')}")
        state = root / STATE
        run_cli(root, "-q", "refresh-registry")
        if kind == "truncated":
            content = state.read_bytes()[: state.stat().st_size // 2]
        state.write_bytes(content)
        shown = run_cli(root, "status")
        if shown.returncode != 1 or str(state) not in shown.stderr or state.read_bytes() != content:
            out.fail(f"{kind}: status exit {shown.returncode}, stderr {tail(shown.stderr)}")
        ran = run_cli(root, "refresh-registry")
        kept = list(state.parent.glob("jobs_state.json.corrupt-*"))
        if ran.returncode != 0:
            out.fail(f"{kind}: job exit {ran.returncode}: {tail(ran.stderr)}")
        if len(kept) != 1 or kept[0].read_bytes() != content:
            out.fail(f"{kind}: bad file not preserved exactly ({[p.name for p in kept]})")
        if "counts restart at zero" not in ran.stderr or str(state) not in ran.stderr:
            out.fail(f"{kind}: no notice naming the file and the reset: {tail(ran.stderr)}")
        try:
            data = json.loads(state.read_bytes())
            if (
                data["recovered_from"]["path"] != str(kept[0])
                or data["jobs"]["refresh_model_registry"]["success_count"] != 1
            ):
                out.fail(f"{kind}: new state does not say where the old one went")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            out.fail(f"{kind}: new state unreadable ({exc!r})")
    return out


# --- 4. storage faults ---------------------------------------------------------------------------------


def corrupt_cache(base: Path, *, seed: int = 0) -> Outcome:
    """Damaged history cache files: the next incremental run still yields exactly the --full index."""
    out = Outcome(
        "corrupt history cache",
        checked="empty/garbage/wrong-schema manifest, truncated/flipped/empty group files, cache dir "
        "missing: next run exit 0 and its index byte-identical to --full",
    )
    rng = random.Random(seed)
    root = make_root(base, "cache")
    cache = root / "state/history_cache"
    index = root / "ml_pipeline/history_index.json"
    first = run_cli(root, "-q", "refresh-history")
    if first.returncode != 0:
        out.fail(f"first run: {tail(first.stderr)}")
        return out

    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))

    damage: dict[str, Callable[[], None]] = {
        "manifest empty": lambda: (cache / "manifest.json").write_bytes(b""),
        "manifest garbage": lambda: (cache / "manifest.json").write_bytes(b"\xff{garbage"),
        "manifest wrong schema": lambda: (cache / "manifest.json").write_text('{"format": 1, "files": 3}'),
        "group truncated": lambda: (cache / "group_MID.bin").write_bytes(
            (cache / "group_MID.bin").read_bytes()[:100]
        ),
        "group flipped byte": lambda: flip(cache / "group_LOW.bin"),
        "group empty": lambda: (cache / "group_HIGH.bin").write_bytes(b""),
        "cache dir missing": lambda: shutil.rmtree(cache),
    }
    for serial, (kind, spoil) in enumerate(damage.items()):
        out.trials += 1
        grow_history(root, rng, 5000 + serial)
        run_cli(root, "-q", "refresh-history")  # a cache that matches the inputs ...
        grow_history(root, rng, 6000 + serial)
        spoil()  # ... then damaged
        nxt = run_cli(root, "-q", "refresh-history")
        incremental = index.read_bytes() if index.exists() else b""
        full = run_cli(root, "-q", "refresh-history", "--full")
        if nxt.returncode != 0 or full.returncode != 0 or index.read_bytes() != incremental:
            out.fail(
                f"{kind}: exit {nxt.returncode}/{full.returncode}, index equal to --full: "
                f"{index.read_bytes() == incremental}; {tail(nxt.stderr)}"
            )
    return out
