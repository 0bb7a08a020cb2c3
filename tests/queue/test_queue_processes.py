"""Several OS processes on one database: exactly-once claims, and failover after SIGKILL."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from aisubs.errors import LeaseLost
from aisubs.queue.clock import ManualClock
from aisubs.queue.models import JobState
from tests.queue.queue_pg import truncate
from tests.queue.queue_procs import claim_and_complete, claim_then_hang, open_spec

WORKERS = 8
JOBS = 400
QUEUE = {
    "max_running_per_owner": 1000,
    "max_queued_per_owner": 1000,
    "lease_seconds": 30.0,
    "retry_min_seconds": 0.0,
    "retry_jitter": 0.0,
}


@pytest.fixture
def spec(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if backend == "sqlite":
        return {"backend": "sqlite", "path": str(tmp_path / "shared.sqlite3"), "queue": QUEUE}
    dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    truncate(dsn, schema)
    return {"backend": "postgres", "dsn": dsn, "schema": schema, "queue": QUEUE}


@pytest.mark.slow
def test_eight_processes_claim_every_job_exactly_once(spec: dict[str, Any]) -> None:
    store = open_spec(spec)
    ids = {
        str(store.submit(f"owner-{i % 13}", f"u://{i}", priority=1 + i % 10).id)
        for i in range(JOBS)
    }
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [
        ctx.Process(target=claim_and_complete, args=(spec, f"w{i}", start, out))
        for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claims = [job_id for _, claimed in results for job_id in claimed]
    assert len(claims) == len(set(claims)) == JOBS
    assert set(claims) == ids
    stats = store.stats()
    assert (stats.queued, stats.running, stats.completed_last_hour) == (0, 0, JOBS)
    store.close()


@pytest.mark.slow
def test_sigkilled_worker_jobs_are_claimed_again_and_complete(spec: dict[str, Any]) -> None:
    clock = ManualClock()
    store = open_spec(spec, clock=clock)
    for i in range(12):
        store.submit(f"owner-{i % 3}", f"u://{i}")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    doomed = ctx.Process(target=claim_then_hang, args=(spec, clock(), 5, out))
    doomed.start()
    held = out.get(timeout=120)
    assert len(held) == 5
    os.kill(doomed.pid or 0, signal.SIGKILL)
    doomed.join(timeout=30)
    assert doomed.exitcode == -signal.SIGKILL
    held_ids = {UUID(job_id) for job_id, _ in held}
    for job_id in held_ids:
        assert store.get(job_id).state is JobState.RUNNING

    # Nobody noticed the death; the leases simply run out.
    clock.advance(QUEUE["lease_seconds"] + 1)
    reclaimed: dict[UUID, int] = {}
    while jobs := store.claim("survivor", 4):
        for job in jobs:
            reclaimed[job.id] = job.attempts
            store.complete(job.id, job.lease_token or "", {}, compute_seconds=1)
    assert held_ids <= set(reclaimed)
    assert all(reclaimed[j] == 2 for j in held_ids)
    assert len(reclaimed) == 12
    for job_id in held_ids:
        job = store.get(job_id)
        assert job.state is JobState.SUCCEEDED and job.worker_instance == "survivor"
        kinds = [e.kind for e in store.list_events(job_id)]
        assert kinds.count("claimed") == 2 and "lease_expired" in kinds
    for job_id, token in held:  # the dead worker's leases are void
        with pytest.raises(LeaseLost):
            store.complete(UUID(job_id), token, {}, compute_seconds=1)
    store.close()
