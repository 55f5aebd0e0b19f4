"""Scenarios about runs themselves: concurrent load, crashes at any moment, timeouts, collector rewrites."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path

from tests.reliability.harness import (
    JOBS,
    STATE,
    Outcome,
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
    wait_lock_free,
)
from tests.reliability.scenario_inputs import change_inputs, ddragon, grow_history


def load(base: Path, per_job: int, readers: int, *, seed: int = 0) -> Outcome:
    """Every job ``per_job`` times and ``readers`` status readers, all started at once, in random order."""
    out = Outcome(
        "load",
        checked="per job success+error+skipped == runs started, no errors; state and "
        "outputs parse; every status --json reader exit 0 and complete",
    )
    root = make_root(base)
    with ddragon() as server:
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
    with ddragon() as server:
        env = {"STRATMANCER_DDRAGON_URL": server.base_url}
        first = run_cli(root, cmd, env=env)
        if first.returncode != 0:
            out.fail(f"first run exit {first.returncode}: {tail(first.stderr)}")
            return out
        lengths: dict[bool, float] = {}
        for slow in (False, True):  # the length of a run with changed inputs, as in the trials
            change_inputs(cmd, root, rng, -1 - slow, server)
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
            change_inputs(cmd, root, rng, trial, server)
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
        grow_history(root, rng, 7000 + trial)
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
