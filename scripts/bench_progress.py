#!/usr/bin/env python3
"""Does publishing progress for `status --watch` slow refresh-history? (a measurement, not a test)

refresh-history --full on a copy of the shipped sample data, in one process, three ways taken in turn
(A B C A B C ...): without a progress file (the runner's recorder replaced by the bare sink), with it as
shipped (rewritten at most once a second), and unthrottled (rewritten at every report) to show what the
throttle saves. ``--scale N`` repeats every JSONL line N times in the copy for a larger input.
Usage: ``python scripts/bench_progress.py [--runs N] [--scale N]``; prints medians and the ratios.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stratmancer_jobs import progressfile, runner  # noqa: E402
from stratmancer_jobs.config import load_settings  # noqa: E402
from stratmancer_jobs.jobtable import find_job  # noqa: E402


def _root(base: Path, scale: int) -> Path:
    root = base / "deploy"
    shutil.copytree(REPO / "data", root / "data")
    if scale > 1:
        for path in (root / "data" / "processed").glob("*.jsonl"):
            lines = path.read_bytes().splitlines(keepends=True)
            path.write_bytes(b"".join(lines * scale))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    log = logging.getLogger("bench")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    shipped = progressfile.progress_recorder
    writes = 0

    def counting(path: Path, draw: Callable[..., None] | None) -> Callable[..., None]:
        inner = shipped(path, draw)

        def report(p: object) -> None:
            nonlocal writes
            before = path.stat().st_mtime_ns if path.exists() else None
            inner(p)
            writes += path.exists() and path.stat().st_mtime_ns != before

        return report

    variants: dict[str, tuple[Callable[..., Callable[..., None]], float]] = {
        "no progress file": (lambda path, draw: draw or (lambda p: None), progressfile.PROGRESS_EVERY_S),
        "progress file, at most 1/s (shipped)": (shipped, progressfile.PROGRESS_EVERY_S),
        "progress file, every report (no throttle)": (counting, 0.0),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(_root(Path(tmp), args.scale), {"TZ": "UTC"})
        spec = find_job("refresh-history")
        for i in range(args.runs + 2):  # the first two rounds warm the page cache and are not counted
            for name, (recorder, every_s) in variants.items():
                runner.progress_recorder = recorder  # type: ignore[assignment]
                progressfile.PROGRESS_EVERY_S = every_s
                t0 = time.perf_counter()
                outcome = runner.run_job(
                    spec, settings, log=log, options={"full": True}, progress=lambda p: None
                )
                elapsed = time.perf_counter() - t0
                assert outcome.status == "success", outcome
                if i >= 2:
                    times[name].append(elapsed)
    base = statistics.median(times["no progress file"])
    print(f"refresh-history --full, {args.runs} runs each, sample data x{args.scale}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:44s} median {med * 1000:7.2f} ms  (min {min(values) * 1000:.2f})  x{med / base:.3f}")
    per_run = writes / (args.runs + 2)
    print(f"  unthrottled: {per_run:.0f} progress-file writes a run; shipped: at most one a second")


if __name__ == "__main__":
    main()
