"""Fixtures of the queue tests: every contract test runs against SQLite, PostgreSQL, and
PostgreSQL through a PgBouncer in ``pool_mode = transaction`` (what Supabase's pooler is).

PostgreSQL tests use 127.0.0.1:5432 (trust auth, database ``test``) in a fresh schema per
test session, emptied before each test; the pooled ones go through a private PgBouncer on
127.0.0.1 (tests/support/pgbouncer.py) with the store's ``pooled`` setting on. Without a
server (or the pgbouncer binary) they skip, unless ``CI`` is set: then they fail, so CI can
never silently stop testing either.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aisubs.queue.clock import ManualClock
from aisubs.queue.postgres_store import PostgresJobStore
from aisubs.queue.sqlite_store import SqliteJobStore
from aisubs.queue.store import JobStore
from aisubs.settings import QueueSettings, StoreSettings
from tests.queue.queue_pg import drop_schema, truncate

# Small, deterministic queue rules for tests (no jitter unless a test asks for it).
TEST_QUEUE = {
    "retry_min_seconds": 10.0,
    "retry_max_seconds": 100.0,
    "retry_jitter": 0.0,
    "lease_seconds": 60.0,
}

StoreFactory = Callable[..., JobStore]


@pytest.fixture(scope="session")
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A schema of our own for this test session, migrated once, dropped at the end."""
    schema = f"test_queue_{uuid.uuid4().hex[:10]}"
    PostgresJobStore(pg_dsn, QueueSettings(), schema=schema).close()
    yield schema
    drop_schema(pg_dsn, schema)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("pgbouncer", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> Iterator[StoreFactory]:
    """Build stores on one fresh database: ``make_store(max_running_per_owner=1)``.

    Every store of a test shares the same database (SQLite file or emptied PG schema).
    """
    opened: list[JobStore] = []
    if backend != "sqlite":
        dsn = request.getfixturevalue("pg_dsn")
        schema = request.getfixturevalue("pg_schema")
        truncate(dsn, schema)
        store_settings = StoreSettings(backend="postgres", pool_min_size=1, pool_max_size=4)
        if backend == "pgbouncer":
            dsn = request.getfixturevalue("pgbouncer").dsn
            store_settings = store_settings.model_copy(update={"pooled": True})

    def factory(*, seed: int = 0, **queue: Any) -> JobStore:
        settings = QueueSettings(**{**TEST_QUEUE, **queue})
        store: JobStore
        if backend == "sqlite":
            store = SqliteJobStore(
                tmp_path / "queue.sqlite3", settings, clock=clock, rng=random.Random(seed)
            )
        else:
            store = PostgresJobStore(
                dsn,
                settings,
                store_settings=store_settings,
                schema=schema,
                clock=clock,
                rng=random.Random(seed),
            )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> JobStore:
    return make_store()
