"""refresh-history (job id ``refresh_history_index``): the history index from ``data/processed/``.

The work is ``stratmancer_jobs.jobs.history.build.refresh_history``; this module only adapts it to the
runner: options in, one-line summary and metrics out, bad tier files turned into a recorded error.
"""

from __future__ import annotations

import time

from stratmancer_jobs.jobs import JobContext, JobResult
from stratmancer_jobs.jobs.history.build import HistoryOutcome, refresh_history

__all__ = ["HistoryOutcome", "refresh_history", "run", "summarize"]


def _plural(n: int, word: str, many: str = "") -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {many or word + 's'}"


def summarize(outcome: HistoryOutcome, seconds: float) -> str:
    """One line, e.g. ``History index refreshed in 2.34s: 10 tiers + 3 groups, 200,000 matches ...``."""
    verb = "unchanged" if outcome.mode == "unchanged" else "refreshed"
    skipped = outcome.duplicates + outcome.invalid
    line = (
        f"History index {verb} in {seconds:.2f}s: {_plural(len(outcome.tiers), 'tier')} + "
        f"{_plural(len(outcome.groups), 'group')}, {_plural(outcome.matches, 'match', 'matches')} "
        f"({outcome.new_matches:,} new), {_plural(outcome.pairs, 'champion pair')}, "
        f"{_plural(skipped, 'record')} skipped "
        f"({outcome.duplicates:,} duplicate, {outcome.invalid:,} invalid)"
    )
    if outcome.errors:
        line += f"; {_plural(len(outcome.errors), 'bad file')} kept their last entries"
    return line


def run(ctx: JobContext) -> JobResult:
    """Refresh the index; ``--full`` (``options["full"]``) ignores the incremental cache."""
    started = time.monotonic()
    outcome = refresh_history(
        ctx.settings.layout,
        ctx.settings.history,
        full=bool(ctx.options.get("full", False)),
        progress=ctx.progress,
        log=ctx.log,
        now=ctx.now,
    )
    metrics: dict[str, float | str] = {
        "matches_indexed": outcome.matches,
        "new_matches": outcome.new_matches,
        "tiers": len(outcome.tiers),
        "groups": len(outcome.groups),
        "champion_pairs": outcome.pairs,
        "records_skipped_duplicate": outcome.duplicates,
        "records_skipped_invalid": outcome.invalid,
        "files_read": outcome.files_read,
        "bytes_read": outcome.bytes_read,
        "mode": outcome.mode,
    }
    summary = summarize(outcome, time.monotonic() - started)
    error = None
    if outcome.errors:
        error = "bad tier file(s), their tiers kept their last entries: " + "; ".join(outcome.errors)
    return JobResult(summary=summary, metrics=metrics, error=error)
