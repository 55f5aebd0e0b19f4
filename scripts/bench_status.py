#!/usr/bin/env python3
"""Benchmark `status` start-up against a minimal Typer app (not a timed test).

Both are whole processes started by the same interpreter in the same venv, taken in turn (A B A B ...)
so that a drift in the machine's speed hits both; the figures are medians of N runs and the ratio is
status / minimal. The minimal app has one command and one option. `status` runs against a deployment
root holding a state file with all three jobs recorded (plain output: stdout is a pipe, as under cron).
Usage: ``python scripts/bench_status.py [--runs N] [--root DIR] [--json]`` (``--json``: `status --json`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MINIMAL = '''
from typing import Annotated

import typer

app = typer.Typer()


@app.command()
def main(name: Annotated[str, typer.Option(help="Who to greet.")] = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


app()
'''


def _sample_root(base: Path) -> Path:
    """A deployment root whose state holds a success, a failure and a running job."""
    sys.path.insert(0, str(REPO))
    from stratmancer_jobs.config import load_settings
    from tests.status_fixtures import sample_report

    root = base / "deploy"
    root.mkdir()
    sample_report(load_settings(root, {"TZ": "UTC"}))
    return root


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--root", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TZ": "UTC"}
    with tempfile.TemporaryDirectory() as tmp:
        minimal = Path(tmp) / "minimal_app.py"
        minimal.write_text(MINIMAL, encoding="utf-8")
        root = args.root or _sample_root(Path(tmp))
        status = [sys.executable, "-m", "stratmancer_jobs", "--root", str(root), "status"]
        if args.json:
            status.append("--json")
        baseline = [sys.executable, str(minimal), "--name", "x"]
        # current .pyc files first: under PYTHONDONTWRITEBYTECODE an edited module would be compiled
        # again in every timed run (a user's installed copy has its .pyc files)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "stratmancer_jobs")], check=True)
        for _ in range(2):  # warm-up: the page cache
            _time(status, env)
            _time(baseline, env)
        a: list[float] = []
        b: list[float] = []
        for _ in range(args.runs):
            a.append(_time(status, env))
            b.append(_time(baseline, env))
    ma, mb = statistics.median(a), statistics.median(b)
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    print(f"status        median {ma * 1000:7.1f} ms  (min {min(a) * 1000:.1f}, max {max(a) * 1000:.1f})")
    print(f"minimal Typer median {mb * 1000:7.1f} ms  (min {min(b) * 1000:.1f}, max {max(b) * 1000:.1f})")
    print(f"ratio of medians {ma / mb:.2f}x; median of paired ratios {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
