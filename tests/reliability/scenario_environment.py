"""Scenarios about the environment: planted secrets never shown, hostile root paths."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ddragon_server import closed_port_url
from tests.reliability.harness import (
    JOBS,
    PLANTED_KEY,
    STATE,
    Outcome,
    make_root,
    run_cli,
    tail,
)


def secrets(base: Path) -> Outcome:
    """A planted RIOT_API_KEY and a forced failure inside each job: the key appears nowhere."""
    out = Outcome(
        "secrets",
        checked="planted RIOT_API_KEY (also in the root path) absent from stdout, "
        "stderr, tracebacks, json logs, state, status (table, job, json, check) and metrics",
    )
    root = make_root(base, f"root-{PLANTED_KEY}")
    env = {"RIOT_API_KEY": PLANTED_KEY, "STRATMANCER_DDRAGON_URL": f"{closed_port_url()}/{PLANTED_KEY}"}
    metrics = root / "metrics.prom"
    texts: list[tuple[str, str]] = []

    def run(label: str, *args: str, fault: str | None = None, expect: int = 1) -> None:
        extra = dict(env, STRATMANCER_TEST_FAULT=fault) if fault else env
        for fmt in ("human", "json"):
            out.trials += 1
            proc = run_cli(
                root, "--log-format", fmt, "--metrics-file", str(metrics), *args, env=extra, hooks=True
            )
            texts.append((f"{label} ({fmt}) stdout", proc.stdout))
            texts.append((f"{label} ({fmt}) stderr", proc.stderr))
            if proc.returncode != expect:
                out.fail(f"{label}: exit {proc.returncode}, expected {expect}: {tail(proc.stderr)}")
            if (
                fault
                and fault.startswith(("RAISE", "CONFIG"))
                and "Traceback" not in proc.stderr
                and "RuntimeError" not in proc.stderr
            ):
                out.fail(f"{label}: the forced failure left no trace on stderr")

    # failures inside each job whose messages name paths or URLs that carry the key
    (root / "data/processed").rename(root / "data/elsewhere")
    run("history, no data", "refresh-history")
    (root / "data/elsewhere").rename(root / "data/processed")
    (root / "ml_pipeline/models").rename(root / "ml_pipeline/elsewhere")
    run("registry, no models", "refresh-registry")
    (root / "ml_pipeline/elsewhere").rename(root / "ml_pipeline/models")
    run("patch, connection refused", "refresh-patch")
    # unexpected exceptions (tracebacks) whose message carries the key, inside each job and in the CLI
    for cmd in JOBS:
        run(f"{cmd}, unexpected error", cmd, fault=f"RAISE:{root / 'state'}")
    run("cli, unexpected error", "status", fault="CONFIG:", expect=1)
    for args in (("status",), ("status", "refresh-history"), ("status", "--json"), ("status", "--check")):
        proc = run_cli(root, *args, env=env)
        texts.append((" ".join(args), proc.stdout + proc.stderr))
    for rel in (STATE, "metrics.prom"):
        path = root / rel
        texts.append((rel, path.read_text(encoding="utf-8") if path.exists() else ""))
        if not path.exists():
            out.fail(f"{rel} was not written")
    for label, text in texts:
        if PLANTED_KEY in text:
            line = next(li for li in text.splitlines() if PLANTED_KEY in li)
            out.fail(f"key leaked in {label}: {line[:200]}")
        if "locals" in text.lower() and "│" in text:
            out.fail(f"{label}: a traceback shows local variables")
    return out


def paths(base: Path) -> Outcome:
    """Card names, tier file names and config values cannot read or write outside the root."""
    out = Outcome(
        "path escapes",
        checked="symlinked cards, tier files, artifacts, lock and state files "
        "pointing out; '..' and absolute model files; '..' config values",
    )
    outside = base / "outside"
    outside.mkdir()
    secret_match = {
        "match_id": "OUT1",
        "blue_picks": [101, 102, 103, 104, 105],
        "red_picks": [106, 107, 108, 109, 110],
        "blue_win": True,
    }
    (outside / "matches.json").write_text(json.dumps([secret_match] * 1))
    (outside / "card.json").write_text(
        json.dumps(
            {
                "elo": "high",
                "timestamp": "2031-01-01T00:00:00",
                "model_file": "draft_high_logreg_20251030_220550.pkl",
            }
        )
    )
    (outside / "model.pkl").write_bytes(b"outside")
    (outside / "victim").write_text("do not touch")
    root = make_root(base, "paths")
    cards = root / "ml_pipeline/models/modelcards"
    trained = root / "ml_pipeline/models/trained"

    out.trials += 1
    (root / "data/processed/matches_IRON.json").symlink_to(outside / "matches.json")
    proc = run_cli(root, "refresh-history")
    index = json.loads((root / "ml_pipeline/history_index.json").read_bytes())
    low, silver = index.get("LOW", {}).get("n_matches"), index.get("SILVER", {}).get("n_matches")
    if "IRON" in index or low != silver:
        out.fail("a tier file symlinked outside the root was read")
    if "matches_IRON.json" not in proc.stderr:
        out.fail(f"the ignored symlinked tier file is not reported: {tail(proc.stderr)}")

    out.trials += 1
    (cards / "modelcard_high_20310101_000000.json").symlink_to(outside / "card.json")
    (trained / "evil.pkl").symlink_to(outside / "model.pkl")
    for name, model_file in (
        ("modelcard_mid_20300101_000000.json", "../../../outside/model.pkl"),
        ("modelcard_mid_20300101_000001.json", str(outside / "model.pkl")),
        ("modelcard_mid_20300101_000002.json", "evil.pkl"),
    ):
        (cards / name).write_text(
            json.dumps({"elo": "mid", "timestamp": "2030-01-01T00:00:00", "model_file": model_file})
        )
    proc = run_cli(root, "refresh-registry")
    registry = json.loads((root / "ml_pipeline/model_registry.json").read_bytes())
    invalid = {item["file"] for item in registry["invalid"]}
    expected = {
        "modelcard_high_20310101_000000.json",
        "modelcard_mid_20300101_000000.json",
        "modelcard_mid_20300101_000001.json",
        "modelcard_mid_20300101_000002.json",
    }
    if proc.returncode != 0 or invalid != expected:
        out.fail(f"registry: invalid {sorted(invalid)} != {sorted(expected)} (exit {proc.returncode})")

    out.trials += 2
    for key, value in (("metrics_file", "../../outside/m.prom"), ("patch", None)):
        text = f'{key} = "{value}"\n' if value else '[patch]\nregion = "../../outside"\n'
        (root / "config/jobs.toml").write_text(text)
        proc = run_cli(root, "refresh-registry")
        if proc.returncode != 2 or key not in proc.stderr:
            out.fail(f"config {key}: exit {proc.returncode}: {tail(proc.stderr)}")
    (root / "config/jobs.toml").unlink()

    out.trials += 2
    lock = root / "state/locks/refresh_patch_meta.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.symlink_to(outside / "victim")
    state = root / STATE
    state.unlink()
    state.symlink_to(outside / "victim")
    run_cli(root, "refresh-patch", env={"STRATMANCER_DDRAGON_URL": closed_port_url()})
    if (outside / "victim").read_text() != "do not touch":
        out.fail("a symlinked lock or state file let the tool write outside the root")
    if sorted(p.name for p in outside.iterdir()) != ["card.json", "matches.json", "model.pkl", "victim"]:
        out.fail(f"files created outside the root: {sorted(p.name for p in outside.iterdir())}")
    return out
