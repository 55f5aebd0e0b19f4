"""Bad-input scenarios: hypothesis generates hostile match files, model cards and HTTP bodies.

Each scenario runs the real job through the real runner in this process (fast enough for hundreds of
examples), next to good data, and checks: no unhandled exception (no traceback logged), every bad
item reported with its file, the good data beside it still used. Failures are collected per example
(not raised) so that the table counts them; the first few are described.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from stratmancer_jobs.config import Settings, load_settings
from stratmancer_jobs.jobtable import find_job
from stratmancer_jobs.runner import RunOutcome, run_job
from tests.ddragon_server import DDragonServer, Reply
from tests.reliability.harness import REPO, Outcome

MAX_REPORTED = 5
logging.getLogger("stratmancer_jobs").addHandler(logging.NullHandler())
logging.getLogger("stratmancer_jobs").propagate = False
GOOD_SILVER = 7

# --- plumbing ----------------------------------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)

    def tracebacks(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.exc_info or getattr(r, "event", "") == "traceback"]


def _run(cmd: str, cfg: Settings, **options: Any) -> tuple[RunOutcome, _Capture]:
    log = logging.getLogger(f"stratmancer_jobs.hostile.{cmd}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    capture = _Capture()
    log.handlers = [capture]
    outcome = run_job(find_job(cmd), cfg, log=log, options=options)
    return outcome, capture


def _hypothesis(examples: int, rng_seed: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def wrap(test: Callable[..., None]) -> Callable[..., None]:
        configured = settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(test)
        return seed(rng_seed)(configured)

    return wrap


def _fresh(base: Path, counter: itertools.count[int]) -> Path:
    root = base / f"ex{next(counter)}"
    for sub in ("data/processed", "ml_pipeline/models/modelcards", "ml_pipeline/models/trained", "config"):
        (root / sub).mkdir(parents=True)
    return root


# --- hostile JSON values ------------------------------------------------------------------------------

HUGE = st.sampled_from([2**63, 2**64, 2**70, -(2**70), 10**40])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31),
    HUGE,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"x": value}
    return value


JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
) | st.sampled_from([_nested(60), _nested(200)])

# --- 3a. match files -------------------------------------------------------------------------------


def _good_match(champs: list[int], mid: str, extra: Any) -> dict[str, Any]:
    return {
        "match_id": mid,
        "blue_picks": champs[:5],
        "red_picks": champs[5:],
        "blue_win": bool(champs[0] % 2),
        "champion_stats": extra,
    }


TEAM = st.lists(st.integers(1, 950), min_size=10, max_size=10, unique=True)


@st.composite
def _bad_record(draw: st.DrawFn) -> Any:
    """A JSON value that must be skipped as an invalid record (never a whole-file error)."""
    champs = draw(TEAM)
    base = _good_match(champs, draw(st.sampled_from(["M0", "M1", "B9"])), None)
    kind = draw(st.sampled_from(["not_object", "missing", "picks", "repeat", "blue_win"]))
    if kind == "not_object":
        return draw(st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.just(_nested(100))))
    if kind == "missing":
        del base[draw(st.sampled_from(["blue_picks", "red_picks", "blue_win"]))]
    elif kind == "picks":
        side = draw(st.sampled_from(["blue_picks", "red_picks"]))
        base[side] = draw(
            st.one_of(
                st.lists(st.integers(1, 950), min_size=0, max_size=4),
                st.lists(st.integers(1, 950), min_size=6, max_size=7),
                st.lists(
                    st.one_of(st.text(max_size=3), st.floats(), st.booleans(), st.none()),
                    min_size=5,
                    max_size=5,
                ),
                JSONISH.filter(lambda v: not isinstance(v, list)),
            )
        )
    elif kind == "repeat":
        base["red_picks"] = [base["blue_picks"][0], *base["red_picks"][1:]]
    else:
        base["blue_win"] = draw(
            st.one_of(st.integers(0, 1), st.text(max_size=4), st.none(), HUGE, st.floats())
        )
    return base


RAW_BAD_LINES = st.sampled_from(
    [
        b'{"blue_picks": [' + b"9" * 5000 + b', 2, 3, 4, 5], "red_picks": [6, 7, 8, 9, 10]}',
        b"NaN",
        b'{"blue_picks": [1, 2',
        b'{"a": "\xff\xfe"}',
        b"\x00\x01",
        b"{]",
        b"[" * 3000 + b"]" * 3000,
        b'{"blue_win": NaN}',
    ]
)


def match_files(base: Path, examples: int, *, rng_seed: int = 0) -> Outcome:
    """A hostile GOLD file (array or JSONL, bad records, corrupt bytes, empty, symlink, directory) next to
    a good SILVER file: SILVER always counted exactly; clean GOLD files counted exactly with every bad
    record in the sidecar's skip counts; unreadable GOLD files named in the run's error."""
    out = Outcome(
        "bad input: match files",
        checked="hypothesis: bad records/lines/files beside good "
        "data; good data counted exactly, each bad item counted or its file named, no traceback",
    )
    counter = itertools.count()
    silver = [_good_match(list(range(10 * i + 1, 10 * i + 11)), f"S{i}", None) for i in range(GOOD_SILVER)]

    @_hypothesis(examples, rng_seed)
    @given(
        good=st.lists(st.tuples(TEAM, JSONISH), max_size=6),
        dups=st.integers(0, 2),
        id_kind=st.sampled_from([0, 0, 1, 2, 3]),
        bad=st.lists(_bad_record(), max_size=6),
        raw_lines=st.lists(RAW_BAD_LINES, max_size=3),
        form=st.sampled_from(
            ["array", "jsonl", "jsonl", "empty", "truncated", "nan", "latin1", "symlink", "dir"]
        ),
        order=st.randoms(use_true_random=False),
    )
    def example(
        good: list[tuple[list[int], Any]],
        dups: int,
        id_kind: int,
        bad: list[Any],
        raw_lines: list[bytes],
        form: str,
        order: Any,
    ) -> None:
        out.trials += 1
        root = _fresh(base, counter)
        processed = root / "data/processed"
        (processed / "matches_SILVER.json").write_text(json.dumps(silver, indent=2))
        ids: list[Any] = [[f"M{i}", i, 2**64 + i, -(2**70) - i][id_kind] for i in range(len(good))]
        goods = [_good_match(c, mid, extra) for mid, (c, extra) in zip(ids, good, strict=True)]
        goods += goods[:dups]  # valid duplicates: counted once
        items: list[bytes] = [json.dumps(v).encode() for v in [*goods, *bad]]
        # the valid occurrence of an id must come before its duplicates: shuffle only the bad ones in
        bad_items = items[len(goods) :]
        items = items[: len(goods)]
        for item in bad_items:
            items.insert(order.randint(0, len(items)), item)
        gold = processed / ("matches_GOLD.jsonl" if form == "jsonl" else "matches_GOLD.json")
        if form == "jsonl":
            for line in raw_lines:
                items.insert(order.randint(0, len(items)), line)
            gold.write_bytes(b"".join(i + b"\n" for i in items))
        elif form == "symlink":
            (base / "outside.json").write_text(json.dumps(goods))
            gold.symlink_to(base / "outside.json")
        elif form == "dir":
            gold.mkdir()
        else:
            body = b"[\n" + b",\n".join(items) + b"\n]\n"
            body = {
                "array": body,
                "empty": b"",
                "truncated": body[: max(1, len(body) // 2)] if items else b"[",
                "nan": body.replace(b"[\n", b"[\nNaN,\n", 1),
                "latin1": body + b"\xff",
            }[form]
            gold.write_bytes(body)
        outcome, logs = _run("refresh_history_index", load_settings(root, {"TZ": "UTC"}))
        where = f"example {out.trials} ({form}, {len(goods)} good {ids[:1]}, {len(bad)} bad, {raw_lines})"
        problems: list[str] = []
        if logs.tracebacks() or outcome.status not in ("success", "error"):
            problems.append(f"unhandled: {outcome.error}")
        try:
            index = json.loads((root / "ml_pipeline/history_index.json").read_bytes())
            sidecar = json.loads((root / "ml_pipeline/history_index.meta.json").read_bytes())
        except (OSError, ValueError) as exc:
            problems.append(f"no index: {exc!r}; error {outcome.error}")
            index, sidecar = {}, {}
        if index and index.get("SILVER", {}).get("n_matches") != GOOD_SILVER:
            problems.append(f"good SILVER data not counted exactly: {index.get('SILVER')}")
        distinct = len({m["match_id"] for m in goods})
        # a top-level NaN is one invalid record, as json.load reads it (``[NaN,]`` with no items is not JSON)
        clean = form in ("array", "jsonl") or (form == "nan" and bool(items))
        if clean and index:
            n = index.get("GOLD", {}).get("n_matches", 0)
            skipped = sidecar.get("tiers", {}).get("GOLD", {}).get("skipped", {})
            invalid = sum(v for k, v in skipped.items() if k != "duplicate_match_id")
            expect_invalid = len(bad) + (len(raw_lines) if form == "jsonl" else 0) + (form == "nan")
            if (
                n != distinct
                or invalid != expect_invalid
                or skipped.get("duplicate_match_id", 0) != len(goods) - distinct
            ):
                problems.append(
                    f"GOLD counted {n} (want {distinct}), skipped {skipped} (want {expect_invalid} "
                    f"invalid, {len(goods) - distinct} duplicate); error {outcome.error}"
                )
            reported = f"{gold}: {expect_invalid} invalid records skipped"
            if expect_invalid and reported not in logs.text():
                problems.append(f"bad records not reported with their file ({reported!r} not logged)")
        elif form in ("truncated", "latin1", "empty", "nan"):
            if "matches_GOLD.json" not in (outcome.error or ""):
                problems.append(f"bad file not named in the run's error: {outcome.error}")
        elif form in ("symlink", "dir") and "GOLD" in index:
            problems.append("a symlinked-out or directory GOLD file was read")
        if problems:
            out.fail(f"{where}: " + "; ".join(problems))
        shutil.rmtree(root, ignore_errors=True)

    example()
    return out


# --- 3b. model cards ---------------------------------------------------------------------------------

BASE_CARD: dict[str, Any] = {
    "elo": "mid",
    "model_type": "xgb",
    "timestamp": "2025-11-01T16:42:37.798963",
    "features": 3469,
    "train_size": 2626,
    "test_size": 292,
    "calibrated": True,
    "calibrator_method": "isotonic",
    "source_patch": "15.21",
    "model_file": "draft_mid_xgb_20251101_164237.pkl",
    "calibrator_file": "calibrator_mid_20251101_164237.pkl",
    "metrics": {"roc_auc_raw": 0.8029},
    "params": {"max_depth": 6},
}
RAW_CARDS = st.sampled_from(
    [
        b'{"elo": "mid", "features": ' + b"9" * 5000 + b"}",
        b"",
        b"   ",
        b"\xff\xfe\x00garbage",
        b"[" * 100000,
        b'{"elo": NaN}',
        b"null",
        b'{"elo": "mid", "timestamp": "2025-11-01T00:00:00", "model_file": "draft_mid_xgb_'
        b'20251101_164237.pkl", "calibrated": false, "params": {"x": NaN}}',
        b'{"elo": "mid", "timestamp": "2025-11-01T00:00:00", "model_file": "draft_mid_xgb_'
        b'20251101_164237.pkl", "calibrated": false, "metrics": {"x": 1e999}}',
        b'{"elo": "mid", "timestamp": "2025-11-01T00:00:00", "model_file": "draft_mid_xgb_'
        b'20251101_164237.pkl", "calibrated": false, "extra": -Infinity}',
    ]
)


@st.composite
def _hostile_card(draw: st.DrawFn) -> bytes | str:
    """Card bytes, or "symlink"/"dir" for a card path that is not a regular file inside the root."""
    kind = draw(st.sampled_from(["mutate", "mutate", "raw", "symlink", "dir"]))
    if kind in ("symlink", "dir"):
        return kind
    if kind == "raw":
        return draw(RAW_CARDS)
    card = dict(BASE_CARD)
    for key in draw(st.lists(st.sampled_from([*sorted(BASE_CARD), "extra"]), min_size=1, max_size=3)):
        if draw(st.booleans()):
            card.pop(key, None)
        else:
            card[key] = draw(
                JSONISH | st.sampled_from(["../x.pkl", "/etc/passwd", "a\\b", "..", "low", "high"])
            )
    return json.dumps(card).encode()


def model_cards(base: Path, examples: int, *, rng_seed: int = 0) -> Outcome:
    """Hostile cards beside one good card: the good one stays active; each bad one listed with a reason."""
    out = Outcome(
        "bad input: model cards",
        checked="hypothesis: mutated/raw/NaN/deep/symlinked cards "
        "beside a good one; good card active, every card listed valid or invalid+reason, no traceback",
    )
    counter = itertools.count()
    (base / "outside.json").write_text(
        json.dumps({**BASE_CARD, "elo": "high", "timestamp": "2040-01-01T00:00:00"})
    )

    @_hypothesis(examples, rng_seed)
    @given(cards=st.lists(_hostile_card(), min_size=1, max_size=4))
    def example(cards: list[bytes | str]) -> None:
        out.trials += 1
        root = _fresh(base, counter)
        for sub in ("modelcards", "trained"):
            shutil.rmtree(root / "ml_pipeline/models" / sub)
            shutil.copytree(REPO / "ml_pipeline/models" / sub, root / "ml_pipeline/models" / sub)
        cards_dir = root / "ml_pipeline/models/modelcards"
        good = sorted(p.name for p in cards_dir.iterdir())
        names = []
        for i, card in enumerate(cards):
            path = cards_dir / f"modelcard_mid_2020010{i}_000000.json"
            names.append(path.name)
            if card == "symlink":
                path.symlink_to(base / "outside.json")
            elif card == "dir":
                path.mkdir()
            else:
                path.write_bytes(card if isinstance(card, bytes) else card.encode())
        outcome, logs = _run("refresh_model_registry", load_settings(root, {"TZ": "UTC"}))
        problems: list[str] = []
        if logs.tracebacks() or outcome.status != "success":
            problems.append(f"run {outcome.status}: {outcome.error}")
        try:
            registry = json.loads((root / "ml_pipeline/model_registry.json").read_bytes())
            listed = {m["file"] for m in registry["models"]} | {i["file"] for i in registry["invalid"]}
            reasons = {i["file"]: i["reason"] for i in registry["invalid"]}
            if not set(good) <= {m["file"] for m in registry["models"]}:
                problems.append(f"a good card is no longer valid: {reasons}")
            if registry["active"]["high"]["file"] != "modelcard_high_20251030_220550.json":
                problems.append(f"active high model changed: {registry['active']['high']['file']}")
            if set(names) - listed or not all(reasons.values()):
                problems.append(f"cards not listed: {sorted(set(names) - listed)}")
            for name in reasons:
                if name not in logs.text():
                    problems.append(f"invalid card {name} not named in the log")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"registry unreadable: {exc!r}")
        if problems:
            out.fail(
                f"example {out.trials} ({[c if isinstance(c, str) else c[:80] for c in cards]}): "
                + "; ".join(problems)
            )
        shutil.rmtree(root, ignore_errors=True)

    example()
    return out


# --- 3c. HTTP bodies -------------------------------------------------------------------------------

BODIES = st.one_of(
    JSONISH.map(lambda v: json.dumps(v).encode()),
    st.lists(
        st.one_of(st.text(max_size=12), st.from_regex(r"\A\d{1,20}\.\d{1,20}\.\d{1,6}\Z"), SCALARS),
        max_size=6,
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"",
            b"NaN",
            b"[NaN]",
            b"[" * 100000,
            b'["16.23.1", Infinity]',
            b"\xff\xfe[]",
            b'["99999999999999999999999.1.1"]',
            b"[" + b"9" * 5000 + b"]",
            b'["16.23.1"' + b" " * 10,
        ]
    ),
)

REALMS = st.one_of(
    BODIES,
    st.fixed_dictionaries({"v": JSONISH | st.text() | st.from_regex(r"\A\d{1,3}\.\d{1,3}\.\d{1,3}\Z")}).map(
        lambda v: json.dumps(v).encode()
    ),
    st.sampled_from([b'{"v": NaN}', b'{"v": "16.23.1\\u0000\\n"}', b'{"v": "' + b"1" * 100000 + b'"}']),
)


def http_bodies(base: Path, examples: int, *, rng_seed: int = 0) -> Outcome:
    """Hostile versions.json bodies from a real 127.0.0.1 server: a usable patch or a clear error naming
    the URL with the previous meta.json byte-for-byte intact; never a traceback or an invalid patch."""
    out = Outcome(
        "bad input: HTTP bodies",
        checked="hypothesis: JSON of wrong shapes, binary, NaN, deep, "
        "huge versions; success writes a valid patch, failure names the URL and keeps meta.json",
    )
    counter = itertools.count()
    previous = json.dumps({"patch": "15.20", "version": "15.20.1", "keep": True}).encode()
    with DDragonServer() as server:
        env = {"TZ": "UTC", "STRATMANCER_DDRAGON_URL": server.base_url, "STRATMANCER_RETRY_INSTANT": "1"}

        @_hypothesis(examples, rng_seed)
        @given(
            body=BODIES,
            status=st.sampled_from([200, 200, 200, 404, 503]),
            realm=st.none() | REALMS,
        )
        def example(body: bytes, status: int, realm: bytes | None) -> None:
            out.trials += 1
            root = _fresh(base, counter)
            meta = root / "config/meta.json"
            meta.write_bytes(previous)
            server.script(
                "/api/versions.json",
                Reply(status=status, body=body, headers={"Content-Type": "application/json"}),
            )
            if realm is not None:  # the realms cross-check is on, and its body is hostile too
                (root / "config/jobs.toml").write_text("[patch]\ncross_check = true\n")
                server.script(
                    "/realms/na.json", Reply(body=realm, headers={"Content-Type": "application/json"})
                )
            outcome, logs = _run("refresh_patch_meta", load_settings(root, env))
            problems: list[str] = []
            if logs.tracebacks():
                problems.append(f"traceback: {outcome.error}")
            if outcome.status == "success":
                data = json.loads(meta.read_bytes())
                major, minor = ([*data["patch"].split("."), "x"])[:2]
                if not (major.isdigit() and minor.isdigit() and data.get("keep") is True):
                    problems.append(f"wrote an invalid patch {data.get('patch')!r}")
                if realm is not None and "cross_check" not in data:
                    problems.append("cross-check enabled but not recorded")
            else:
                if meta.read_bytes() != previous:
                    problems.append("meta.json changed although the run failed")
                if "versions.json" not in (outcome.error or ""):
                    problems.append(f"error does not name the URL: {outcome.error}")
            if problems:
                shown = f"HTTP {status}, body {body[:60]!r}, realm {(realm or b'')[:60]!r}"
                out.fail(f"example {out.trials} ({shown}): " + "; ".join(problems))
            shutil.rmtree(root, ignore_errors=True)

        example()
    return out
