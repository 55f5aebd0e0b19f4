"""The process-level reliability scenarios of issue 5, as plain functions taking counts.

Each returns an ``Outcome`` (trials, failures, what was checked). ``tests/reliability/test_*.py`` call
them with small counts and assert no failures; ``scripts/reliability.py`` calls them with large counts
and prints the table. Hostile-input (hypothesis) scenarios live in ``hostile.py``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.ddragon_server import DDragonServer, closed_port_url, json_reply
from tests.reliability.harness import (
    JOBS,
    PLANTED_KEY,
    STATE,
    VERSIONS,
    Outcome,
    can_mount,
    child_env,
    command,
    job_counts,
    lock_free,
    make_root,
    problem_with,
    run_cli,
    snapshot,
    started,
    tail,
    umount,
    wait_lock_free,
)


def _server() -> DDragonServer:
    server = DDragonServer()
    server.script("/api/versions.json", json_reply(VERSIONS))
    return server


# --- 1. load -------------------------------------------------------------------------------------------


def load(base: Path, per_job: int, readers: int, *, seed: int = 0) -> Outcome:
    """Every job ``per_job`` times and ``readers`` status readers, all started at once, in random order."""
    out = Outcome(
        "load",
        checked="per job success+error+skipped == runs started, no errors; state and "
        "outputs parse; every status --json reader exit 0 and complete",
    )
    root = make_root(base)
    with _server() as server:
        env = child_env({"STRATMANCER_DDRAGON_URL": server.base_url})
        argvs = [command(root, "-q", cmd) for cmd in JOBS for _ in range(per_job)]
        argvs += [command(root, "status", "--json") for _ in range(readers)]
        random.Random(seed).shuffle(argvs)
        with started(argvs, env) as procs:
            results = [
                (argv, proc, *proc.communicate(timeout=300)) for argv, proc in zip(argvs, procs, strict=True)
            ]
    out.trials = len(argvs)
    for argv, proc, stdout, stderr in results:
        if "status" in argv:
            try:
                report = json.loads(stdout)
                complete = report["total_jobs"] == 3 and report["state_error"] is None
            except (ValueError, KeyError, TypeError):
                complete = False
            if proc.returncode != 0 or not complete:
                out.fail(f"status reader exit {proc.returncode}: {tail(stderr or stdout)}")
        elif proc.returncode != 0:
            out.fail(f"{argv[-1]} exit {proc.returncode}: {tail(stderr)}")
    for job_id, outputs in JOBS.values():
        success, error, skipped = job_counts(root, job_id)
        if success + error + skipped != per_job or error or not success:
            out.fail(f"{job_id}: {success} success + {error} error + {skipped} skipped != {per_job} runs")
        for rel in (STATE, *outputs):
            if (problem := problem_with(root, rel)) is not None or not (root / rel).exists():
                out.fail(f"{rel}: {problem or 'missing'}")
        if not (root / "state/locks" / f"{job_id}.lock").exists():
            out.fail(f"lock file of {job_id} was deleted")
    return out


# --- 2. crashes ----------------------------------------------------------------------------------------


def _grow_history(root: Path, rng: random.Random, serial: int) -> None:
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


def _change_inputs(cmd: str, root: Path, rng: random.Random, serial: int, server: DDragonServer) -> None:
    if cmd == "refresh-history":
        _grow_history(root, rng, serial)
    elif cmd == "refresh-registry":
        cards = sorted((root / "ml_pipeline/models/modelcards").glob("modelcard_*.json"))
        card = rng.choice(cards)
        data = json.loads(card.read_bytes())
        data["metrics"]["serial"] = serial
        card.write_text(json.dumps(data), encoding="utf-8")
    else:
        server.script("/api/versions.json", json_reply([f"16.{serial % 30}.1", *VERSIONS]))


def _essence(rel: str, raw: bytes | None) -> object:
    """A file's content without the parts that change on every run (timestamps, change reports)."""
    if raw is None or rel.endswith("history_index.json"):
        return raw
    data = json.loads(raw)
    if rel.endswith("model_registry.json"):
        return [data[key] for key in ("active", "models", "invalid")]
    if rel.endswith("meta.json") and rel.startswith("config"):
        return [data.get(key) for key in ("patch", "version", "source")]
    return {k: v for k, v in data.items() if k != "generated_at"}


