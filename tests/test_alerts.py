"""Metrics and alert rules as Prometheus reads them: conventional names and labels (prometheus_client and
`promtool check metrics`), the shipped rules checked by `promtool check rules` and unit-tested with
`promtool test rules` (series in, alerts out); without promtool the Python shape checks still run."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import Result

from stratmancer_jobs.metrics import JOB_VALUES, unpublished
from stratmancer_jobs.state import read_state
from tests.conftest import REPO, write_card
from tests.ddragon_server import DDragonServer, json_reply

Invoke = Callable[..., Result]
PROMTOOL = shutil.which("promtool")
UNIT_WORDS = {"duration": "_seconds", "timestamp": "_timestamp_seconds", "bytes": "_bytes"}


def _all_jobs_run(cli: Invoke, root: Path, server: DDragonServer, prom: Path) -> None:
    """Every job run for real once (history on the shipped sample data), writing ``prom``."""
    shutil.copytree(REPO / "data" / "processed", root / "data" / "processed", dirs_exist_ok=True)
    write_card(root, "mid", "20251101_164237")
    server.script("/api/versions.json", json_reply(["16.23.1", "16.22.1"]))
    env = {"STRATMANCER_DDRAGON_URL": server.base_url}
    for command in ("refresh-history", "refresh-registry", "refresh-patch"):
        result = cli("--metrics-file", str(prom), command, env=env)
        assert result.exit_code == 0, result.output


def _promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_metrics_follow_the_prometheus_conventions(cli: Invoke, root: Path, server: DDragonServer) -> None:
    """After every job ran: no series carries `job` or `instance`, every family has its own HELP, units
    are in the names, every figure a job recorded is published, and promtool finds nothing to fix."""
    prom = root / "stratmancer.prom"
    _all_jobs_run(cli, root, server, prom)
    text = prom.read_text()
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), names
    helps = [f.documentation for f in families]
    assert len(helps) == len(set(helps)), "every family has its own HELP text"
    assert not [h for h in helps if "Job-specific" in h or len(h) < 20]
    for family in families:
        assert family.name.startswith("stratmancer_"), family.name
        for word, suffix in UNIT_WORDS.items():
            if word in family.name:
                assert family.name.endswith(suffix) or family.type == "counter", family.name
        for sample in family.samples:
            assert not {"job", "instance", "key", "value"} & set(sample.labels), sample
    assert "stratmancer_build_info" in names and "stratmancer_metrics_written_timestamp_seconds" in names
    state = read_state(root / "state" / "jobs_state.json")
    for job_id in JOB_VALUES:
        recorded = state["jobs"][job_id]["last_metrics"]
        assert recorded and unpublished(job_id, recorded) == [], (job_id, recorded)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    assert samples[("stratmancer_history_records_skipped", (("reason", "duplicate"),))] >= 0
    assert samples[("stratmancer_history_read_bytes", ())] > 0
    assert samples[("stratmancer_patch_info", (("patch", "16.23"),))] == 1.0
    assert samples[("stratmancer_registry_servable", (("elo", "mid"),))] == 1.0
    if PROMTOOL:
        checked = _promtool("check", "metrics", stdin=text)
        assert checked.returncode == 0 and not checked.stdout.strip() + checked.stderr.strip(), checked


def test_never_succeeded_job_has_a_zero_last_success_and_check_rewrites_the_file(
    cli: Invoke, root: Path
) -> None:
    """A job that never ran has last_success 0 (no absent() needed); `status --check` rewrites the file
    with a newer written-at time and the deadlines of the moment."""
    prom = root / "m.prom"
    write_card(root, "mid", "20251101_164237")
    assert cli("--metrics-file", str(prom), "refresh-registry").exit_code == 0

    def values() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        families = text_string_to_metric_families(prom.read_text())
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}

    first = values()
    patch = (("job_id", "refresh_patch_meta"),)
    assert first[("stratmancer_job_last_success_timestamp_seconds", patch)] == 0.0
    assert first[("stratmancer_job_health", (*patch, ("state", "new")))] == 1.0
    assert (
        first[("stratmancer_job_deadline_timestamp_seconds", patch)]
        > first[("stratmancer_metrics_written_timestamp_seconds", ())]
    )
    import time

    time.sleep(0.05)
    check = cli("--metrics-file", str(prom), "status", "--check")
    assert check.exit_code == 1, check.output  # the sample-free registry has no high/low model: a warning
    second = values()
    written = ("stratmancer_metrics_written_timestamp_seconds", ())
    assert second[written] > first[written]


# --- the shipped rules ------------------------------------------------------------------------------


def _rules_text(cli: Invoke) -> str:
    result = cli("prometheus-rules")
    assert result.exit_code == 0, result.output
    return result.stdout


def test_rules_parse_and_name_only_series_the_metrics_file_has(
    cli: Invoke, root: Path, server: DDragonServer
) -> None:
    """The printed rule group parses as YAML with the six alerts, each with severity, summary and a
    description; every series an expression names is one the metrics file writes."""
    doc: Any = yaml.safe_load(_rules_text(cli))
    (group,) = doc["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert set(alerts) == {
        "StratmancerJobFailing",
        "StratmancerJobLate",
        "StratmancerJobStuck",
        "StratmancerHooksOwed",
        "StratmancerRegistryNoServableModel",
        "StratmancerMetricsStale",
    }
    for rule in alerts.values():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    prom = root / "all.prom"
    _all_jobs_run(cli, root, server, prom)
    written = {f.name for f in text_string_to_metric_families(prom.read_text())}
    written |= {name + "_total" for name in written}  # the parser names counters without _total
    named = {n for rule in alerts.values() for n in re.findall(r"stratmancer_[a-z_]+", rule["expr"])}
    assert named and named <= written, named - written
    if PROMTOOL:
        path = root / "rules.yml"
        path.write_text(_rules_text(cli))
        checked = _promtool("check", "rules", str(path))
        assert checked.returncode == 0 and "SUCCESS: 6 rules found" in checked.stdout, checked


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    rendered = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{rendered}}}", "values": values}


J = {"job_id": "refresh_model_registry"}
# promtool's clock starts at 0: timestamps below are seconds after that
UNIT_TESTS: list[dict[str, Any]] = [
    {  # failing: fires once the health says failing, silent while ok
        "interval": "1m",
        "input_series": [
            _series("stratmancer_job_health", "0 0 0 1 1 1", state="failing", **J),
            _series("stratmancer_job_health", "1 1 1 0 0 0", state="ok", **J),
        ],
        "alert_rule_test": [
            {"eval_time": "2m", "alertname": "StratmancerJobFailing", "exp_alerts": []},
            {
                "eval_time": "4m",
                "alertname": "StratmancerJobFailing",
                "exp_alerts": [{"exp_labels": {"severity": "critical", **J, "state": "failing"}}],
            },
        ],
    },
    {  # late: the deadline (10m) passes without a success; silent before it and while running
        "interval": "1m",
        "input_series": [
            _series("stratmancer_job_deadline_timestamp_seconds", "600x30", **J),
            _series("stratmancer_job_running", "0x20 1x10", **J),
        ],
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "StratmancerJobLate", "exp_alerts": []},
            {
                "eval_time": "12m",
                "alertname": "StratmancerJobLate",
                "exp_alerts": [{"exp_labels": {"severity": "warning", **J}}],
            },
            {"eval_time": "25m", "alertname": "StratmancerJobLate", "exp_alerts": []},
        ],
    },
    {  # stuck: a run started at 0 with a 60 s limit is stuck past 120 s; a healthy job is silent
        "interval": "1m",
        "input_series": [
            _series("stratmancer_job_running", "1x10", **J),
            _series("stratmancer_job_running_since_timestamp_seconds", "0x10", **J),
            _series("stratmancer_job_timeout_seconds", "60x10", **J),
            _series("stratmancer_job_deadline_timestamp_seconds", "100000x10", **J),
            _series("stratmancer_job_interval_seconds", "300x10", **J),
            _series("stratmancer_job_running", "0x10", job_id="refresh_patch_meta"),
            _series("stratmancer_job_running_since_timestamp_seconds", "0x10", job_id="refresh_patch_meta"),
            _series("stratmancer_job_timeout_seconds", "60x10", job_id="refresh_patch_meta"),
            _series("stratmancer_job_deadline_timestamp_seconds", "100000x10", job_id="refresh_patch_meta"),
            _series("stratmancer_job_interval_seconds", "300x10", job_id="refresh_patch_meta"),
        ],
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": "StratmancerJobStuck", "exp_alerts": []},
            {
                "eval_time": "3m",
                "alertname": "StratmancerJobStuck",
                "exp_alerts": [{"exp_labels": {"severity": "critical", **J}}],
            },
        ],
    },
    {  # hooks owed for more than an hour; a job whose hooks went through is silent
        "interval": "5m",
        "input_series": [
            _series("stratmancer_job_hooks_pending", "1x30", **J),
            _series("stratmancer_job_hooks_pending", "1 1 0x28", job_id="refresh_patch_meta"),
        ],
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": "StratmancerHooksOwed", "exp_alerts": []},
            {
                "eval_time": "65m",
                "alertname": "StratmancerHooksOwed",
                "exp_alerts": [{"exp_labels": {"severity": "warning", **J}}],
            },
        ],
    },
    {  # the registry has no servable model for high; mid is fine
        "interval": "1m",
        "input_series": [
            _series("stratmancer_registry_servable", "0x20", elo="high"),
            _series("stratmancer_registry_servable", "1x20", elo="mid"),
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "StratmancerRegistryNoServableModel", "exp_alerts": []},
            {
                "eval_time": "15m",
                "alertname": "StratmancerRegistryNoServableModel",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "elo": "high"}}],
            },
        ],
    },
    {  # the file was last written at 0: stale after 15 minutes (the registry's */5 x 3)
        "interval": "1m",
        "input_series": [{"series": "stratmancer_metrics_written_timestamp_seconds", "values": "0x30"}],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "StratmancerMetricsStale", "exp_alerts": []},
            {
                "eval_time": "20m",
                "alertname": "StratmancerMetricsStale",
                "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
            },
        ],
    },
]


def test_every_alert_fires_in_a_promtool_unit_test_and_stays_silent_when_healthy(
    cli: Invoke, root: Path
) -> None:
    """`promtool test rules`: each alert fires for its series and not for the healthy ones; without
    promtool, each unit test still names an alert of the group with a firing and a silent case."""
    rules = root / "stratmancer.rules.yml"
    rules.write_text(_rules_text(cli))
    names = {r["alert"] for r in yaml.safe_load(rules.read_text())["groups"][0]["rules"]}
    tested = {case["alertname"] for test in UNIT_TESTS for case in test["alert_rule_test"]}
    assert tested == names
    for test in UNIT_TESTS:
        cases = test["alert_rule_test"]
        assert any(c["exp_alerts"] for c in cases) and any(not c["exp_alerts"] for c in cases)
    tests = root / "stratmancer.rules.test.yml"
    annotations = {
        r["alert"]: r["annotations"] for r in yaml.safe_load(rules.read_text())["groups"][0]["rules"]
    }
    for test in UNIT_TESTS:
        for case in test["alert_rule_test"]:
            for alert in case["exp_alerts"]:
                alert["exp_annotations"] = {
                    key: re.sub(
                        r"\{\{ \$labels\.(\w+) \}\}", lambda m, labels=alert["exp_labels"]: labels[m[1]], text
                    )
                    for key, text in annotations[case["alertname"]].items()
                }
    unit = {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": UNIT_TESTS}
    tests.write_text(yaml.safe_dump(unit))
    if PROMTOOL:
        done = _promtool("test", "rules", str(tests))
        assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_the_grafana_dashboard_is_well_formed_and_reads_only_written_series(
    cli: Invoke, root: Path, server: DDragonServer
) -> None:
    """docs/grafana-dashboard.json: one row repeated per job_id with health, last success age, duration
    and runs; unique panel ids inside the 24-column grid; every query names only series the metrics
    file writes, and parses as PromQL (promtool, as recording rules) where promtool is installed."""
    import json

    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "job_id" in variables["job_id"]["definition"]
    panels = dashboard["panels"]
    assert [p["type"] for p in panels if p["type"] == "row"] == ["row"] and panels[0]["repeat"] == "job_id"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert all(p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels)
    titles = {p["title"] for p in panels}
    assert {"Health", "Last success age", "Run duration", "Runs per hour"} <= titles
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert len(exprs) == 4 and all('job_id="$job_id"' in e for e in exprs)
    prom = root / "all.prom"
    _all_jobs_run(cli, root, server, prom)
    written = {f.name for f in text_string_to_metric_families(prom.read_text())}
    written |= {name + "_total" for name in written}
    named = {n for e in exprs for n in re.findall(r"stratmancer_[a-z_]+", e)}
    assert named <= written, named - written
    if PROMTOOL:
        rules = [
            {"record": f"dashboard:query{i}", "expr": e.replace("$job_id", "x")} for i, e in enumerate(exprs)
        ]
        path = root / "dashboard-queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        checked = _promtool("check", "rules", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr
