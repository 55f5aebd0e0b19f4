"""Delivery under kills (issue 19): every change a job writes reaches the app, whatever stops the run.

A recording command hook (``recording_hook.py``) stands in for the app: it notes the changed file as
it is on disk when told. ``kill_points`` stops a run at each exact point -- right before the output's
rename (its change already stored as owed), right after it, during the hook, after the hooks -- with
each signal (``hooks/sitecustomize.py``'s ``STRATMANCER_TEST_STOP``, the hook's own
``STRATMANCER_TEST_HOOK_STOP``), then makes a clean run: the app must have been told the output now on
disk. ``random_kills`` does the same at random moments of the run, hooks included, for
``scripts/reliability.py``'s large counts, and counts lost changes, orphan processes and tracebacks.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.ddragon_server import DDragonServer, json_reply
from tests.reliability.harness import (
    JOBS,
    STATE,
    Outcome,
    child_env,
    command,
    make_root,
    run_cli,
    started,
    tail,
)
from tests.reliability.scenario_inputs import ddragon, grow_history

RECORDING_HOOK = Path(__file__).resolve().parent / "recording_hook.py"
POINTS = ("before-rename", "after-rename", "hook", "after-hooks")
ORPHAN_GRACE_S = 2.0


def hooked_root(base: Path, cmd: str) -> tuple[Path, Path]:
    """A deployment root whose job ``cmd`` has the recording hook; the hook's log."""
    root = make_root(base, f"delivery-{cmd}")
    log = root / "hook-calls.jsonl"
    argv = [sys.executable, str(RECORDING_HOOK), str(log)]
    (root / "config/jobs.toml").write_text(
        f"[[jobs.{JOBS[cmd][0]}.on_change]]\ncommand = {json.dumps(argv)}\ntimeout_seconds = 60\n",
        encoding="utf-8",
    )
    return root, log


def change_output(cmd: str, root: Path, server: DDragonServer, serial: int) -> None:
    """Change the job's inputs so that its next run changes its output (and owes the hooks)."""
    if cmd == "refresh-history":
        grow_history(root, random.Random(serial), serial)
    elif cmd == "refresh-registry":  # every card: the active ones change too
        for card in sorted((root / "ml_pipeline/models/modelcards").glob("modelcard_*.json")):
            data = json.loads(card.read_bytes())
            data["metrics"]["serial"] = serial
            card.write_text(json.dumps(data), encoding="utf-8")
    else:
        server.script("/api/versions.json", json_reply([f"17.{serial}.1"]))