def crashes(
    base: Path,
    cmd: str,
    trials: int,
    *,
    seed: int = 0,
    slow_writes: float = 0.05,
    sig: signal.Signals = signal.SIGKILL,
) -> Outcome:
    """SIGKILL (or ``sig``) ``cmd`` at a random moment of its run ``trials`` times, checking everything
    after each kill.

    Half the trials slow every fsync/replace down (``hooks/sitecustomize.py``) so that kills land inside
    atomic writes too; the kill moment is uniform over the measured length of such a run.
    """
    job_id, outputs = JOBS[cmd]
    out = Outcome(
        f"crash {cmd}" + ("" if sig == signal.SIGKILL else f" ({sig.name})"),
        checked=f"after {sig.name}: state and outputs parse, outputs are the old or the new version, "
        "lock free and kept, next run exit 0"
        + (", incremental index == --full" if cmd == "refresh-history" else ""),
    )
    rng = random.Random(seed)
    root = make_root(base, f"crash-{cmd}")
    lock = root / "state/locks" / f"{job_id}.lock"
    rels = (STATE, *outputs)
    with _server() as server:
        env = {"STRATMANCER_DDRAGON_URL": server.base_url}
        first = run_cli(root, cmd, env=env)
        if first.returncode != 0:
            out.fail(f"first run exit {first.returncode}: {tail(first.stderr)}")
            return out
        lengths: dict[bool, float] = {}
        for slow in (False, True):  # the length of a run with changed inputs, as in the trials
            _change_inputs(cmd, root, rng, -1 - slow, server)
            t0 = time.monotonic()
            run_cli(
                root,
                cmd,
                env={**env, "STRATMANCER_TEST_SLOW_WRITES": str(slow_writes if slow else 0)},
                hooks=True,
            )
            lengths[slow] = time.monotonic() - t0
        inside_writes = 0
        for trial in range(trials):
            out.trials += 1
            slow = trial % 2 == 1
            _change_inputs(cmd, root, rng, trial, server)
            before = snapshot(root, rels)
            trial_env = child_env(
                {**env, "STRATMANCER_TEST_SLOW_WRITES": str(slow_writes if slow else 0)}, hooks=True
            )
            delay = rng.uniform(0, lengths[slow])
            with started([command(root, "-q", cmd)], trial_env) as (proc,):
                time.sleep(delay)
                finished_first = proc.poll() is not None
                proc.send_signal(sig)
                proc.wait(timeout=30)
            where = f"trial {trial} (kill at {delay:.3f}s{', run had finished' if finished_first else ''})"
            after = snapshot(root, rels)
            for rel in rels:
                problem = problem_with(root, rel)
                if problem is not None:
                    out.fail(f"{where}: {problem}")
                elif after[rel] is None and before[rel] is not None:
                    out.fail(f"{where}: {rel} disappeared")
            waited = wait_lock_free(lock, 5.0)
            if waited is None:
                out.fail(f"{where}: {lock.name} still held 5 s after the kill")
            elif waited > 0.5:
                out.fail(f"{where}: {lock.name} held {waited:.2f}s after the kill")
            if not lock.exists():
                out.fail(f"{where}: {lock.name} deleted")
            temps = list(root.rglob(".*.tmp"))
            inside_writes += bool(temps)
            nxt = run_cli(root, "-q", cmd, env=env)
            if nxt.returncode != 0:
                out.fail(f"{where}: next run exit {nxt.returncode}: {tail(nxt.stderr)}")
                continue
            stale = [str(p.relative_to(root)) for p in temps if p.exists()]
            if stale:
                out.fail(f"{where}: temp files of the killed writer left after the next run: {stale}")
            # old or new: what the kill left is what was there before, or what a completed run makes
            # of the same inputs (compared without the fields that hold the time of the run)
            new = snapshot(root, outputs)
            for rel in outputs:
                if _essence(rel, after[rel]) not in (_essence(rel, before[rel]), _essence(rel, new[rel])):
                    out.fail(f"{where}: {rel} is neither the old nor the new version")
            if cmd == "refresh-history":
                incremental = (root / outputs[0]).read_bytes()
                full = run_cli(root, "-q", cmd, "--full", env=env)
                if full.returncode != 0 or (root / outputs[0]).read_bytes() != incremental:
                    out.fail(f"{where}: incremental index differs from --full ({tail(full.stderr)})")
    out.checked += (
        f"; {inside_writes} kills landed inside a write (temp file left), none left after the next run"
    )
    return out


