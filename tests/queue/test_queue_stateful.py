"""Random interleavings of submit, claim, heartbeat, lease expiry, complete, fail and cancel.

Invariants after every step: no job is lost, none completes twice, attempts never exceed
the maximum, a cancelled job never runs again, the running cap holds, and the per-owner
running counters kept by triggers equal the real number of running jobs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aisubs.errors import Cancelled, InvalidState, LeaseLost
from aisubs.queue.clock import ManualClock
from aisubs.queue.models import JobError, JobState, Progress
from aisubs.queue.postgres_store import PostgresJobStore
from aisubs.queue.sqlite_store import SqliteJobStore
from aisubs.queue.store import JobStore
from aisubs.settings import QueueSettings
from tests.queue.queue_pg import truncate

QUEUE = QueueSettings(
    max_running_per_owner=2,
    max_attempts=3,
    lease_seconds=60,
    retry_min_seconds=5,
    retry_max_seconds=40,
    retry_jitter=0.5,
)
OWNERS = ["ann", "ben", "cat"]

# (store factory, function returning {owner: running} from the owner_load table)
Harness = tuple[Callable[[ManualClock], JobStore], Callable[[JobStore], dict[str, int]]]


def make_machine(harness: Harness) -> type[RuleBasedStateMachine]:
    open_store, owner_load = harness

    class QueueMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = ManualClock()
            self.store = open_store(self.clock)
            self.jobs: list[UUID] = []
            self.leases: list[tuple[UUID, str]] = []  # every lease ever handed out
            self.completions: Counter[UUID] = Counter()
            self.cancelled: set[UUID] = set()
            self.current: dict[UUID, str] = {}  # the lease the last claim handed out

        def teardown(self) -> None:
            self.store.close()

        # ------------------------------------------------------------ actions
        @initialize(owners=st.lists(st.sampled_from(OWNERS), min_size=1, max_size=4))
        def some_jobs(self, owners: list[str]) -> None:
            for owner in owners:
                self.submit(owner, 5)
            self.claim(len(owners), "w0")

        @rule(owner=st.sampled_from(OWNERS), priority=st.integers(1, 10))
        def submit(self, owner: str, priority: int) -> None:
            job = self.store.submit(owner, f"u://{len(self.jobs)}", priority=priority)
            self.jobs.append(job.id)

        @rule(n=st.integers(1, 3), worker=st.sampled_from(["w1", "w2"]))
        def claim(self, n: int, worker: str) -> None:
            for job in self.store.claim(worker, n):
                assert job.id not in self.cancelled, "a cancelled job was claimed"
                assert job.state is JobState.RUNNING and job.lease_token
                assert 1 <= job.attempts <= job.max_attempts
                self.leases.append((job.id, job.lease_token))
                self.current[job.id] = job.lease_token

        @precondition(lambda self: self.leases)
        @rule(pick=st.integers(0, 10**6), fraction=st.floats(0, 1))
        def heartbeat(self, pick: int, fraction: float) -> None:
            job_id, token = self.leases[pick % len(self.leases)]
            try:
                job = self.store.heartbeat(job_id, token, Progress("asr", fraction))
            except (LeaseLost, Cancelled):
                assert self.store.get(job_id).lease_token != token
            else:
                assert job.state is JobState.RUNNING and job.lease_token == token
                assert self.current[job_id] == token, "a stale lease was renewed"

        @rule(seconds=st.sampled_from([1, 10, 30, 61, 200]))
        def advance_clock(self, seconds: int) -> None:
            self.clock.advance(seconds)

        @rule()
        def requeue_expired(self) -> None:
            self.store.requeue_expired()

        @precondition(lambda self: self.leases)
        @rule(pick=st.integers(0, 10**6))
        def complete(self, pick: int) -> None:
            job_id, token = self.leases[pick % len(self.leases)]
            try:
                job = self.store.complete(job_id, token, {"srt": "x"}, compute_seconds=1.0)
            except (LeaseLost, Cancelled):
                return
            assert job.state is JobState.SUCCEEDED
            assert job_id not in self.cancelled
            assert self.current[job_id] == token, "a stale lease completed the job"
            self.completions[job_id] += 1

        @precondition(lambda self: self.leases)
        @rule(pick=st.integers(0, 10**6), retryable=st.booleans())
        def fail(self, pick: int, retryable: bool) -> None:
            job_id, token = self.leases[pick % len(self.leases)]
            error = JobError("boom", "injected", retryable=retryable, stage="asr")
            try:
                job = self.store.fail(job_id, token, error)
            except (LeaseLost, Cancelled):
                return
            assert job.state in (JobState.QUEUED, JobState.FAILED)
            assert self.current[job_id] == token, "a stale lease failed the job"
            if not retryable or job.attempts == job.max_attempts:
                assert job.state is JobState.FAILED

        @precondition(lambda self: self.jobs)
        @rule(pick=st.integers(0, 10**6))
        def cancel(self, pick: int) -> None:
            job_id = self.jobs[pick % len(self.jobs)]
            try:
                job = self.store.cancel(job_id)
            except InvalidState:
                assert self.store.get(job_id).state in (JobState.SUCCEEDED, JobState.FAILED)
                return
            assert job.state is JobState.CANCELLED
            self.cancelled.add(job_id)

        # ------------------------------------------------------------ invariants
        @invariant()
        def nothing_lost_nothing_twice(self) -> None:
            running: Counter[str] = Counter()
            total = 0
            for state in JobState:
                for owner in OWNERS:
                    page = self.store.list_jobs(owner, states={state}, limit=500)
                    total += len(page.jobs)
                    for job in page.jobs:
                        assert job.attempts <= job.max_attempts
                        assert self.completions[job.id] == (job.state is JobState.SUCCEEDED)
                        if job.id in self.cancelled:
                            assert job.state is JobState.CANCELLED
                        if job.state is JobState.RUNNING:
                            running[owner] += 1
                            assert job.lease_token is not None
            assert total == len(self.jobs)
            assert all(n <= QUEUE.max_running_per_owner for n in running.values())
            recorded = {o: n for o, n in owner_load(self.store).items() if n}
            assert recorded == dict(running)

    return QueueMachine


def _sqlite_harness() -> Harness:
    def open_store(clock: ManualClock) -> JobStore:
        return SqliteJobStore(":memory:", QUEUE, clock=clock, rng=random.Random(7))

    def owner_load(store: JobStore) -> dict[str, int]:
        assert isinstance(store, SqliteJobStore)
        with store.backend.connection() as conn:
            rows = conn.execute("SELECT owner, running FROM owner_load").fetchall()
        return {r[0]: r[1] for r in rows}

    return open_store, owner_load


def _postgres_harness(dsn: str, schema: str) -> Harness:
    def open_store(clock: ManualClock) -> JobStore:
        truncate(dsn, schema)
        return PostgresJobStore(dsn, QUEUE, schema=schema, clock=clock, rng=random.Random(7))

    def owner_load(store: JobStore) -> dict[str, int]:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(f"SELECT owner, running FROM {schema}.owner_load").fetchall()
        return {r[0]: r[1] for r in rows}

    return open_store, owner_load


def _run(harness: Harness, examples: int, steps: int) -> None:
    run_state_machine_as_test(
        make_machine(harness),
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            derandomize=True,
        ),
    )


@pytest.mark.slow
def test_random_interleavings_sqlite() -> None:
    _run(_sqlite_harness(), examples=200, steps=50)


@pytest.mark.slow
@pytest.mark.postgres
def test_random_interleavings_postgres(pg_dsn: str, pg_schema: str, request: Any) -> None:
    _run(_postgres_harness(pg_dsn, pg_schema), examples=20, steps=30)