def calls(log: Path) -> list[dict[str, Any]]:
    """The recording hook's calls so far, oldest first."""
    try:
        text = log.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def job_record(root: Path, cmd: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((root / STATE).read_text())["jobs"].get(JOBS[cmd][0], {})
    return record


def _essence(cmd: str, text: str | None) -> object:
    """What the app's state depends on: the index's bytes, the registry's active and served models
    with their files' identities, the patch (timestamps rewritten by every run left out)."""
    if text is None or cmd == "refresh-history":
        return text
    data = json.loads(text)
    if cmd == "refresh-registry":
        return [data.get(key) for key in ("active", "served", "served_files")]
    return data.get("patch")


def unseen(root: Path, cmd: str, log: Path, *, exact: bool) -> str | None:
    """None when the app's last notice shows the job's output as it is on disk; else what differs.

    ``exact``: byte for byte (the clean run that delivered it rewrote nothing since); else by essence.
    """
    output = str(root / JOBS[cmd][1][0])
    current = (root / JOBS[cmd][1][0]).read_text(encoding="utf-8")
    seen = [c["files"][output] for c in calls(log) if output in c["files"]]
    if not seen:
        return "the app was never told of the output"
    if (seen[-1] == current) if exact else (_essence(cmd, seen[-1]) == _essence(cmd, current)):
        return None
    return "lost change: the app's last notice shows an older output"


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def processes_of(root: Path) -> list[int]:
    """Pids of live processes (other than this one) whose command line names ``root``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if str(root).encode() in cmdline and alive(int(entry)):
            pids.append(int(entry))
    return pids


def _reap_orphans(root: Path) -> int:
    """Count the processes of ``root`` still alive ORPHAN_GRACE_S after a run ended, and kill them."""
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while (left := processes_of(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(left)


def _check_stopped(
    out: Outcome, where: str, root: Path, cmd: str, sig: signal.Signals, returncode: int, stderr: str
) -> None:
    """What a stopped run must leave: its exit status, its record (not for SIGKILL), the change owed."""
    if "Traceback" in stderr:
        out.fail(f"{where}: traceback: {tail(stderr)}")
    record = job_record(root, cmd)
    expected = {signal.SIGKILL: -9, signal.SIGTERM: 143, signal.SIGALRM: 1}[sig]
    if returncode != expected:
        out.fail(f"{where}: exit {returncode}, expected {expected}: {tail(stderr)}")
    elif sig != signal.SIGKILL:
        message = record.get("last_error_message") or ""
        why = "terminated by SIGTERM" if sig == signal.SIGTERM else "timed out"
        if record.get("running") is not None or record.get("last_status") != "error" or why not in message:
            out.fail(f"{where}: run not recorded as stopped: {record.get('last_status')} {message!r}")
    if record.get("pending_change") is None:
        out.fail(f"{where}: the change is not owed after the stop (lost)")


def kill_points(
    base: Path, cmd: str, signals: tuple[signal.Signals, ...] = (signal.SIGKILL, signal.SIGTERM)
) -> Outcome:
    """Stop ``cmd`` at every point with every signal, each followed by a clean run that must tell the
    app of the output on disk (byte for byte)."""
    out = Outcome(
        f"kill points {cmd}",
        checked="stopped at before-rename/after-rename/hook/after-hooks: exit -9/143/1, recorded, change "
        "owed, hook's process group gone; the clean run tells the app the current output",
    )
    root, log = hooked_root(base, cmd)
    output = str(root / JOBS[cmd][1][0])
    serial = 0
    with ddragon() as server:
        env = {"STRATMANCER_DDRAGON_URL": server.base_url}
        first = run_cli(root, "-q", cmd, env=env)
        if first.returncode != 0:
            out.fail(f"first run exit {first.returncode}: {tail(first.stderr)}")
            return out
        for point in POINTS:
            for sig in signals:
                out.trials += 1
                serial += 1
                where = f"{cmd} {sig.name} at {point}"
                change_output(cmd, root, server, serial)
                stop = (
                    {"STRATMANCER_TEST_HOOK_STOP": sig.name}
                    if point == "hook"
                    else {"STRATMANCER_TEST_STOP": f"{point}:{sig.name}:{output}"}
                )
                stopped = run_cli(root, "-q", cmd, env={**env, **stop}, hooks=True, timeout=60)
                _check_stopped(out, where, root, cmd, sig, stopped.returncode, stopped.stderr)
                if point == "hook":
                    hook_pid = calls(log)[-1]["pid"]
                    if not _gone_within(hook_pid, ORPHAN_GRACE_S):
                        out.fail(f"{where}: the hook (pid {hook_pid}) still runs after its runner stopped")
                        with contextlib.suppress(OSError):
                            os.kill(hook_pid, signal.SIGKILL)
                told = len(calls(log))
                clean = run_cli(root, "-q", cmd, env=env, timeout=60)
                if clean.returncode != 0 or "Traceback" in clean.stderr:
                    out.fail(f"{where}: clean run exit {clean.returncode}: {tail(clean.stderr)}")
                if len(calls(log)) <= told:
                    out.fail(f"{where}: the clean run did not run the hook for the owed change")
                if (problem := unseen(root, cmd, log, exact=True)) is not None:
                    out.fail(f"{where}: {problem}")
                if job_record(root, cmd).get("pending_change") is not None:
                    out.fail(f"{where}: a change is still pending after the clean run")
    return out


def random_kills(base: Path, cmd: str, trials: int, *, seed: int = 0) -> Outcome:
    """``trials`` runs of ``cmd`` that change its output, each stopped (SIGKILL or SIGTERM in turn) at a
    random moment of the run, hooks included, then a clean run: counts lost changes, orphans (a process
    of the run alive 2 s after it ended) and tracebacks."""
    rng = random.Random(seed)
    root, log = hooked_root(base, cmd)
    lost = orphans = tracebacks = 0
    out = Outcome(f"random kills {cmd}")
    with ddragon() as server:
        env = {"STRATMANCER_DDRAGON_URL": server.base_url}
        run_cli(root, "-q", cmd, env=env)
        change_output(cmd, root, server, -1)
        t0 = time.monotonic()
        run_cli(root, "-q", cmd, env=env)
        length = time.monotonic() - t0  # a run that changes the output and runs the hook
        for trial in range(trials):
            out.trials += 1
            change_output(cmd, root, server, trial)
            sig = (signal.SIGKILL, signal.SIGTERM)[trial % 2]
            delay = rng.uniform(0, length)
            with started([command(root, "-q", cmd)], child_env(env)) as (proc,):
                time.sleep(delay)
                proc.send_signal(sig)
                _, stderr = proc.communicate(timeout=60)
            where = f"trial {trial} ({sig.name} at {delay:.3f}s)"
            if "Traceback" in stderr:
                tracebacks += 1
                out.fail(f"{where}: traceback: {tail(stderr)}")
            if left := _reap_orphans(root):
                orphans += left
                out.fail(f"{where}: {left} process(es) still alive {ORPHAN_GRACE_S:g} s after the run")
            clean = run_cli(root, "-q", cmd, env=env, timeout=60)
            if "Traceback" in clean.stderr:
                tracebacks += 1
                out.fail(f"{where}: traceback in the clean run: {tail(clean.stderr)}")
            if (problem := unseen(root, cmd, log, exact=False)) is not None:
                lost += 1
                out.fail(f"{where}: {problem} (clean run exit {clean.returncode})")
    out.checked = (
        f"SIGKILL/SIGTERM at random moments, hooks included, then a clean run: {lost} lost changes, "
        f"{orphans} orphans, {tracebacks} tracebacks"
    )
    return out
