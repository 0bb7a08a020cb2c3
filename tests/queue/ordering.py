"""The claim process that queue positions describe, for the tests that check them."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from aisubs.queue.clock import ManualClock
from aisubs.queue.models import Job, JobState
from aisubs.queue.store import JobStore

StoreFactory = Callable[..., JobStore]  # the make_store fixture

# Long enough for every retry wait of the test queues to pass.
PAST_EVERY_WAIT_S = 100_000


def running_jobs(store: JobStore, owners: list[str]) -> list[UUID]:
    return [
        job.id
        for owner in owners
        for job in store.list_jobs(owner, states={JobState.RUNNING}, limit=500).jobs
    ]


def drain_one_at_a_time(store: JobStore, clock: ManualClock, owners: list[str]) -> list[UUID]:
    """Claim one job at a time, each finishing before the next claim; once nothing can be
    claimed, let the jobs that were running before end and every retry wait pass, then go
    on. Returns the ids in claim order."""
    before = running_jobs(store, owners)
    order: list[UUID] = []
    for phase in range(2):
        while jobs := store.claim("drain", 1):
            job = jobs[0]
            order.append(job.id)
            store.complete(job.id, job.lease_token or "", {}, compute_seconds=1)
        if phase == 0:
            for job_id in before:
                job = store.get(job_id)
                if job.state == JobState.RUNNING:
                    store.complete(job_id, job.lease_token or "", {}, compute_seconds=1)
            clock.advance(PAST_EVERY_WAIT_S)
    return order


def claim_one(store: JobStore, worker: str = "w1") -> Job:
    """Claim exactly one job (the test fails when there is none)."""
    jobs = store.claim(worker, 1)
    assert len(jobs) == 1, jobs
    return jobs[0]
