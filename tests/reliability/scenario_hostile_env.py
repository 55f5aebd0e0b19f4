"""The hostile-environment family: a special file at every path the tool reads or writes.

For each path (config, inputs, outputs, state, locks, cache, logs, progress, the metrics file) and each
kind of hostile file (a FIFO, a character device, a symlink loop, a directory, 10 MB of junk, a
symlink to /dev/zero, a symlink to a file outside the root), the commands that touch the path run as
real CLI processes with a timeout and a memory limit. Counted: tracebacks, hangs (the timeout hit),
crashes (killed by a signal, an exit status outside the contract) and writes through links (the
outside file's bytes or mode changed). Every other outcome -- a clear error, a warning, a path
replaced -- is the tool's choice and is not judged here.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import stat
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.reliability.harness import Outcome, child_env, command, make_root
from tests.reliability.scenario_inputs import ddragon

HANG_S = 10.0  # a command that takes longer is hung (every command here finishes in about a second)
MEMORY_LIMIT = 2 << 30  # a child reading /dev/zero to the end stops at 2 GiB, not at the machine's RAM
JUNK = 10 * 1024 * 1024
OUTSIDE_BYTES = b"outside the deployment: must never be written\n"

STATUS = ("status", "status --check", "status --json")
HISTORY = ("refresh-history", "status refresh-history")
REGISTRY = ("refresh-registry", "status refresh-registry")
PATCH = ("refresh-patch", "status refresh-patch")
EVERY_JOB = ("refresh-history", "refresh-registry", "refresh-patch", *STATUS)

# path relative to the root -> the commands that read or write it
PATHS: dict[str, tuple[str, ...]] = {
    "config/jobs.toml": EVERY_JOB,
    "config/meta.json": PATCH,
    "data/processed/matches_GOLD.json": HISTORY,
    "ml_pipeline/history_index.json": HISTORY,
    "ml_pipeline/history_index.meta.json": HISTORY,
    "ml_pipeline/model_registry.json": REGISTRY,
    "ml_pipeline/models/modelcards/modelcard_mid_20251020_120000.json": REGISTRY,
    "state/jobs_state.json": EVERY_JOB,
    "state/jobs_state.json.lock": ("refresh-registry", *STATUS),
    "state/locks/refresh_model_registry.lock": REGISTRY,
    "state/history_cache": HISTORY,
    "state/history_cache/manifest.json": HISTORY,
    "state/history_cache/group_HIGH.bin": HISTORY,
    "state/progress/refresh_history_index.json": HISTORY,
    "logs/stratmancer-jobs.log": ("refresh-registry",),
    "metrics/stratmancer.prom": ("refresh-registry", "status"),
}
METRICS = "metrics/stratmancer.prom"


def _fifo(path: Path, outside: Path) -> None:
    os.mkfifo(path)


def _device(path: Path, outside: Path) -> None:
    """A character device node like /dev/null (root may make one); a symlink to /dev/null otherwise."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError:
        path.symlink_to("/dev/null")


def _loop(path: Path, outside: Path) -> None:
    path.symlink_to(path.name)


def _directory(path: Path, outside: Path) -> None:
    path.mkdir()
    (path / "junk").write_text("x")


def _big(path: Path, outside: Path) -> None:
    with path.open("wb") as handle:
        handle.write(os.urandom(1024) * (JUNK // 1024))


def _zero(path: Path, outside: Path) -> None:
    path.symlink_to("/dev/zero")


def _outside_link(path: Path, outside: Path) -> None:
    path.symlink_to(outside)


KINDS: dict[str, Callable[[Path, Path], None]] = {
    "fifo": _fifo,
    "device": _device,
    "symlink loop": _loop,
    "directory": _directory,
    "10 MB": _big,
    "/dev/zero": _zero,
    "link out": _outside_link,
}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _plant(root: Path, rel: str, kind: str, outside: Path) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    KINDS[kind](path, outside)


def _prepare(base: Path, name: str) -> Path:
    """A root that has run every job once, so every output, cache and state file exists."""
    root = make_root(base, name)
    (root / "config/meta.json").write_text('{"patch": "16.23"}\n', encoding="utf-8")
    return root


def special_files(base: Path, *, only: tuple[str, ...] = ()) -> Outcome:
    """Every (path, kind) pair, or those whose path contains one of ``only``: see the module docstring."""
    out = Outcome(
        "hostile environment",
        checked="FIFO, device, symlink loop, directory, 10 MB, /dev/zero and a link out at every path "
        "read or written: no traceback, no hang, no crash, no write through a link",
    )
    codes: Counter[int] = Counter()
    with ddragon() as server:
        env = child_env({"STRATMANCER_DDRAGON_URL": server.base_url, "OPENBLAS_NUM_THREADS": "1"})
        clean = _prepare(base, "clean")
        for cmd in ("refresh-history", "refresh-registry", "refresh-patch"):
            subprocess.run(command(clean, cmd), env=env, capture_output=True, timeout=120, check=False)
        for n, (rel, commands) in enumerate(PATHS.items()):
            if only and not any(o in rel for o in only):
                continue
            for kind in KINDS:
                root = base / f"r{n}-{kind.replace(' ', '-').replace('/', '')}"
                shutil.copytree(clean, root, symlinks=True)
                outside = base / f"outside-{n}-{kind.replace(' ', '-').replace('/', '')}"
                outside.write_bytes(OUTSIDE_BYTES)
                outside.chmod(0o600)
                _plant(root, rel, kind, outside)
                for cmd in commands:
                    out.trials += 1
                    args = cmd.split()
                    if rel == METRICS:
                        args = ["--metrics-file", str(root / METRICS), *args]
                    label = f"{kind} at {rel}: {cmd}"
                    try:
                        proc = subprocess.run(
                            command(root, *args),
                            env=env,
                            capture_output=True,
                            text=True,
                            errors="replace",
                            timeout=HANG_S,
                            check=False,
                            preexec_fn=_limit_memory,
                            stdin=subprocess.DEVNULL,
                        )
                    except subprocess.TimeoutExpired:
                        out.fail(f"{label}: hung (no exit within {HANG_S:g} s)")
                        continue
                    codes[proc.returncode] += 1
                    if "Traceback" in proc.stderr or "Traceback" in proc.stdout:
                        last = proc.stderr.strip().splitlines()[-1:] or [""]
                        out.fail(f"{label}: traceback ({last[0][:160]})")
                    elif proc.returncode not in (0, 1, 2):
                        out.fail(f"{label}: exit {proc.returncode} (crash)")
                if outside.read_bytes() != OUTSIDE_BYTES or stat.S_IMODE(outside.stat().st_mode) != 0o600:
                    out.fail(f"{kind} at {rel}: the file outside the root was written through the link")
                _unblock(root / rel)
    out.checked += f"; exit codes {dict(sorted(codes.items()))}"
    return out


def _unblock(path: Path) -> None:
    """Remove a planted FIFO so that nothing left behind can block a later reader of the tree."""
    with contextlib.suppress(OSError):
        if stat.S_ISFIFO(path.lstat().st_mode):
            path.unlink()