# --- 5. corrupt state ----------------------------------------------------------------------------------

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


def _expect_failure(out: Outcome, what: str, proc: subprocess.CompletedProcess[str], names: Path) -> None:
    if proc.returncode not in (1, 2) or str(names) not in proc.stderr:
        out.fail(f"{what}: exit {proc.returncode}, stderr does not name {names}: {tail(proc.stderr)}")
    if "Traceback" in proc.stderr:
        out.fail(f"{what}: traceback instead of a clear error")


def storage_faults(base: Path, *, real_mounts: bool | None = None) -> Outcome:
    """Read-only output dir, disk full, state file replaced by a directory, lock directory missing or a file.

    Read-only and disk-full use a real read-only bind mount and a real small tmpfs when this machine
    allows mounting, and otherwise the ``hooks/sitecustomize.py`` faults at the same calls.
    """
    mounts = can_mount() if real_mounts is None else real_mounts
    how = "real ro bind mount and tmpfs" if mounts else "simulated EROFS/ENOSPC"
    out = Outcome("storage faults", checked=f"exit 1/2, error names the path, previous files intact ({how})")

    # read-only output directory, for each job
    with _server() as server:
        env = {"STRATMANCER_DDRAGON_URL": server.base_url}
        for n, (cmd, (_, outputs)) in enumerate(JOBS.items()):
            out.trials += 1
            root = make_root(base, f"readonly-{n}")
            run_cli(root, "-q", cmd, env=env)
            _change_inputs(cmd, root, random.Random(n), 1000 + n, server)
            before = snapshot(root, outputs)
            target = (root / outputs[0]).parent
            if mounts:
                subprocess.run(["mount", "--bind", str(target), str(target)], check=True)
                try:
                    subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True)
                    proc = run_cli(root, cmd, env=env)
                finally:
                    umount(target)
            else:
                fault = {**env, "STRATMANCER_TEST_FAULT": f"EROFS:{target}"}
                proc = run_cli(root, cmd, env=fault, hooks=True)
            _expect_failure(out, f"{cmd}, read-only output dir", proc, root / outputs[0])
            if snapshot(root, outputs) != before:
                out.fail(f"{cmd}, read-only output dir: a previous output changed")

    # disk full under the state file: the job is not run, the previous state is intact
    out.trials += 1
    root = make_root(base, "statefull")
    run_cli(root, "-q", "refresh-registry")
    state_dir = root / "state"
    before_state = snapshot(root, [STATE])
    if mounts:
        saved = base / "statefull-saved"
        shutil.copytree(state_dir, saved)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(state_dir)], check=True)
        try:
            shutil.copytree(saved, state_dir, dirs_exist_ok=True)
            free = os.statvfs(state_dir).f_bavail * os.statvfs(state_dir).f_frsize
            (state_dir / "filler").write_bytes(b"\0" * free)
            proc = run_cli(root, "refresh-registry")
            intact = snapshot(root, [STATE]) == before_state
        finally:
            umount(state_dir)
    else:
        proc = run_cli(
            root, "refresh-registry", env={"STRATMANCER_TEST_FAULT": f"ENOSPC:{state_dir}"}, hooks=True
        )
        intact = snapshot(root, [STATE]) == before_state
    _expect_failure(out, "disk full under state/", proc, root / STATE)
    if not intact:
        out.fail("disk full under state/: the previous state changed")

    # disk full while writing the history index
    out.trials += 1
    root = make_root(base, "diskfull")
    index = root / "ml_pipeline/history_index.json"
    first = run_cli(root, "-q", "refresh-history")
    if first.returncode != 0:
        out.fail(f"disk full: setup run failed: {tail(first.stderr)}")
    before = index.read_bytes()
    (root / "data/processed/matches_IRON.jsonl").write_text(
        json.dumps(
            {"match_id": "X1", "blue_picks": [1, 2, 3, 4, 5], "red_picks": [6, 7, 8, 9, 10], "blue_win": True}
        )
        + "\n"
    )
    ml = root / "ml_pipeline"
    if mounts:
        saved = base / "diskfull-saved"
        saved.mkdir()
        for item in ml.iterdir():
            os.replace(item, saved / item.name)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(ml)], check=True)
        try:
            for item in saved.iterdir():
                if item.is_dir():
                    shutil.copytree(item, ml / item.name)
                else:
                    (ml / item.name).write_bytes(item.read_bytes())
            free = os.statvfs(ml).f_bavail * os.statvfs(ml).f_frsize
            (ml / "filler").write_bytes(b"\0" * max(0, free - 4096))
            proc = run_cli(root, "refresh-history")
            intact = index.read_bytes() == before
            leftovers = [p.name for p in ml.glob(".*.tmp")]
        finally:
            umount(ml)
    else:
        proc = run_cli(root, "refresh-history", env={"STRATMANCER_TEST_FAULT": f"ENOSPC:{ml}"}, hooks=True)
        intact = index.read_bytes() == before
        leftovers = [p.name for p in ml.glob(".*.tmp")]
    _expect_failure(out, "disk full", proc, index)
    if "no space left" not in proc.stderr or not intact or leftovers:
        out.fail(f"disk full: index intact={intact}, temp files left {leftovers}, {tail(proc.stderr)}")

    # state file replaced by a directory
    out.trials += 1
    root = make_root(base, "statedir")
    state = root / STATE
    state.mkdir(parents=True)
    (state / "keep").write_text("x")
    proc = run_cli(root, "refresh-registry")
    _expect_failure(out, "state file is a directory", proc, state)
    status = run_cli(root, "status")
    _expect_failure(out, "status, state file is a directory", status, state)
    if not (state / "keep").exists():
        out.fail("state file is a directory: the directory was touched")

    # lock directory missing (recreated), and lock directory replaced by a file
    out.trials += 2
    root = make_root(base, "lockdir")
    run_cli(root, "-q", "refresh-registry")
    locks = root / "state/locks"
    for item in locks.iterdir():
        item.unlink()
    locks.rmdir()
    proc = run_cli(root, "-q", "refresh-registry")
    if proc.returncode != 0 or not (locks / "refresh_model_registry.lock").exists():
        out.fail(f"lock directory missing: exit {proc.returncode}: {tail(proc.stderr)}")
    for item in locks.iterdir():
        item.unlink()
    locks.rmdir()
    locks.write_text("not a directory")
    before = (root / "ml_pipeline/model_registry.json").read_bytes()
    proc = run_cli(root, "refresh-registry")
    _expect_failure(out, "lock directory is a file", proc, locks)
    if (
        locks.read_text() != "not a directory"
        or (root / "ml_pipeline/model_registry.json").read_bytes() != before
    ):
        out.fail("lock directory is a file: files changed")
    return out


