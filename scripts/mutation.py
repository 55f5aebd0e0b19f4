"""Mutation score of the pure modules against their fast tests (mutmut), printed as a table.

    python scripts/mutation.py                    # every module in MODULES, one after another
    python scripts/mutation.py --module schedule  # one module

Each module is measured in its own scratch copy of the repository: a clone of HEAD with the working
tree's tracked and untracked (not ignored) files copied over, so uncommitted work is measured; the copy's
pyproject.toml gets that module's ``[tool.mutmut]`` section. The copy is deleted afterwards (``--keep``
keeps it, to run ``mutmut show <name>`` there). Exit status 1 when a module scores below ``--min``.

score = killed / (mutants - equivalent). A mutant counts as equivalent only when it is listed in
EQUIVALENT with the reason no test can tell it apart, and it survived; the names carry mutmut's
per-function numbering, so a listed name that is killed or missing is reported as stale.
Not part of .ci/run: it takes minutes.

Last measured with mutmut 3.8.1: kubernetes, counts, aggregate, fastrender and group on 2026-12-04
(one worker; the five took 30 min on a machine loaded ~6x), the others on 2026-11-30:

| module | mutants | killed | survived | no tests | score |
| --- | --- | --- | --- | --- | --- |
| `schedule` | 87 | 73 | 0 (+14 equivalent) | 0 | 100% |
| `patchver` | 42 | 42 | 0 | 0 | 100% |
| `clock` | 32 | 32 | 0 | 0 | 100% |
| `systemd` | 597 | 588 | 0 (+9 equivalent) | 0 | 100% |
| `kubernetes` | 703 | 700 | 0 (+3 equivalent) | 0 | 100% |
| `cards` | 279 | 276 | 0 (+3 equivalent) | 0 | 100% |
| `health` | 313 | 309 | 0 (+4 equivalent) | 0 | 100% |
| `hookspec` | 489 | 483 | 0 (+6 equivalent) | 0 | 100% |
| `served` | 267 | 263 | 0 (+4 equivalent) | 0 | 100% |
| `targets` | 70 | 70 | 0 | 0 | 100% |
| `counts` | 617 | 585 | 0 (+32 equivalent) | 0 | 100% |
| `aggregate` | 398 | 359 | 0 (+39 equivalent) | 0 | 100% |
| `fastrender` | 585 | 564 | 0 (+21 equivalent) | 0 | 100% |
| `group` | 149 | 144 | 0 (+5 equivalent) | 0 | 100% |
| `transitions` | 308 | 300 | 7 (+1 equivalent) | 0 | 98% |

transitions (2026-12-04, 1.5 min): the 7 survivors are ``mark_finished``'s ``inputs`` (freshness, issue
24: 6 mutants, no test here yet) and one of ``_newer``'s. Not measured yet (issue 25, phase 2):
hooks/deliver.py, runner.py, config.py, http.py.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module name -> (source file, the fast test files that exercise it)
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "schedule": ("stratmancer_jobs/schedule.py", ("tests/test_mut_schedule.py", "tests/test_health.py")),
    "patchver": ("stratmancer_jobs/patchver.py", ("tests/test_mut_patchver.py", "tests/test_patch.py")),
    "clock": ("stratmancer_jobs/clock.py", ("tests/test_mut_clock.py",)),
    "systemd": (
        "stratmancer_jobs/deploy/systemd.py",
        ("tests/test_deploy_systemd.py", "tests/test_mut_systemd.py"),
    ),
    "kubernetes": (
        "stratmancer_jobs/deploy/kubernetes.py",
        ("tests/test_deploy_kubernetes.py", "tests/test_mut_kubernetes.py"),
    ),
    "cards": (
        "stratmancer_jobs/jobs/registry/cards.py",
        ("tests/test_mut_cards.py", "tests/test_registry.py"),
    ),
    "health": (
        "stratmancer_jobs/health.py",
        ("tests/test_mut_health.py", "tests/test_health.py", "tests/test_health_stuck.py"),
    ),
    "hookspec": ("stratmancer_jobs/hookspec.py", ("tests/test_mut_hookspec.py", "tests/test_hooks_spec.py")),
    "served": (
        "stratmancer_jobs/jobs/registry/served.py",
        ("tests/test_mut_served.py", "tests/test_registry_served.py"),
    ),
    "targets": (
        "stratmancer_jobs/deploy/targets.py",
        ("tests/test_mut_targets.py", "tests/test_deploy_config.py"),
    ),
    "counts": (
        "stratmancer_jobs/jobs/history/counts.py",
        ("tests/test_mut_history.py", "tests/test_history_counts.py"),
    ),
    "aggregate": (
        "stratmancer_jobs/jobs/history/aggregate.py",
        ("tests/test_mut_history.py", "tests/test_history_counts.py"),
    ),
    "fastrender": ("stratmancer_jobs/jobs/history/fastrender.py", ("tests/test_history_fastrender.py",)),
    "group": (
        "stratmancer_jobs/jobs/history/group.py",
        ("tests/test_history_parallel.py", "tests/test_history_build.py"),
    ),
    "transitions": ("stratmancer_jobs/state/transitions.py", ("tests/test_mut_transitions.py",)),
}


def _strict_zips(*functions: tuple[str, tuple[int, ...]]) -> dict[str, str]:
    """The mutants that drop a ``zip(..., strict=True)`` whose inputs always have equal lengths."""
    reason = "zip strict=True dropped: the zipped sequences always have equal lengths"
    return {f"{fn}__mutmut_{n}": reason for fn, numbers in functions for n in numbers}


# module name -> {mutant name without the module prefix: why no test can tell it from the original}
EQUIVALENT: dict[str, dict[str, str]] = {
    "schedule": {
        # the start time handed to CronSim only seeds iteration; parsing and explain() never iterate
        **{
            f"x_{fn}__mutmut_{n}": f"{fn}: CronSim's start date/zone does not affect parsing or explain()"
            for fn, numbers in (("validate_cron", (11, 15, 16, 17, 18)), ("describe", (9, 13, 14, 15, 16)))
            for n in numbers
        },
        # an aware datetime converted to another zone is the same instant, and Python compares and
        # subtracts aware datetimes of different tzinfo objects by instant
        "x_interval_s__mutmut_9": "astimezone(None) on one side: same instant, subtraction is by instant",
        "x_interval_s__mutmut_16": "astimezone(None) on one side: same instant, subtraction is by instant",
        "x_is_due__mutmut_3": "astimezone(None) on one side: same instant, comparison is by instant",
        "x_is_due__mutmut_11": "astimezone(None) on one side: same instant, comparison is by instant",
    },
    "patchver": {},
    "clock": {},
    "systemd": {
        # cron_to_oncalendar validates with CronSim first: a range that reaches _parse_field is "a-b" with
        # one dash and two valid tokens, so _value never raises there
        "x__parse_field__mutmut_29": "rpartition vs partition: a validated range has exactly one '-'",
        "x__parse_field__mutmut_34": "expr=None for a range start: error text a valid range never reaches",
        "x__parse_field__mutmut_40": "expr=None for a range end: error text a valid range never reaches",
        "x__quote_word__mutmut_1": "executable=True default: stops '$' doubling; commands never hold '$'",
        # _seconds is called with accuracy_s (refused below 1 before) and a truthy randomized delay only
        "x__seconds__mutmut_1": "value <= 0: 0 never reaches _seconds (accuracy >= 1, delay if truthy)",
        "x__seconds__mutmut_2": "value < 1: 0 never reaches _seconds (accuracy >= 1, delay if truthy)",
        **{
            f"x_render_units__mutmut_{n}": "the 'timer accuracy' message: accuracy_s < 1 is refused earlier"
            for n in (176, 179, 180)
        },
    },
    "kubernetes": {
        # _emit recurses only into non-empty mappings and lists, and to_yaml gets mappings: the scalar
        # branch at its end is unreachable
        "x__emit__mutmut_39": "the scalar branch of _emit is unreachable (it recurses into containers only)",
        "x__emit__mutmut_40": "the scalar branch of _emit is unreachable (it recurses into containers only)",
        "x_check_schedule__mutmut_28": "index == 3 or a month name: CronSim refused anything else there",
    },
    "health": {
        "x__health__mutmut_3": "skew = None vs '': both falsy; skew is only tested for truth until set",
        # astimezone(None) gives a fixed-offset local zone: the same instant, and +/- timedelta on a fixed
        # offset is exact, so comparisons and differences by instant are unchanged
        "x__lateness__mutmut_2": "due.astimezone(None): same instant; due is only compared by instant",
        "x__lateness__mutmut_25": "first_missed.astimezone(None) + grace: same instant (fixed offset)",
        "x_compute_health__mutmut_2": "now.astimezone(None): same instant; now is only used by instant",
    },
    "hookspec": {
        **{
            f"x__url__mutmut_{n}": "placeholder stand-in for validation: 'x', 'X', 'XXxXX' parse alike "
            "(letters, not hex; the hostname is lowercased)"
            for n in (26, 27)
        },
        "x_expand__mutmut_19": "quote(safe='XXXX'): letters are never quoted, so the safe set is unchanged",
        "x_next_pending__mutmut_28": "succeeded=() dropped: () is the field's default",
        "xǁPendingChangeǁfrom_json__mutmut_50": "attempts > 0: a stored 0 becomes the fallback 0",
        "xǁPendingChangeǁfrom_json__mutmut_51": "attempts >= 1: a stored 0 becomes the fallback 0",
    },
    "served": {
        # os.O_CLOEXEC exists on Linux, so getattr's default is never used
        **{
            f"x_artifact_problem__mutmut_{n}": f"getattr(os, 'O_CLOEXEC', {d}): default unused on Linux"
            for n, d in ((39, "None"), (42, "<none>"), (45, "1"))
        },
        "x_artifact_problem__mutmut_72": "pread(fd, 2, size - 1): at the end of the file it returns 1 byte",
    },
    "targets": {},
    "counts": {
        # zip(..., strict=True) guards lengths that are always equal here (every counter has the index's size)
        **_strict_zips(
            ("x__add", (41, 44, 45, 56, 59, 60, 71, 74, 75)),
            ("x__add_rows", (10, 13, 14)),
            ("xǁCountsǁcount", (4, 7, 8)),
        ),
        **{f"x__add__mutmut_{n}": "sign is only ever +1 or -1" for n in (3, 4, 8)},
        "x_sum_counts__mutmut_10": "_add(..., 2): only the sign of 'sign' is used",
        "x_sum_counts__mutmut_19": "_add(..., -2): only the sign of 'sign' is used",
        "xǁCountsǁresize__mutmut_2": "size < old: at size == old it extends every counter by nothing",
        # fromiter's count only preallocates: the iterable holds exactly 5 * n picks either way
        **{
            f"xǁGroupStateǁ_count_numpy__mutmut_{n}": "fromiter without count: the same 5 * n picks"
            for n in (12, 31)
        },
        **{
            f"xǁGroupStateǁ_count_numpy__mutmut_{n}": "lookup table or search: the same dense positions"
            for n in (50, 51, 52, 63)
        },
        "xǁGroupStateǁ_count_numpy__mutmut_72": "np.array dtype=None: int64 by default for these ints",
        "xǁGroupStateǁ_count_numpy__mutmut_74": "np.array without dtype: int64 by default for these ints",
        "xǁGroupStateǁ_count_numpy__mutmut_86": "won as floats 0.0/1.0: np.where tests truth the same way",
        "xǁGroupStateǁ_count_numpy__mutmut_90": "fromiter without count: the same array",
        "xǁGroupStateǁ_dedup__mutmut_30": "first >= rank: first is another tier's rank there, never equal",
    },
    "aggregate": {
        # zip(..., strict=True) guards lengths that are always equal (every counter has the index's size)
        **_strict_zips(
            ("x__build_entry_loops", (19, 23, 24, 54, 58, 63, 71, 73, 74, 86, 90, 91)),
            ("x__fold", (10, 13, 14, 16, 17, 18)),
            ("x__build_entry_numpy", (30, 33, 38, 64, 67, 72, 91, 95, 96, 101, 104, 110)),
        ),
        "x__build_entry_loops__mutmut_69": "zip(*[]) is [] as well: the 'if size' guard changes nothing",
        "x_rate_cells__mutmut_4": "games >= 0: the thresholds are >= 1 (config), so games > 0 holds",
        "x_join_fragments__mutmut_13": "'ASCII' vs 'ascii': codec names are case-insensitive",
        "x_render__mutmut_8": "'UTF-8' vs 'utf-8': codec names are case-insensitive",
        "x_render_entry__mutmut_5": "msgspec.json.format's default indent is 2",
        "x_pair_keys__mutmut_3": "no memo hit: the keys are rebuilt, the same",
        "x_pair_keys__mutmut_4": "memo looked up under None: the keys are rebuilt, the same",
        "x_pair_keys__mutmut_13": "memo stores None: the keys are rebuilt next time, the same",
        "x_pair_keys__mutmut_9": "a <= b: the keys of an index are distinct",
    },
    "cards": {
        "x__bare_name__mutmut_15": "value in ('.', '..'): '..' is refused again by the '..' in value test",
        "x_pick_active__mutmut_6": "> vs >=: equal (timestamp, file) is the same file, read once per run",
        "x_validate_card__mutmut_20": "'UTF-8' vs 'utf-8': codec names are case-insensitive",
    },
    "fastrender": {
        **{
            f"xǁGroupNamesǁof__mutmut_{n}": "np.empty without dtype=int64: float64 ranks, small whole floats "
            "that sort the same"
            for n in (52, 54, 59, 61)
        },
        **_strict_zips(
            ("x__pack", (26, 29, 30)),
            ("x_render_arrays", (80, 83, 84)),
            ("xǁGroupNamesǁof", (138, 141, 144)),
        ),
        "x_render_arrays__mutmut_125": "'ascii' vs 'ASCII': codec names are case-insensitive",
        "xǁGroupNamesǁof__mutmut_5": "'ascii' vs 'ASCII': codec names are case-insensitive",
        "xǁGroupNamesǁof__mutmut_15": "default width 1 for no names: an empty matrix either way",
        "xǁGroupNamesǁof__mutmut_26": "padding with spaces instead of NULs: the mask drops the padding",
        "xǁGroupNamesǁof__mutmut_76": "<= vs <: i < j, and distinct keys have distinct ranks",
        **{
            f"xǁGroupNamesǁof__mutmut_{n}": "argsort kind: distinct sort keys, every sort gives one order"
            for n in (92, 94, 98)
        },
    },
    "transitions": {
        "x_mark_failed_unrun__mutmut_3": "ok=None instead of False: mark_finished only tests ok for truth",
    },
    "group": {
        **{
            f"xǁLogBufferǁ__init____mutmut_{n}": "the buffer's name and level: its records are replayed "
            "through the caller's logger, and a logger without a parent is enabled for every level"
            for n in (1, 3, 4, 5, 6)
        },
    },
}

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
RESULT_RE = re.compile(r"^\s*(?P<name>\S+): (?P<status>.+?)\s*$")


@dataclass
class Score:
    module: str
    mutants: int
    killed: int
    survived: list[str]
    no_tests: list[str]
    equivalent: list[str]
    stale: list[str]

    @property
    def score(self) -> float:
        counted = self.mutants - len(self.equivalent)
        return 1.0 if counted == 0 else self.killed / counted


def scratch_copy(dest: Path) -> None:
    """Clone HEAD into ``dest`` and copy the working tree's tracked and untracked files over it."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():  # a deleted tracked file is listed too: the copy keeps HEAD's, harmless
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def toml_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def mutmut_section(source: str, tests: tuple[str, ...]) -> str:
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["stratmancer_jobs"]\n'
        'also_copy = ["ml_pipeline", "config", "data", "crontab.example"]\n'
        f"only_mutate = {toml_list([source])}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
    )


