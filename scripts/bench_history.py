#!/usr/bin/env python3
"""Benchmark refresh-history on a generated, realistic corpus (not a timed test).

Generates N matches (default 200,000, about 450 MB) across the 10 tier files as StratMancer's collector
writes them (one JSON array per tier, ``indent=2``, ``champion_stats`` and friends included), then
measures, each run in a fresh subprocess so that its peak memory is its own (the run's and its forked
worker's RSS summed, sampled every 10 ms; never below either's own ``VmHWM``):

1. full rebuild (``--full``);
2. refresh with nothing changed;
3. refresh after appending 1% new matches, each tier file rewritten whole the way the collector does;
4. the reference: ``json.load`` each file, count with dicts, write with ``dump_json`` (the seed's way);
5. the floors: reading the files' bytes, and a one-thread msgspec decode of the four fields the index
   needs (the parse floor: a full rebuild cannot do less work than this);
6. the CLI's start-up (``stratmancer-jobs --version``), apart from the work.

It also checks that the reference, the full rebuild and the incremental refresh give the same index.
Usage: ``python scripts/bench_history.py [--matches N] [--repeat R] [--keep DIR] [--no-reference]``
(``--keep``: a corpus already generated there with the same N is reused);
``--write-sample DIR`` writes the small sample shipped in ``data/processed/`` instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TIERS = (
    "IRON", "BRONZE", "SILVER", "GOLD", "PLATINUM",
    "EMERALD", "DIAMOND", "MASTER", "GRANDMASTER", "CHALLENGER",
)  # fmt: skip
TIER_WEIGHTS = (6, 10, 14, 16, 14, 12, 8, 4, 2, 1)  # ladder-like: most games in the middle
POSITIONS = ("TOP", "JUNGLE", "MIDDLE", "BOTTOM", "UTILITY")
# Real Riot champion keys are sparse integers (1..950 with gaps); 170 of them.
CHAMPION_KEYS = sorted(random.Random(20251101).sample(range(1, 951), 170))


class Corpus:
    """Deterministic generator of collector-style match records with skewed champion pick rates."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(CHAMPION_KEYS))]
        self.rng.shuffle(weights)
        total = 0.0
        self.cum: list[float] = []
        for w in weights:
            total += w
            self.cum.append(total)
        self.next_id = 5_100_000_000

    def picks(self) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < 10:
            for champ in self.rng.choices(CHAMPION_KEYS, cum_weights=self.cum, k=14):
                if champ not in chosen:
                    chosen.append(champ)
                    if len(chosen) == 10:
                        break
        return chosen

    def match(self, tier: str) -> dict[str, Any]:
        rng = self.rng
        picks = self.picks()
        self.next_id += rng.randint(1, 40)
        stats = [
            {
                "champion_id": champ,
                "position": POSITIONS[slot % 5],
                "kills": rng.randint(0, 15),
                "deaths": rng.randint(0, 12),
                "assists": rng.randint(0, 20),
                "gold_earned": rng.randint(5000, 18000),
            }
            for slot, champ in enumerate(picks)
        ]
        return {
            "match_id": f"NA1_{self.next_id}",
            "patch": "15.21",
            "game_version": "15.21.715.3451",
            "elo_rank": tier,
            "queue_id": 420,
            "game_creation": 1761900000000 + self.next_id % 10_000_000 * 1000,
            "game_duration": rng.randint(900, 2400),
            "blue_picks": picks[:5],
            "red_picks": picks[5:],
            "blue_bans": rng.sample(CHAMPION_KEYS, 5),
            "red_bans": rng.sample(CHAMPION_KEYS, 5),
            "blue_win": rng.random() < 0.515,
            "champion_stats": stats,
        }

    def split(self, n: int) -> dict[str, list[dict[str, Any]]]:
        """``n`` matches spread over the tiers by ladder weight."""
        per: dict[str, list[dict[str, Any]]] = {tier: [] for tier in TIERS}
        for tier in self.rng.choices(TIERS, weights=TIER_WEIGHTS, k=n):
            per[tier].append(self.match(tier))
        return per