# --- security ------------------------------------------------------------------------------------------


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


def permissions(base: Path) -> Outcome:
    """Replacement keeps mode and group; with umask 000 nothing new is world-writable; locks stay."""
    out = Outcome(
        "permissions",
        checked="mode and group kept on replace (index, registry, meta, state); "
        "umask 000: state, lock, cache files and their dirs not world-writable; lock files kept",
    )
    root = make_root(base, "perms")
    with _server() as server:
        env = {"STRATMANCER_DDRAGON_URL": server.base_url}
        for cmd in JOBS:
            run_cli(root, "-q", cmd, env=env)
        targets = [root / rel for cmd in JOBS for rel in JOBS[cmd][1]] + [root / STATE]
        group = 33 if os.geteuid() == 0 else os.getgid()
        for path in targets:
            os.chmod(path, 0o640)
            if os.geteuid() == 0:
                os.chown(path, -1, group)
        _grow_history(root, random.Random(1), 0)  # so that the index is rewritten
        (root / "ml_pipeline/models/trained/new.pkl").write_bytes(b"x")
        server.script("/api/versions.json", json_reply(["16.24.1"]))
        for cmd in JOBS:
            run_cli(root, "-q", cmd, env=env)
        for path in targets:
            out.trials += 1
            st = path.stat()
            if stat.S_IMODE(st.st_mode) != 0o640 or st.st_gid != group:
                out.fail(
                    f"{path.name}: mode {stat.S_IMODE(st.st_mode):o} gid {st.st_gid} after replace, "
                    f"expected 640 gid {group}"
                )

        fresh = make_root(base, "umask")
        old = os.umask(0)
        try:
            for cmd in JOBS:
                run_cli(fresh, "-q", cmd, env=env)
        finally:
            os.umask(old)
    for path in [*sorted((fresh / "state").rglob("*")), fresh / "state"]:
        out.trials += 1
        if path.stat().st_mode & stat.S_IWOTH:
            out.fail(f"{path.relative_to(fresh)} is world-writable ({stat.S_IMODE(path.stat().st_mode):o})")
    for job_id, _ in JOBS.values():
        out.trials += 1
        if not (fresh / "state/locks" / f"{job_id}.lock").exists():
            out.fail(f"lock file of {job_id} missing after its run")
    return out


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
        _grow_history(root, rng, 5000 + serial)
        run_cli(root, "-q", "refresh-history")  # a cache that matches the inputs ...
        _grow_history(root, rng, 6000 + serial)
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


