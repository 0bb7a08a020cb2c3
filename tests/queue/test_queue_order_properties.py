"""Claim order properties on random queues, both stores.

* A batch claim takes exactly what the same number of single claims would take.
* With no new arrivals, the job reported at position k is the k-th one claimed when claims
  come one at a time (each job finishing before the next claim; jobs that were already
  running, and retries waiting for their not_before, end or come due once nothing else can
  be claimed: see aisubs.queue.positions).
* A claim never returns one job twice, even while other workers finish jobs between the
  statements of the claim (the PostgreSQL store used to page with LIMIT/OFFSET).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisubs.queue.clock import ManualClock
from aisubs.queue.models import JobError, JobState
from aisubs.queue.postgres_store import PostgresJobStore
from aisubs.queue.sqlite_store import SqliteJobStore
from aisubs.queue.store import JobStore
from aisubs.settings import QueueSettings, StoreSettings
from tests.queue.ordering import drain_one_at_a_time
from tests.queue.queue_pg import drop_schema, truncate

OWNERS = ["ann", "ben", "cat", "dan", "eve"]
TRANSIENT = JobError("fetch_failed", "connection reset", retryable=True, stage="fetch")


def queue_settings(max_running: int) -> QueueSettings:
    return QueueSettings(
        max_running_per_owner=max_running,
        max_queued_per_owner=1000,
        retry_min_seconds=30,
        retry_max_seconds=60,
        retry_jitter=0.0,
        lease_seconds=3600,
    )


@dataclass
class Opener:
    """Opens fresh, empty stores of one backend, one per clock given."""

    backend: str
    dsn: str = ""
    schema: str = ""

    @contextmanager
    def open(self, queue: QueueSettings, *clocks: ManualClock) -> Iterator[list[JobStore]]:
        stores: list[JobStore] = []
        try:
            for i, clock in enumerate(clocks):
                if self.backend == "sqlite":
                    stores.append(SqliteJobStore(":memory:", queue, clock=clock))
                    continue
                schema = f"{self.schema}_{i}" if i else self.schema
                stores.append(
                    PostgresJobStore(
                        self.dsn,
                        queue,
                        store_settings=StoreSettings(
                            backend="postgres", pool_min_size=1, pool_max_size=4
                        ),
                        schema=schema,
                        clock=clock,
                    )
                )
                truncate(self.dsn, schema)
            yield stores
        finally:
            for store in stores:
                store.close()
            for i in range(1, len(clocks)):
                if self.backend == "postgres":
                    drop_schema(self.dsn, f"{self.schema}_{i}")


@pytest.fixture
def pg_opener(pg_dsn: str, pg_schema: str) -> Opener:
    return Opener("postgres", pg_dsn, pg_schema)


# An operation on the queue: submit a job, claim and finish jobs, let time pass.
Op = tuple[str, Any, Any]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(OWNERS), st.integers(1, 3)),
        st.tuples(st.just("claim"), st.integers(1, 4), st.sampled_from(["done", "retry", "keep"])),
        st.tuples(st.just("wait"), st.integers(1, 90), st.none()),
        st.tuples(st.just("flood"), st.sampled_from(OWNERS), st.integers(20, 80)),
    ),
    min_size=1,
    max_size=40,
)


def replay(store: JobStore, clock: ManualClock, script: list[Op]) -> None:
    """Build a queue with a history: tags, rounds, running jobs and waiting retries."""
    for n, (kind, a, b) in enumerate(script):
        if kind == "submit":
            store.submit(a, f"u://{n}", priority=b, audio_duration_s=float(n % 7 + 1))
        elif kind == "flood":  # a long backlog, more than one page of candidates
            for i in range(b):
                store.submit(a, f"u://{n}.{i}", priority=2)
        elif kind == "claim":
            for job in store.claim("setup", a):
                token = job.lease_token or ""
                if b == "done":
                    store.complete(job.id, token, {}, compute_seconds=1.0)
                elif b == "retry":
                    store.fail(job.id, token, TRANSIENT)
        else:
            clock.advance(a)


def _settings(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def batch_equals_singles(opener: Opener, script: list[Op], batch: int, max_running: int) -> None:
    clock_a, clock_b = ManualClock(), ManualClock()
    with opener.open(queue_settings(max_running), clock_a, clock_b) as (one, other):
        replay(one, clock_a, script)  # the same history on both stores, at the same times
        replay(other, clock_b, script)
        batched = [job.source for job in one.claim("w", batch)]
        single: list[str] = []
        for _ in range(batch):
            jobs = other.claim("w", 1)
            if not jobs:
                break
            single.append(jobs[0].source)
    assert batched == single


def position_is_claim_rank(opener: Opener, script: list[Op], max_running: int) -> None:
    clock = ManualClock()
    with opener.open(queue_settings(max_running), clock) as (store,):
        replay(store, clock, script)
        queued = [
            job.id
            for owner in OWNERS
            for job in store.list_jobs(owner, states={JobState.QUEUED}, limit=500).jobs
        ]
        positions = {job_id: store.position(job_id, worker_slots=1) for job_id in queued}
        claimed = drain_one_at_a_time(store, clock, OWNERS)
    assert sorted(map(str, claimed)) == sorted(map(str, queued))
    reported = {job_id: pos.position for job_id, pos in positions.items() if pos is not None}
    assert [reported[job_id] for job_id in claimed] == list(range(1, len(claimed) + 1))


@_settings(40)
@given(script=ops, batch=st.integers(1, 8), max_running=st.integers(1, 3))
def test_batch_claim_takes_what_single_claims_would_sqlite(
    script: list[Op], batch: int, max_running: int
) -> None:
    batch_equals_singles(Opener("sqlite"), script, batch, max_running)


@pytest.mark.postgres
@_settings(12)
@given(script=ops, batch=st.integers(1, 8), max_running=st.integers(1, 3))
def test_batch_claim_takes_what_single_claims_would_postgres(
    pg_opener: Opener, script: list[Op], batch: int, max_running: int
) -> None:
    batch_equals_singles(pg_opener, script, batch, max_running)


@_settings(40)
@given(script=ops, max_running=st.integers(1, 3))
def test_position_k_is_the_kth_claimed_sqlite(script: list[Op], max_running: int) -> None:
    position_is_claim_rank(Opener("sqlite"), script, max_running)


@pytest.mark.postgres
@_settings(12)
@given(script=ops, max_running=st.integers(1, 3))
def test_position_k_is_the_kth_claimed_postgres(
    pg_opener: Opener, script: list[Op], max_running: int
) -> None:
    position_is_claim_rank(pg_opener, script, max_running)


@pytest.mark.postgres
def test_a_job_finishing_during_a_claim_never_makes_it_return_a_job_twice(
    pg_dsn: str, pg_schema: str
) -> None:
    """PostgreSQL reads committed data per statement. The claim used to read its candidates
    in pages (LIMIT/OFFSET, one statement each): a job ending between two pages re-ranked
    its owner, shifted the rows, and the second page repeated rows of the first, so one
    claim(limit=10) returned the same job twice (same lease token: it would run twice).
    Here a job ends, from another connection, right after the claim read its first rows.
    """
    clock = ManualClock()
    with Opener("postgres", pg_dsn, pg_schema).open(queue_settings(3), clock) as (store,):
        other = PostgresJobStore(pg_dsn, queue_settings(3), schema=pg_schema, clock=clock)
        store.submit("eve", "u://eve-running")
        (running,) = store.claim("setup", 1)
        for i in range(5):
            store.submit("eve", f"u://eve-{i}")
        for owner, n in [("ann", 32), ("ben", 31), ("cat", 10)]:
            for i in range(n):
                clock.advance(0.001)
                store.submit(owner, f"u://{owner}-{i}")

        def end_eves_job() -> None:
            other.complete(running.id, running.lease_token or "", {}, compute_seconds=1.0)

        with job_ends_mid_claim(store, end_eves_job):
            batch = store.claim("w", 10)
        other.close()
    ids = [str(job.id) for job in batch]
    assert len(ids) == 10
    assert len(set(ids)) == len(ids), "one claim returned a job twice"


@contextmanager
def job_ends_mid_claim(store: JobStore, end_a_job: Callable[[], None]) -> Iterator[None]:
    """Run ``end_a_job`` once, right after the first candidate rows of a claim were read."""
    backend = store.backend  # type: ignore[attr-defined]
    real = backend.transaction
    fired = threading.Event()

    @contextmanager
    def transaction(mode: str, owner_lock: str | None = None) -> Iterator[Any]:
        with real(mode, owner_lock) as tx:
            yield _InterruptedTx(tx, lambda: fired.is_set() or (fired.set(), end_a_job()))

    backend.transaction = transaction
    try:
        yield
    finally:
        backend.transaction = real
    assert fired.is_set(), "the claim read no candidates"


class _InterruptedTx:
    def __init__(self, tx: Any, interrupt: Callable[[], Any]) -> None:
        self._tx = tx
        self._interrupt = interrupt

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    @contextmanager
    def iterate(self, name: str, **params: Any) -> Iterator[Iterator[Any]]:
        with self._tx.iterate(name, **params) as rows:
            yield self._after_first(rows) if name == "claim_candidates" else rows

    def _after_first(self, rows: Iterator[Any]) -> Iterator[Any]:
        for n, row in enumerate(rows):
            yield row
            if n == 0:
                self._interrupt()
