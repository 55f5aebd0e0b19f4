"""Scenarios about the storage under the tool: full, read-only and faulty file systems, permissions."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
from pathlib import Path

from tests.ddragon_server import json_reply
from tests.reliability.harness import (
    JOBS,
    STATE,
    Outcome,
    can_mount,
    make_root,
    run_cli,
    snapshot,
    tail,
    umount,
)
from tests.reliability.scenario_inputs import change_inputs, ddragon, grow_history


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
    with ddragon() as server:
        env = {"STRATMANCER_DDRAGON_URL": server.base_url}
        for n, (cmd, (_, outputs)) in enumerate(JOBS.items()):
            out.trials += 1
            root = make_root(base, f"readonly-{n}")
            run_cli(root, "-q", cmd, env=env)
            change_inputs(cmd, root, random.Random(n), 1000 + n, server)
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


def permissions(base: Path) -> Outcome:
    """Replacement keeps mode and group; with umask 000 nothing new is world-writable; locks stay."""
    out = Outcome(
        "permissions",
        checked="mode and group kept on replace (index, registry, meta, state); "
        "umask 000: state, lock, cache files and their dirs not world-writable; lock files kept",
    )
    root = make_root(base, "perms")
    with ddragon() as server:
        env = {"STRATMANCER_DDRAGON_URL": server.base_url}
        for cmd in JOBS:
            run_cli(root, "-q", cmd, env=env)
        targets = [root / rel for cmd in JOBS for rel in JOBS[cmd][1]] + [root / STATE]
        group = 33 if os.geteuid() == 0 else os.getgid()
        for path in targets:
            os.chmod(path, 0o640)
            if os.geteuid() == 0:
                os.chown(path, -1, group)
        grow_history(root, random.Random(1), 0)  # so that the index is rewritten
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
