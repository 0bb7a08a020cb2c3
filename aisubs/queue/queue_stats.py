"""Numbers for operators: live queue statistics, measured speed, ``queue_metrics`` samples."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from aisubs.queue.backend import Tx
from aisubs.queue.core import StoreCore
from aisubs.queue.models import QueueMetricsSample, QueueStats
from aisubs.queue.rows import metric_from_row

# Recent successes the measured speed (compute seconds per audio second) averages over.
SPEED_WINDOW_JOBS = 100


def speed_in(core: StoreCore, tx: Tx) -> float:
    row = tx.one("speed", limit=SPEED_WINDOW_JOBS)
    if row is None or not row["audio"] or row["compute"] is None:
        return core.settings.default_compute_per_audio_second
    return float(row["compute"]) / float(row["audio"])


def compute_per_audio_second(core: StoreCore) -> float:
    with core.tx("read") as tx:
        return speed_in(core, tx)


def stats(core: StoreCore) -> QueueStats:
    db = core.backend
    now = core.clock()
    since = db.time(now - timedelta(hours=1))
    with core.tx("read") as tx:
        depth = {int(r["priority"]): int(r["n"]) for r in tx.all("stats_depth")}
        running = tx.one("stats_running")
        finished = tx.one("stats_finished", since=since)
        errors = {r["stage"]: int(r["n"]) for r in tx.all("stats_errors", since=since)}
        speed = speed_in(core, tx)
    assert running is not None and finished is not None
    oldest = running["oldest_created_at"]
    claims = int(finished["claims"])
    expiry = running["earliest_lease_expiry"]
    return QueueStats(
        queued=sum(depth.values()),
        depth_by_priority=dict(sorted(depth.items(), reverse=True)),
        running=int(running["running"]),
        oldest_wait_s=0.0 if oldest is None else (now - db.from_time(oldest)).total_seconds(),
        completed_last_hour=int(finished["completed"]),
        failed_last_hour=int(finished["failed"]),
        error_rate_by_stage={stage: n / max(claims, n) for stage, n in sorted(errors.items())},
        compute_per_audio_second=speed,
        lease_overdue_s=(
            0.0 if expiry is None else max(0.0, (now - db.from_time(expiry)).total_seconds())
        ),
    )


def write_sample(core: StoreCore, active_workers: int) -> QueueMetricsSample:
    db = core.backend
    now = core.clock()
    since = db.time(now - timedelta(hours=1))
    with core.tx("write") as tx:
        depth = sum(int(r["n"]) for r in tx.all("stats_depth"))
        finished = tx.one("stats_finished", since=since)
        assert finished is not None
        avg = finished["avg_processing_time"]
        row = tx.one(
            "insert_metric",
            id=db.id(uuid.uuid4()),
            timestamp=db.time(now),
            queue_depth=depth,
            active_workers=active_workers,
            avg_processing_time=None if avg is None else float(avg),
            jobs_completed_hour=int(finished["completed"]),
        )
        assert row is not None
        return metric_from_row(db, row)


def list_samples(core: StoreCore, since: datetime) -> list[QueueMetricsSample]:
    db = core.backend
    with core.tx("read") as tx:
        return [metric_from_row(db, r) for r in tx.all("list_metrics", since=db.time(since))]


def prune_samples(core: StoreCore, older_than: datetime) -> int:
    with core.tx("write") as tx:
        return tx.run("prune_metrics", before=core.backend.time(older_than))
