"""Against a real run of the app on Ray (``live``, see obs_live_service.py): the dashboard
and the alerts read only series the app really exports, every declared metric shows up,
the job timeline is complete and owner-only, and the job's log lines are JSON stamped with
job id, attempt and worker instance, in the runner and in the model replicas."""

from __future__ import annotations

from typing import Any

import pytest

from aisubs.observability.metrics import GPU_ONLY, METRICS
from aisubs.observability.queue_exporter import QUEUE_GAUGES
from tests.observability.test_obs_rules import alert_exprs, dashboard_exprs, metric_names

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def exported(live: dict[str, Any]) -> set[str]:
    return set(live["ray_names"]) | set(live["ingress_names"])


def gpu_only_names(live: dict[str, Any]) -> set[str]:
    """Series recorded only where a GPU is visible: excused when the run had none."""
    if live["gpu_visible"]:
        return set()
    return {n for spec in METRICS if spec.name in GPU_ONLY for n in spec.exported_names()}


def test_dashboard_reads_only_exported_series(live: dict[str, Any]) -> None:
    have = exported(live) | gpu_only_names(live)
    missing = {
        (title, name)
        for title, expr in dashboard_exprs()
        for name in metric_names(expr)
        if name not in have
    }
    assert not missing, f"dashboard queries name series nobody exports: {sorted(missing)}"
    # and GPU-only names are still ours (declared), not typos
    used = {n for _, expr in dashboard_exprs() for n in metric_names(expr)}
    declared = {n for spec in METRICS for n in spec.exported_names()} | set(QUEUE_GAUGES)
    assert used - exported(live) <= declared


def test_alerts_read_only_exported_series(live: dict[str, Any]) -> None:
    for alert, expr in alert_exprs():
        assert metric_names(expr) <= exported(live), alert


def test_every_declared_metric_is_exported(live: dict[str, Any]) -> None:
    names = set(live["ray_names"])
    for spec in METRICS:
        if spec.name in GPU_ONLY and not live["gpu_visible"]:
            continue
        assert set(spec.exported_names()) <= names, spec.name
    assert set(QUEUE_GAUGES) == set(live["ingress_names"])
    assert live["ingress_status"] == 200
    assert live["ingress_content_type"].startswith("text/plain")
    # Ray Serve's own series sit next to ours on the same agent.
    assert any(n.startswith("ray_serve_") for n in names)


def test_counters_carry_stage_and_code(live: dict[str, Any]) -> None:
    lines = live["ray_aisubs_lines"]
    failed = [line for line in lines if line.startswith("ray_aisubs_jobs_failed_total{")]
    assert any('stage="fetch"' in x and 'outcome="retrying"' in x for x in failed), failed
    assert any('stage="fetch"' in x and 'outcome="failed"' in x for x in failed), failed
    stopped = [line for line in lines if line.startswith("ray_aisubs_jobs_stopped_total{")]
    assert any('reason="cancelled"' in x for x in stopped), stopped
    rtf = {line.split('stage="')[1].split('"')[0] for line in lines if "stage_rtf_count" in line}
    assert {"decode", "asr", "diarization", "subtitles"} <= rtf


def test_timeline_is_complete_and_owner_only(live: dict[str, Any]) -> None:
    good = [(e["kind"], e["detail"].get("stage")) for e in live["events"]["good"]["events"]]
    assert good[0] == ("submitted", None) and good[1] == ("claimed", None)
    assert good[-1] == ("completed", None)
    for stage in ("fetch", "decode", "asr", "subtitles"):
        assert good.index(("stage_started", stage)) < good.index(("stage_finished", stage))
    bad = live["events"]["bad"]["events"]
    kinds = [e["kind"] for e in bad]
    assert kinds[:2] == ["submitted", "claimed"] and "retried" in kinds and kinds[-1] == "failed"
    assert [e["attempt"] for e in bad if e["kind"] == "claimed"] == [1, 2]
    assert live["jobs"]["bad"]["state"] == "failed"
    cancelled = [e["kind"] for e in live["events"]["cancelled"]["events"]]
    assert cancelled[:2] == ["submitted", "claimed"] and cancelled[-1] == "cancelled"
    assert live["jobs"]["cancelled"]["state"] == "cancelled"
    assert live["events_other_key_status"] == 404  # someone else's job does not exist
    assert live["events_no_key_status"] == 401


def test_job_log_lines_are_json_and_stamped(live: dict[str, Any]) -> None:
    job_id = live["jobs"]["good"]["id"]
    entries = [line["json"] for line in live["job_log_lines"]]
    assert entries and all(e is not None for e in entries), live["job_log_lines"][:3]
    for entry in entries:
        if entry.get("job_id") != job_id:
            continue  # a line that merely mentions the id (e.g. an access log)
        assert entry["attempt"] == 1 and entry["worker_instance"], entry
    stamped = [e for e in entries if e.get("job_id") == job_id]
    loggers = {e["logger"] for e in stamped}
    assert {"aisubs.runner", "deployments.transcriber", "deployments.diarizer"} <= loggers
    messages = [e["message"] for e in stamped if e["logger"] == "aisubs.runner"]
    assert messages[0] == "job started" and messages[-1] == "job succeeded"
    workers = {e["logger"]: e["worker_instance"] for e in stamped}
    assert workers["aisubs.runner"].startswith("runner-")
    assert workers["deployments.transcriber"].startswith("Transcriber-")