def timeouts(base: Path, trials: int, *, seed: int = 0) -> Outcome:
    """refresh-history stopped by ``--timeout`` at random moments (writes slowed down): each run is
    recorded as failed, files parse, the lock is free, and the next incremental run equals --full."""
    out = Outcome(
        "timeouts refresh-history",
        checked="random --timeout during slowed writes: exit 1 and 'timed out' recorded, files parse, "
        "lock free, no traceback, next incremental index == --full",
    )
    rng = random.Random(seed)
    root = make_root(base, "timeouts")
    lock = root / "state/locks/refresh_history_index.lock"
    index = root / "ml_pipeline/history_index.json"
    rels = (STATE, index.relative_to(root).as_posix(), "ml_pipeline/history_index.meta.json")
    run_cli(root, "-q", "refresh-history")
    for trial in range(trials):
        out.trials += 1
        _grow_history(root, rng, 7000 + trial)
        limit = f"{rng.uniform(0.01, 0.6):.3f}"
        proc = run_cli(
            root,
            "refresh-history",
            "--timeout",
            limit,
            env={"STRATMANCER_TEST_SLOW_WRITES": "0.05"},
            hooks=True,
        )
        where = f"trial {trial} (--timeout {limit})"
        timed_out = proc.returncode == 1 and "timed out" in proc.stderr
        if not (proc.returncode == 0 or timed_out) or "Traceback" in proc.stderr:
            out.fail(f"{where}: exit {proc.returncode}: {tail(proc.stderr)}")
        problems = [p for rel in rels if (p := problem_with(root, rel)) is not None]
        if problems or not lock_free(lock):
            out.fail(f"{where}: {problems or 'lock still held'}")
        nxt = run_cli(root, "-q", "refresh-history")
        incremental = index.read_bytes()
        full = run_cli(root, "-q", "refresh-history", "--full")
        if nxt.returncode or full.returncode or index.read_bytes() != incremental:
            out.fail(
                f"{where}: next run {nxt.returncode}, --full {full.returncode}, equal "
                f"{index.read_bytes() == incremental}: {tail(nxt.stderr + full.stderr)}"
            )
    errors = job_counts(root, "refresh_history_index")[1]
    out.checked += f"; {errors} of {trials} runs timed out"
    return out