def write_corpus(directory: Path, n: int, seed: int = 7) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for tier, matches in Corpus(seed).split(n).items():
        text = json.dumps(matches, indent=2)
        (directory / f"matches_{tier}.json").write_text(text)
        total += len(text)
    return total


def append_collector_style(directory: Path, n: int, seed: int = 99) -> None:
    """Append ``n`` new matches, rewriting each tier file whole as ``json.dump(matches, indent=2)`` would."""
    corpus = Corpus(seed)
    corpus.next_id = 9_000_000_000
    for tier, new in corpus.split(n).items():
        if not new:
            continue
        path = directory / f"matches_{tier}.json"
        old = path.read_text()
        new_text = json.dumps(new, indent=2)
        # json.dumps(old + new, indent=2) == old[:-2] + ",\n" + new_text[2:] (and "[" + ... when old is "[]")
        text = old[:-2] + ",\n" + new_text[2:] if old != "[]" else new_text
        with path.open("w") as handle:  # not atomic, like the collector
            handle.write(text)


def write_sample(directory: Path) -> None:
    """The sample in ``data/processed/``: four tiers as JSON arrays, one JSONL, a duplicate, a bad record."""
    corpus = Corpus(2025)
    directory.mkdir(parents=True, exist_ok=True)
    sizes = {"SILVER": 70, "GOLD": 90, "PLATINUM": 60, "DIAMOND": 40}
    for tier, n in sizes.items():
        matches = [corpus.match(tier) for _ in range(n)]
        for m in matches:
            m["champion_stats"] = m["champion_stats"][:2]  # keep the sample small
        if tier == "GOLD":
            matches.append(dict(matches[3]))  # the collector saw this game twice
        (directory / f"matches_{tier}.json").write_text(json.dumps(matches, indent=2))
    lines = []
    for _ in range(30):
        m = corpus.match("EMERALD")
        del m["champion_stats"]
        lines.append(json.dumps(m))
    bad = corpus.match("EMERALD")
    del bad["champion_stats"]
    bad["red_picks"] = bad["red_picks"][:4]  # an incomplete draft
    lines.append(json.dumps(bad))
    (directory / "matches_EMERALD.jsonl").write_text("\n".join(lines) + "\n")


# -- the reference build: the seed's straightforward approach -------------------------------------

GROUPS = {
    "LOW": ("IRON", "BRONZE", "SILVER"),
    "MID": ("GOLD", "PLATINUM", "EMERALD"),
    "HIGH": ("DIAMOND", "MASTER", "GRANDMASTER", "CHALLENGER"),
}


def _valid(m: Any) -> bool:
    if not isinstance(m, dict):
        return False
    b, r, w = m.get("blue_picks"), m.get("red_picks"), m.get("blue_win")
    if not (isinstance(b, list) and isinstance(r, list) and len(b) == 5 and len(r) == 5):
        return False
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in b + r):
        return False
    return len(set(b + r)) == 10 and isinstance(w, bool)


