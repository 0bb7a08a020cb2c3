"""The PostgreSQL store behind a transaction pooler (PgBouncer, like Supabase's pooler).

The whole queue contract also runs through PgBouncer (conftest ``backend`` = pgbouncer);
these are the pooler-specific parts: migrations started by several processes at once under
a transaction-scoped lock, and telling a pooled DSN from a direct one.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from aisubs.queue.postgres_store import PostgresJobStore, is_pooled_dsn
from aisubs.queue.sql import migrations
from aisubs.settings import QueueSettings, StoreSettings
from tests.queue.queue_pg import drop_schema
from tests.support.pgbouncer import PgBouncer

pytestmark = pytest.mark.postgres


def test_stores_starting_together_through_pgbouncer_migrate_once(
    pg_dsn: str, pgbouncer: PgBouncer
) -> None:
    schema = f"test_pooled_{uuid.uuid4().hex[:8]}"
    settings = StoreSettings(backend="postgres", pool_min_size=1, pool_max_size=2, pooled=True)
    opened: list[PostgresJobStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(
                PostgresJobStore(
                    pgbouncer.dsn, QueueSettings(), store_settings=settings, schema=schema
                )
            )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        versions = [v for v, _ in migrations("postgres")]
        for store in opened:
            assert store.applied_migrations() == versions
        job = opened[0].submit("alice", "u://1")
        assert [j.id for j in opened[1].claim("w", 1)] == [job.id]
    finally:
        for store in opened:
            store.close()
        drop_schema(pg_dsn, schema)


@pytest.mark.parametrize(
    ("dsn", "pooled"),
    [
        ("postgresql://postgres.abcd:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres", True),
        ("postgresql://postgres:pw@db.abcd.supabase.co:6543/postgres", True),
        ("postgresql://postgres:pw@db.abcd.supabase.co:5432/postgres", False),
        ("postgresql://postgres@127.0.0.1:5432/test", False),
        ("host=pooler.internal port=5432 dbname=x", True),
    ],
)
def test_pooled_dsns_are_recognized(dsn: str, pooled: bool) -> None:
    assert is_pooled_dsn(dsn) is pooled


@pytest.mark.parametrize("through", ["direct", "pgbouncer"])
def test_a_store_keeps_to_its_schema(
    pg_dsn: str, request: pytest.FixtureRequest, through: str
) -> None:
    """Direct connections get the schema as a connection option, pooled ones per
    transaction: either way nothing lands in another schema."""
    import psycopg

    schema = f"test_own_{uuid.uuid4().hex[:8]}"
    dsn = pg_dsn if through == "direct" else request.getfixturevalue("pgbouncer").dsn
    settings = StoreSettings(
        backend="postgres", pool_min_size=1, pool_max_size=2, pooled=through == "pgbouncer"
    )
    store = PostgresJobStore(dsn, QueueSettings(), store_settings=settings, schema=schema)
    try:
        job = store.submit("alice", "u://mine")
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'jobs'"
            ).fetchall()
            here = conn.execute(f'SELECT id FROM "{schema}".jobs').fetchall()
        assert ("public",) not in rows
        assert here == [(job.id,)]
    finally:
        store.close()
        drop_schema(pg_dsn, schema)
