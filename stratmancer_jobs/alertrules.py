"""The shipped Prometheus alert rules (``stratmancer-jobs prometheus-rules``): one rule group, each alert a
one-line expression over the series ``metrics.py`` writes.

The schedules are not re-typed into PromQL: the metrics file carries each job's deadline (the time after
which it is late), its running start, time limit and interval, so one expression serves every job. Only
the staleness threshold of the file itself comes from the configuration (three times the most frequent
job's interval, at least 15 minutes): every run rewrites the file, so a file older than that means cron
(or the exporter's view of the file) stopped.

The output is YAML written by hand (the rule file format is small, and PyYAML is not a runtime
dependency); every string is a JSON string, which YAML reads as a double-quoted scalar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from stratmancer_jobs.config import Settings
from stratmancer_jobs.jobtable import JOBS
from stratmancer_jobs.schedule import interval_s

GROUP = "stratmancer-jobs"
MIN_STALE_S = 900


@dataclass(frozen=True)
class Rule:
    """One alerting rule."""

    alert: str
    expr: str
    severity: str
    summary: str
    description: str
    for_: str = ""


def stale_after_s(settings: Settings, now: datetime) -> int:
    """Seconds after which the metrics file counts as stale: three of the most frequent job's
    intervals, at least MIN_STALE_S."""
    shortest = min(interval_s(settings.job(spec).schedule, settings.timezone, now) for spec in JOBS)
    return max(MIN_STALE_S, int(3 * shortest))


def rules(settings: Settings, now: datetime) -> tuple[Rule, ...]:
    """The rule group's alerts for this deployment."""
    stale = stale_after_s(settings, now)
    return (
        Rule(
            "StratmancerJobFailing",
            'stratmancer_job_health{state="failing"} == 1',
            "critical",
            "{{ $labels.job_id }} is failing",
            "The last completed run of {{ $labels.job_id }} failed; `stratmancer-jobs status JOB` "
            "shows the error.",
        ),
        Rule(
            "StratmancerJobLate",
            "time() > stratmancer_job_deadline_timestamp_seconds unless stratmancer_job_running == 1",
            "warning",
            "{{ $labels.job_id }} is late",
            "{{ $labels.job_id }} has not succeeded since its due time plus grace (`stratmancer-jobs "
            "status JOB` shows when it was due); is its cron line or timer installed?",
        ),
        Rule(
            "StratmancerJobStuck",
            "stratmancer_job_running == 1 and ("
            "(time() - stratmancer_job_running_since_timestamp_seconds > 2 * stratmancer_job_timeout_seconds"
            " and stratmancer_job_timeout_seconds > 0)"
            " or time() - stratmancer_job_deadline_timestamp_seconds > 2 * stratmancer_job_interval_seconds)",
            "critical",
            "{{ $labels.job_id }} looks stuck",
            "A run of {{ $labels.job_id }} has held the job for more than twice its time limit, or the job "
            "is late by more than twice its interval while that run goes on (stopped or hung?).",
        ),
        Rule(
            "StratmancerHooksOwed",
            "stratmancer_job_hooks_pending == 1",
            "warning",
            "{{ $labels.job_id }} owes the app a change notification",
            "An on_change hook of {{ $labels.job_id }} has not succeeded for over an hour: the app may "
            "be serving an old output.",
            for_="1h",
        ),
        Rule(
            "StratmancerRegistryNoServableModel",
            "stratmancer_registry_servable == 0",
            "warning",
            "no servable model for elo {{ $labels.elo }}",
            "The model registry has no model the app can serve for elo {{ $labels.elo }} (missing "
            "artifact or calibrator).",
            for_="10m",
        ),
        Rule(
            "StratmancerMetricsStale",
            f"time() - stratmancer_metrics_written_timestamp_seconds > {stale}",
            "critical",
            "the stratmancer-jobs metrics file is stale",
            f"No run has rewritten the metrics file for over {stale // 60} minutes: cron, the timers or "
            "the exporter's view of the file stopped.",
        ),
    )


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def render_rules(settings: Settings, now: datetime) -> str:
    """The rule file (``rule_files`` in prometheus.yml), one group."""
    lines = [
        "# Alert rules for stratmancer-jobs: `stratmancer-jobs prometheus-rules > stratmancer.rules.yml`",
        "# Check: `promtool check rules stratmancer.rules.yml`; the series are in docs/metrics.md.",
        "groups:",
        f"  - name: {_q(GROUP)}",
        "    rules:",
    ]
    for rule in rules(settings, now):
        lines += [f"      - alert: {rule.alert}", f"        expr: {_q(rule.expr)}"]
        if rule.for_:
            lines.append(f"        for: {rule.for_}")
        lines += [
            "        labels:",
            f"          severity: {rule.severity}",
            "        annotations:",
            f"          summary: {_q(rule.summary)}",
            f"          description: {_q(rule.description)}",
        ]
    return "\n".join(lines) + "\n"