def reference_build(processed: Path, out: Path) -> None:
    """json.load every file, count with dicts, apply thresholds 5/3/3, write with dump_json."""
    from stratmancer_jobs.atomicio import dump_json
    from stratmancer_jobs.jobs.history.aggregate import win_rate

    per_tier: dict[str, list[dict[str, Any]]] = {}
    for tier in TIERS:
        path = processed / f"matches_{tier}.json"
        if path.exists():
            with path.open() as handle:
                per_tier[tier] = json.load(handle)
    index: dict[str, Any] = {}
    units = [(t, (t,)) for t in TIERS] + list(GROUPS.items())
    for name, tiers in units:
        champ: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        pair: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
        counter: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        seen: set[Any] = set()
        n = 0
        for tier in tiers:
            tier_seen: set[Any] = set()
            for m in per_tier.get(tier, []):
                if not _valid(m):
                    continue
                mid = m.get("match_id")
                if mid in tier_seen:
                    continue
                tier_seen.add(mid)
                if mid in seen:
                    continue
                seen.add(mid)
                n += 1
                blue, red, blue_win = m["blue_picks"], m["red_picks"], m["blue_win"]
                for team, won, enemy in ((blue, blue_win, red), (red, not blue_win, blue)):
                    for c in team:
                        champ[c][0] += 1
                        champ[c][1] += won
                        for e in enemy:
                            counter[c][e][0] += 1
                            counter[c][e][1] += won
                    for a, b in combinations(sorted(team), 2):
                        pair[(a, b)][0] += 1
                        pair[(a, b)][1] += won
        if not n:
            continue
        champ_wr = {str(c): win_rate(w, g) for c, (g, w) in champ.items() if g >= 5}
        pair_wr = {f"{a},{b}": win_rate(w, g) for (a, b), (g, w) in pair.items() if g >= 3}
        counter_wr = {}
        for c, row in counter.items():
            kept = {str(e): win_rate(w, g) for e, (g, w) in row.items() if g >= 3}
            if kept:
                counter_wr[str(c)] = kept
        values = list(champ_wr.values())
        import math

        avg = round(math.fsum(values) / len(values), 6) if values else 0.5
        index[name] = {
            "champ_wr": champ_wr,
            "pair_wr": pair_wr,
            "counter_wr": counter_wr,
            "n_matches": n,
            "avg_wr": avg,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump_json(index))


# -- measurement ----------------------------------------------------------------------------------


def worker(mode: str, root: Path) -> None:
    """One measured run in this (fresh) process; prints seconds and peak RSS as JSON."""
    processed = root / "data" / "processed"
    from stratmancer_jobs.config import load_settings
    from stratmancer_jobs.jobs.history.job import refresh_history

    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    if mode == "parse":
        import msgspec

        class Match(msgspec.Struct, gc=False):
            blue_picks: tuple[int, int, int, int, int]
            red_picks: tuple[int, int, int, int, int]
            blue_win: bool
            match_id: str | int | None = None

        decoder = msgspec.json.Decoder(list[Match])
        for path in sorted(processed.iterdir()):
            decoder.decode(path.read_bytes())
    elif mode == "freshness":
        print(json.dumps(freshness_costs(processed)))
        return
    elif mode == "floor":
        for path in sorted(processed.iterdir()):
            with path.open("rb") as handle:
                while handle.read(1 << 20):
                    pass
    elif mode == "reference":
        reference_build(processed, root / "reference_index.json")
    else:
        settings = load_settings(root, env={})
        outcome = refresh_history(settings.layout, settings.history, full=(mode == "full"))
        if mode == "unchanged" and outcome.mode != "unchanged":
            raise SystemExit(f"expected an unchanged run, got {outcome.mode}")
    seconds = time.perf_counter() - started
    sampler.stop()
    print(json.dumps({"seconds": seconds, "peak_mb": max(peak_rss_mb(), sampler.peak_mb)}))


def freshness_costs(processed: Path) -> dict[str, float]:
    """What the freshness figures cost over the whole corpus, in one thread (a full rebuild splits the
    same work over two processes, so this is an upper bound): the max over game_creation (data age),
    the matches per patch, and decoding the two fields (the job's decoder against one without them)."""
    import msgspec

    from stratmancer_jobs.jobs.history import records
    from stratmancer_jobs.jobs.history.counts import newest_created, patch_counts

    class Bare(msgspec.Struct, gc=False):
        blue_picks: tuple[int, int, int, int, int]
        red_picks: tuple[int, int, int, int, int]
        blue_win: bool
        match_id: str | int | None = None

    bare = msgspec.json.Decoder(list[Bare])
    out = {"newest_s": 0.0, "patches_s": 0.0, "decode_with_s": 0.0, "decode_without_s": 0.0}
    for path in sorted(processed.iterdir()):
        data = path.read_bytes()
        t0 = time.perf_counter()
        bare.decode(data)
        t1 = time.perf_counter()
        matches = records._ARRAY.decode(data)
        t2 = time.perf_counter()
        for start in range(0, len(matches), records.VECTOR_CHUNK):  # as the job counts: by batch
            newest_created(matches[start : start + records.VECTOR_CHUNK])
        t3 = time.perf_counter()
        for start in range(0, len(matches), records.VECTOR_CHUNK):
            patch_counts(matches[start : start + records.VECTOR_CHUNK])
        t4 = time.perf_counter()
        out["decode_without_s"] += t1 - t0
        out["decode_with_s"] += t2 - t1
        out["newest_s"] += t3 - t2
        out["patches_s"] += t4 - t3
    return out


