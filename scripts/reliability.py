"""Run the reliability scenarios of tests/reliability at large counts and print one table.

    python scripts/reliability.py                      # 3x20 load + 20 readers, 50 SIGKILLs per job, ...
    python scripts/reliability.py --kills 100 --examples 500
    python scripts/reliability.py --only crash
    python scripts/reliability.py --only "random kills" --delivery-kills 100   # issue 19's families
    python scripts/reliability.py --only "hostile environment"   # special files at every path

The scenario code is the tests' own (tests/reliability/scenarios.py and hostile.py); only the counts
differ. Exit status 1 when any scenario had a failure; the first failures of each are listed below
the table.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.reliability import hostile, scenario_delivery, scenario_hostile_env, scenarios  # noqa: E402
from tests.reliability.harness import JOBS, Outcome  # noqa: E402


def _plan(args: argparse.Namespace) -> list[tuple[str, Callable[[Path], Outcome]]]:
    plan: list[tuple[str, Callable[[Path], Outcome]]] = [
        ("load", lambda base: scenarios.load(base, args.load, args.load, seed=args.seed)),
    ]
    for cmd in JOBS:
        plan.append(
            (f"crash {cmd}", lambda base, cmd=cmd: scenarios.crashes(base, cmd, args.kills, seed=args.seed))
        )
    for cmd in JOBS:
        plan.append(
            (
                f"sigterm {cmd}",
                lambda base, cmd=cmd: scenarios.crashes(
                    base, cmd, args.kills // 2, seed=args.seed, sig=signal.SIGTERM
                ),
            )
        )
    for cmd in JOBS:
        plan.append(
            (
                f"kill points {cmd}",
                lambda base, cmd=cmd: scenario_delivery.kill_points(
                    base, cmd, (signal.SIGKILL, signal.SIGTERM, signal.SIGALRM)
                ),
            )
        )
    for cmd in JOBS:
        plan.append(
            (
                f"random kills {cmd}",
                lambda base, cmd=cmd: scenario_delivery.random_kills(
                    base, cmd, args.delivery_kills, seed=args.seed
                ),
            )
        )
    plan += [
        ("timeouts", lambda base: scenarios.timeouts(base, args.kills // 2, seed=args.seed)),
        ("collector", lambda base: scenarios.collector_rewrites(base, args.kills // 2, seed=args.seed)),
        ("corrupt cache", lambda base: scenarios.corrupt_cache(base, seed=args.seed)),
        ("bad matches", lambda base: hostile.match_files(base, args.examples, rng_seed=args.seed)),
        ("bad cards", lambda base: hostile.model_cards(base, args.examples, rng_seed=args.seed)),
        ("bad http", lambda base: hostile.http_bodies(base, args.examples, rng_seed=args.seed)),
        ("storage", scenarios.storage_faults),
        ("storage simulated", lambda base: scenarios.storage_faults(base, real_mounts=False)),
        ("corrupt state", scenarios.corrupt_state),
        ("secrets", scenarios.secrets),
        ("paths", scenarios.paths),
        ("permissions", scenarios.permissions),
    ]
    plan += _hostile_environment_plan()
    return [(name, run) for name, run in plan if not args.only or any(o in name for o in args.only)]


# --- hostile environment (issue 20): a special file at every path the tool reads or writes -----------


def _hostile_environment_plan() -> list[tuple[str, Callable[[Path], Outcome]]]:
    """FIFO, device, symlink loop, directory, 10 MB, /dev/zero and a link out at every path
    (tests/reliability/scenario_hostile_env.py): tracebacks, hangs, crashes, writes through links."""
    return [("hostile environment", scenario_hostile_env.special_files)]


def _table(rows: list[tuple[Outcome, float]]) -> str:
    head = ("scenario", "trials", "failures", "seconds", "checked")
    cells = [head] + [
        (o.scenario, str(o.trials), str(len(o.failures)), f"{secs:.1f}", o.checked) for o, secs in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = []
    for n, row in enumerate(cells):
        name, trials, failures, secs, checked = row
        w0, w1, w2, w3 = widths
        lines.append(f"{name:<{w0}}  {trials:>{w1}}  {failures:>{w2}}  {secs:>{w3}}  {checked}")
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--load", type=int, default=20, help="processes per job, and status readers (20)")
    parser.add_argument("--kills", type=int, default=50, help="SIGKILL trials per job (50)")
    parser.add_argument(
        "--delivery-kills",
        type=int,
        default=100,
        help="runs with a recording hook stopped at random moments, per job (100)",
    )
    parser.add_argument("--examples", type=int, default=300, help="hypothesis examples per input kind (300)")
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed for kills, load order and hypothesis"
    )
    parser.add_argument("--only", nargs="*", help="run only scenarios whose name contains one of these")
    args = parser.parse_args()
    rows: list[tuple[Outcome, float]] = []
    with tempfile.TemporaryDirectory(prefix="stratmancer-reliability-") as tmp:
        for i, (name, run) in enumerate(_plan(args)):
            base = Path(tmp) / f"{i}-{name.replace(' ', '-')}"
            base.mkdir()
            print(f"running {name} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            rows.append((run(base), time.monotonic() - t0))
    print(_table(rows))
    total = sum(len(o.failures) for o, _ in rows)
    for outcome, _ in rows:
        for failure in outcome.failures[:5]:
            print(f"  {outcome.scenario}: {failure}")
    print(f"\n{sum(o.trials for o, _ in rows)} trials, {total} failures")
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main())
