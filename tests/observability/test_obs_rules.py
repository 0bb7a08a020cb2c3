"""Alert rules, their promtool unit tests, the Prometheus example config, and the Grafana
dashboard's queries, checked with promtool (``make test`` installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO

PROMETHEUS = REPO / "cluster" / "prometheus"
DASHBOARD = REPO / "cluster" / "grafana" / "ai-subs.json"
SEED_PANELS = (
    "Queue depth over time",
    "Worker utilisation",
    "Job completion rate",
    "Error rate by stage",
    "GPU memory per replica",
    "Queue wait percentiles",
    "Replicas against backlog",
)
SEED_ALERTS = {
    "AisubsQueueDepthWarning",
    "AisubsQueueDepthCritical",
    "AisubsWorkerErrorRateHigh",
    "AisubsAverageWaitHigh",
    "AisubsBacklogWithoutWorkers",
    "AisubsJobPastLease",
}

# PromQL words that look like metric names but are not.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan", "le",
}  # fmt: skip


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool is not installed (make test installs the Debian package)")
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (syntax is checked by promtool separately)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    # label lists after by/without/on/ignoring/group_*
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = match.group(0)
        end = match.end()
        if expr[end:].lstrip().startswith("(") or word.lower() in KEYWORDS:
            continue  # a function call
        names.add(word)
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def alert_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def test_alert_rules_are_valid() -> None:
    assert "SUCCESS" in promtool("check", "rules", "alerts.yml")
    assert {name for name, _ in alert_exprs()} >= SEED_ALERTS


def test_alert_rules_unit_tests_pass() -> None:
    promtool("test", "rules", "alerts_test.yml")


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {name for name, _ in alert_exprs()} <= tested


def test_prometheus_example_config_is_valid() -> None:
    promtool("check", "config", "--syntax-only", "prometheus.yml")


def test_dashboard_has_the_panels_and_its_queries_parse(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [p["title"] for p in dashboard["panels"]]
    assert set(SEED_PANELS) <= set(titles)
    exprs = dashboard_exprs()
    assert all(expr.strip() for _, expr in exprs)
    # promtool parses every query as a recording rule: any PromQL syntax error fails here.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": expr.replace("$__rate_interval", "5m")}
                    for i, (_, expr) in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(exprs)} rules found" in promtool(
        "check", "rules", "dashboard_rules.yml", cwd=tmp_path
    )


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (stage) (rate(ray_aisubs_jobs_failed_total{code="x",a=~"b|c"}[15m])) '
        "/ ignoring(stage) group_left() clamp_min(sum(rate(ray_aisubs_jobs_claimed_total[15m]))"
        ", 1e-9) and on() aisubs_queue_depth > bool 0"
    )
    assert metric_names(expr) == {
        "ray_aisubs_jobs_failed_total",
        "ray_aisubs_jobs_claimed_total",
        "aisubs_queue_depth",
    }
    assert metric_names("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))") == {"x_bucket"}