class RssSampler(threading.Thread):
    """The RSS of this process plus its forked worker, summed, every 10 ms: the job's footprint while
    both processes hold memory (an upper bound: pages they still share are counted twice)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self._stop_event = threading.Event()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20

    def _rss_mb(self, pid: int | str) -> float:
        try:
            return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self._page_mb
        except (OSError, IndexError, ValueError):
            return 0.0

    def _children(self) -> list[str]:
        found: list[str] = []
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):
                found += (task / "children").read_text().split()
        return found

    def run(self) -> None:
        while not self._stop_event.wait(0.01):
            total = self._rss_mb("self") + sum(self._rss_mb(pid) for pid in self._children())
            self.peak_mb = max(self.peak_mb, total)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def peak_rss_mb() -> float:
    """Peak RSS of this process (VmHWM: ru_maxrss would include the bench's own memory before exec)
    or of the worker it forked, whichever is larger (``RssSampler`` gives their sum)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024
    except OSError:
        pass
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def measure(mode: str, root: Path) -> dict[str, float]:
    # Flush the writeback of the files just generated or rewritten, so that it does not land on
    # (and add noise to) the fsyncs of the run being measured.
    os.sync()
    result = subprocess.run(
        [sys.executable, __file__, "--worker", mode, "--root", str(root)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def measure_freshness(root: Path) -> dict[str, float]:
    """``freshness_costs`` in a fresh process."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", "freshness", "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--matches", type=int, default=200_000, help="matches to generate (default 200,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--write-sample", type=Path, help="write the small shipped sample here and exit")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow json.load reference")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.root)
        return
    if args.write_sample:
        write_sample(args.write_sample)
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_history_"))
    try:
        run(work, args.matches, args.repeat, reference=not args.no_reference)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def cli_startup() -> dict[str, float]:
    """Wall time of ``stratmancer-jobs --version`` (interpreter + imports), the cost a cron run adds."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from stratmancer_jobs.cli import main; main()", "--version"],
        check=True,
        capture_output=True,
    )
    return {"seconds": time.perf_counter() - started, "peak_mb": 0.0}


def run(work: Path, n: int, repeat: int, reference: bool = True) -> None:
    base = work / "base"
    root = work / "root"
    processed = root / "data" / "processed"
    marker = base / "corpus.json"
    if marker.exists() and json.loads(marker.read_text()).get("matches") == n:
        size = int(json.loads(marker.read_text())["bytes"])
        print(f"reusing the {n:,}-match corpus in {base}")
    else:
        print(f"generating {n:,} matches in {work} ...", flush=True)
        shutil.rmtree(base, ignore_errors=True)
        t0 = time.perf_counter()
        size = write_corpus(base, n)
        took = time.perf_counter() - t0
        print(f"  {size / 1e6:.0f} MB in 10 tier files ({size / n:.0f} bytes per match), {took:.0f}s")
        marker.write_text(json.dumps({"matches": n, "bytes": size}))

    def reset() -> None:
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(base, processed, ignore=shutil.ignore_patterns("corpus.json"))

    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    reset()
    for _ in range(repeat):
        rows["floor: read bytes"].append(measure("floor", root))
        rows["parse floor: msgspec, 1 thread"].append(measure("parse", root))
        if reference:
            rows["reference (json.load + dicts)"].append(measure("reference", root))
        rows["full rebuild"].append(measure("full", root))
        rows["no change (work only)"].append(measure("unchanged", root))
        rows["CLI start-up (--version)"].append(cli_startup())
    full_index = (root / "ml_pipeline" / "history_index.json").read_bytes()
    reference_same = (
        json.loads((root / "reference_index.json").read_bytes()) == json.loads(full_index)
        if reference
        else None
    )
    saved = work / "saved"
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(root, saved)
    append_n = max(1, n // 100)
    for _ in range(repeat):
        shutil.rmtree(root)
        shutil.copytree(saved, root)
        append_collector_style(processed, append_n)
        rows["1% appended"].append(measure("incremental", root))
    incremental_index = (root / "ml_pipeline" / "history_index.json").read_bytes()
    measure("full", root)
    same_after_append = incremental_index == (root / "ml_pipeline" / "history_index.json").read_bytes()

    fresh = [measure_freshness(root) for _ in range(repeat)]
    med = {name: statistics.median(r["seconds"] for r in runs) for name, runs in rows.items()}
    full = med["full rebuild"]
    fmed = {key: statistics.median(f[key] for f in fresh) for key in fresh[0]}
    print(f"\n{n:,} matches, {size / 1e6:.0f} MB, median of {repeat}")
    print(f"{'measurement':34} {'median s':>9} {'vs full':>8} {'peak MB':>8}")
    for name, runs in rows.items():
        peak = max(r["peak_mb"] for r in runs)
        print(f"{name:34} {med[name]:9.3f} {med[name] / full:8.1%} {peak:8.0f}")
    print()
    refreshes = ("full rebuild", "no change (work only)", "1% appended")  # not the floors nor the reference
    peak_all = max(r["peak_mb"] for name in refreshes for r in rows[name])
    unchanged = med["no change (work only)"] / full
    appended = med["1% appended"] / full
    floor = full / med["parse floor: msgspec, 1 thread"]
    print(f"cost per match, full rebuild: {full / n * 1e6:.2f} us")
    checks: list[tuple[str, bool]] = [
        (f"full rebuild {floor:.2f}x the parse floor", floor <= 1.5),
        (f"no-change refresh {unchanged:.1%} of a full rebuild (work only)", unchanged <= 0.05),
        (f"1% append {appended:.1%} of a full rebuild", appended <= 0.10),
        (f"peak memory {peak_all:.0f} MB (refresh runs)", peak_all <= 400),
        ("incremental and full give byte-identical indexes", same_after_append),
    ]
    if reference_same is not None:
        ref = med["reference (json.load + dicts)"]
        checks.insert(0, (f"full rebuild {ref / full:.1f}x faster than the reference", ref / full >= 7))
        checks.append(("reference and full rebuild give the same index", reference_same))
    decode_extra = max(0.0, fmed["decode_with_s"] - fmed["decode_without_s"])
    age_cost = (fmed["newest_s"] + decode_extra / 2) / full  # the decode extra is shared with the patches
    ms = {key: value * 1e3 for key, value in fmed.items()}
    print(
        f"freshness figures, one thread over all {n:,} matches: max over game_creation "
        f"{ms['newest_s']:.1f} ms, matches per patch {ms['patches_s']:.1f} ms, decoding the two fields "
        f"{decode_extra * 1e3:.1f} ms ({ms['decode_with_s']:.0f} vs {ms['decode_without_s']:.0f} ms)"
    )
    checks.append((f"data-age bookkeeping {age_cost:.2%} of a full rebuild", age_cost < 0.02))
    all_cost = (fmed["newest_s"] + fmed["patches_s"] + decode_extra) / full
    checks.append((f"all freshness figures {all_cost:.2%} of a full rebuild", all_cost < 0.05))
    for text, ok in checks:
        print(f"[{'ok' if ok else 'MISSED'}] {text}")


if __name__ == "__main__":
    main()