def collector_rewrites(base: Path, runs: int, *, matches: int = 20000, seed: int = 0) -> Outcome:
    """refresh-history while the collector rewrites a tier file in place (truncate, then write in
    chunks, one more match each time), as StratMancer's collector does on every save."""
    out = Outcome(
        "collector rewriting in place",
        checked="refresh-history (incremental and --full) during in-place rewrites of a 5 MB tier file: "
        "never killed by a signal (SIGBUS), no traceback, exit 0 or 1 naming the file; afterwards "
        "incremental == --full",
    )
    rng = random.Random(seed)
    root = make_root(base, "collector")
    gold = root / "data/processed/matches_GOLD.json"
    pool = list(range(1, 170))
    records: list[dict[str, object]] = []
    for i in range(matches):
        champs = rng.sample(pool, 10)
        records.append(
            {
                "match_id": f"C{i}",
                "blue_picks": champs[:5],
                "red_picks": champs[5:],
                "blue_win": rng.random() < 0.5,
                "champion_stats": [{"k": i}],
            }
        )
    gold.write_text(json.dumps(records, indent=2))
    run_cli(root, "-q", "refresh-history")
    stop = threading.Event()

    def collector() -> None:
        n = matches
        data = gold.read_bytes().rstrip()
        while not stop.is_set():
            champs = rng.sample(pool, 10)
            record = {
                "match_id": f"C{n}",
                "blue_picks": champs[:5],
                "red_picks": champs[5:],
                "blue_win": True,
            }
            n += 1
            data = data[:-1].rstrip() + b",\n  " + json.dumps(record).encode() + b"\n]"
            with gold.open("wb") as handle:  # not atomic, on purpose: this is what the collector does
                for start in range(0, len(data), 1 << 16):
                    handle.write(data[start : start + (1 << 16)])
                    handle.flush()

    writer = threading.Thread(target=collector, daemon=True)
    writer.start()
    try:
        for trial in range(runs):
            out.trials += 1
            proc = run_cli(root, "-q", "refresh-history", *(["--full"] if trial % 2 else []))
            named = proc.returncode == 1 and "matches_GOLD.json" in proc.stderr
            if not (proc.returncode == 0 or named) or "Traceback" in proc.stderr:
                how = (
                    f"killed by signal {-proc.returncode}"
                    if proc.returncode < 0
                    else f"exit {proc.returncode}"
                )
                out.fail(f"run {trial}: {how}: {tail(proc.stderr)}")
    finally:
        stop.set()
        writer.join(timeout=30)
    nxt = run_cli(root, "-q", "refresh-history")
    incremental = (root / "ml_pipeline/history_index.json").read_bytes()
    full = run_cli(root, "-q", "refresh-history", "--full")
    if (
        nxt.returncode
        or full.returncode
        or (root / "ml_pipeline/history_index.json").read_bytes() != incremental
    ):
        out.fail(f"after the collector stopped: exit {nxt.returncode}/{full.returncode}: {tail(nxt.stderr)}")
    return out
