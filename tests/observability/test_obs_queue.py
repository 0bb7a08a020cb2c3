"""Queue-level observability without Ray: the dispatcher's samples and claim metrics, the
scrape-time queue gauges, and the /metrics route."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from aisubs.dispatch import Dispatcher
from aisubs.errors import StoreUnavailable
from aisubs.media.storage import Storage
from aisubs.observability import JobMetrics, MemoryRecorder
from aisubs.observability import metrics as m
from aisubs.observability.queue_exporter import QUEUE_GAUGES, QueueCollector, render
from aisubs.queue import open_store
from aisubs.queue.clock import ManualClock
from aisubs.queue.models import JobError
from aisubs.queue.sqlite_store import SqliteJobStore
from tests.observability.obs_support import obs_settings


class Ticker:
    """The dispatcher's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _store(tmp: Path, clock: ManualClock, **sections: Any) -> tuple[Any, SqliteJobStore]:
    settings = obs_settings(tmp, **sections)
    return settings, SqliteJobStore(settings.store.sqlite_path, settings.queue, clock=clock)


def _values(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_dispatcher_samples_every_interval_and_prunes_by_retention(tmp_path: Path) -> None:
    clock, ticker = ManualClock(), Ticker()
    settings, store = _store(
        tmp_path, clock, queue={"metrics_sample_seconds": 60, "metrics_retention_days": 1}
    )
    workers = [3]
    core = Dispatcher(settings, store, active_workers=lambda: workers[0], clock=ticker)
    core.settings.serve.max_replicas = 0  # sample only: claim nothing
    for i in range(4):
        store.submit("alice", f"https://example.com/{i}.wav", priority=5)
    # A job that finished 40 s after it started, within the hour, feeds the averages.
    (done,) = store.claim("w", 1)
    clock.advance(40)
    store.complete(done.id, done.lease_token, {}, compute_seconds=40.0, audio_duration_s=80.0)

    assert core.step().sampled
    ticker.now += 30
    assert not core.step().sampled  # not a minute yet
    ticker.now += 31
    workers[0] = 1
    clock.advance(61)
    assert core.step().sampled
    first, second = store.list_queue_metrics(clock() - timedelta(days=2))
    assert (first.queue_depth, first.active_workers, first.jobs_completed_hour) == (3, 3, 1)
    assert first.avg_processing_time == pytest.approx(40.0)
    assert second.active_workers == 1 and second.timestamp - first.timestamp == timedelta(
        seconds=61
    )

    # A day later (store clock), the next sample prunes both older ones.
    clock.advance(86_400 + 1)
    ticker.now += 61
    assert core.step().sampled
    (last,) = store.list_queue_metrics(clock() - timedelta(days=30))
    assert last.timestamp == clock()
    assert last.jobs_completed_hour == 0 and last.avg_processing_time is None


def test_claims_record_queue_wait_by_priority(tmp_path: Path) -> None:
    clock = ManualClock()
    settings, store = _store(
        tmp_path,
        clock,
        queue={"retry_min_seconds": 100, "retry_max_seconds": 200, "lease_seconds": 10_000},
    )
    recorder = MemoryRecorder()
    core = Dispatcher(settings, store, metrics=JobMetrics(recorder))
    store.submit("alice", "https://example.com/a.wav", priority=7)
    clock.advance(30)
    store.submit("bob", "https://example.com/b.wav", priority=3)
    clock.advance(15)
    report = core.step()
    assert report.claimed == 2
    assert recorder.get(m.JOB_WAIT, priority="7") == [pytest.approx(45)]
    assert recorder.get(m.JOB_WAIT, priority="3") == [pytest.approx(15)]
    assert recorder.get(m.JOBS_CLAIMED, priority="7") == [1]

    # A retried job's wait counts from when the retry became due, not from submission.
    job = next(j for j in report.jobs if j.priority == 7)
    retry = store.fail(job.id, job.lease_token, JobError("x", "boom", retryable=True))
    clock.advance(500)  # the retry is due after ~100 s backoff, and is claimed at 500 s
    (again,) = core.step().jobs
    assert again.id == job.id
    due_for = (clock() - retry.not_before).total_seconds()
    assert 300 < due_for < 500
    assert recorder.get(m.JOB_WAIT, priority="7")[-1] == pytest.approx(due_for)
    assert recorder.get(m.JOBS_CLAIMED, priority="7") == [2]


def test_queue_gauges_at_scrape_time(tmp_path: Path) -> None:
    clock = ManualClock()
    _, store = _store(tmp_path, clock)
    for priority in (9, 5, 5):
        store.submit("alice", "https://example.com/x.wav", priority=priority)
    store.submit("bob", "https://example.com/y.wav", priority=2)
    (running,) = store.claim("w", 1, lease_seconds=10)  # takes the priority-9 job
    clock.advance(100)  # its lease ran out 90 s ago and nothing reaped it
    replicas = {"Transcriber": {"running": 2, "pending": 1}, "Diarizer": {"running": 1}}
    text = render(QueueCollector(store.stats, lambda: replicas, slots_per_replica=3))
    values = _values(text)
    depth = {dict(k[1])["priority"]: v for k, v in values.items() if k[0] == "aisubs_queue_depth"}
    assert depth == {str(p): {5: 2, 2: 1}.get(p, 0) for p in range(1, 11)}
    assert values[("aisubs_jobs_running", ())] == 1
    assert values[("aisubs_queue_lease_overdue_seconds", ())] == pytest.approx(90)
    assert values[("aisubs_queue_oldest_wait_seconds", ())] == pytest.approx(100)
    assert values[("aisubs_store_up", ())] == 1
    key = ("aisubs_worker_replicas", (("deployment", "Transcriber"), ("state", "pending")))
    assert values[key] == 1
    assert (
        values[("aisubs_worker_replicas", (("deployment", "Diarizer"), ("state", "pending")))] == 0
    )
    assert values[("aisubs_worker_slots", (("deployment", "Transcriber"),))] == 6
    assert {name for name, _ in values} <= set(QUEUE_GAUGES)
    # reaped: the overdue gauge falls back to zero
    assert store.requeue_expired() == 1
    values = _values(render(QueueCollector(store.stats, lambda: replicas, 3)))
    assert values[("aisubs_queue_lease_overdue_seconds", ())] == 0
    assert running.id is not None


def test_store_down_still_answers_with_store_up_zero() -> None:
    def down() -> Any:
        raise StoreUnavailable("connection refused")

    values = _values(render(QueueCollector(down, lambda: {"Transcriber": {"running": 0}}, 2)))
    assert values[("aisubs_store_up", ())] == 0
    assert ("aisubs_queue_depth", (("priority", "5"),)) not in values
    assert (
        values[("aisubs_worker_replicas", (("deployment", "Transcriber"), ("state", "running")))]
        == 0
    )


@pytest.mark.parametrize("enabled", [True, False])
def test_metrics_route_on_the_api(tmp_path: Path, enabled: bool) -> None:
    from serve_app.api import ApiState, create_api

    settings = obs_settings(tmp_path, observability={"metrics_route": enabled})
    store = open_store(settings)
    store.submit("alice", "https://example.com/x.wav", priority=4)
    state = ApiState.create(
        settings,
        store=store,
        storage=Storage.from_settings(settings.media),
        replica_counts=lambda: {"Transcriber": {"running": 1, "pending": 0}},
    )
    with TestClient(create_api(state)) as client:
        r = client.get("/metrics")
        if not enabled:
            assert r.status_code == 404
            return
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        values = _values(r.content)
        assert values[("aisubs_queue_depth", (("priority", "4"),))] == 1
        assert values[("aisubs_worker_slots", (("deployment", "Transcriber"),))] == 2
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]