def mutmut_bin() -> str:
    found = Path(sys.executable).parent / "mutmut"
    if not found.exists():
        sys.exit(f"mutmut not found next to {sys.executable}: pip install -e '.[test]'")
    return str(found)


def natural(name: str) -> tuple[str, int]:
    """``x_f__mutmut_10`` after ``x_f__mutmut_9``."""
    stem, _, number = name.rpartition("_")
    return stem, int(number) if number.isdigit() else 0


def parse_results(text: str, prefix: str) -> dict[str, str]:
    """``mutmut results --all true`` lines -> {mutant name without ``prefix``: status}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = RESULT_RE.match(line)
        if match and match["name"].startswith(prefix):
            out[match["name"][len(prefix) :]] = match["status"]
    return out


def measure(module: str, keep: bool, children: int, exclude: list[str]) -> Score:
    source, tests = MODULES[module]
    scratch = Path(tempfile.mkdtemp(prefix=f"mutation-{module}-"))
    try:
        copy = scratch / "repo"
        scratch_copy(copy)
        # a test file not written yet is skipped, and so is one excluded (to see what it adds)
        tests = tuple(
            t for t in tests if (copy / t).exists() and not any(fnmatch.fnmatch(t, x) for x in exclude)
        )
        if not tests:
            sys.exit(f"{module}: none of its test files exist ({', '.join(MODULES[module][1])})")
        with (copy / "pyproject.toml").open("a", encoding="utf-8") as fh:
            fh.write(mutmut_section(source, tests))
        tool = mutmut_bin()
        run = subprocess.run(
            [tool, "run", "--max-children", str(children)], cwd=copy, capture_output=True, text=True
        )
        results = subprocess.run([tool, "results", "--all", "true"], cwd=copy, capture_output=True, text=True)
        prefix = source.removesuffix(".py").replace("/", ".") + "."
        statuses = parse_results(results.stdout, prefix)
        if not statuses or all(s == "not checked" for s in statuses.values()):
            sys.exit(f"{module}: mutmut produced no results\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    finally:
        if keep:
            print(f"{module}: scratch copy kept at {scratch / 'repo'}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    listed = EQUIVALENT.get(module, {})
    survived = sorted((n for n, s in statuses.items() if s == "survived" and n not in listed), key=natural)
    return Score(
        module=module,
        mutants=len(statuses),
        killed=sum(s in KILLED for s in statuses.values()),
        survived=survived,
        no_tests=sorted((n for n, s in statuses.items() if s == "no tests"), key=natural),
        equivalent=sorted(n for n in listed if statuses.get(n) == "survived"),
        stale=sorted(n for n in listed if statuses.get(n) != "survived"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--module", choices=sorted(MODULES), action="append", help="measure only this module (repeatable)"
    )
    parser.add_argument("--min", type=float, default=90.0, help="lowest passing score in percent")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies")
    parser.add_argument(
        "--exclude-tests",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave these test files out (e.g. 'tests/test_mut_*' to see the score without them)",
    )
    parser.add_argument("--max-children", type=int, default=1, help="mutmut workers (default 1)")
    args = parser.parse_args()
    scores = [
        measure(m, args.keep, args.max_children, args.exclude_tests) for m in (args.module or list(MODULES))
    ]
    print("| module | mutants | killed | survived | no tests | score |")
    print("| --- | --- | --- | --- | --- | --- |")
    for s in scores:
        equivalent = f" (+{len(s.equivalent)} equivalent)" if s.equivalent else ""
        print(
            f"| `{s.module}` | {s.mutants} | {s.killed} | {len(s.survived)}{equivalent} | "
            f"{len(s.no_tests)} | {s.score:.0%} |"
        )
    failed = False
    for s in scores:
        for name in s.survived:
            print(f"{s.module}: survived {name}")
        for name in s.no_tests:
            print(f"{s.module}: no tests {name}")
        for name in s.equivalent:
            print(f"{s.module}: equivalent {name}: {EQUIVALENT[s.module][name]}")
        for name in s.stale:
            print(f"{s.module}: EQUIVALENT lists {name}, which did not survive (renumbered?)")
        if s.score * 100 < args.min:
            failed = True
            print(f"{s.module}: {s.score:.1%} is below {args.min:g} %", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
