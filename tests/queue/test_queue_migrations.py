"""Schemas: PostgreSQL migrations on an empty database (with Supabase RLS), SQLite versions,
and the two schemas staying in step."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from aisubs.queue.postgres_store import PostgresJobStore
from aisubs.queue.sql import migrations
from aisubs.queue.sqlite_store import SqliteJobStore
from aisubs.settings import QueueSettings
from tests.support.paths import REPO

TABLES = {"jobs", "job_events", "owner_load", "queue_metrics", "api_keys"}


@pytest.fixture
def fresh_db(pg_dsn: str) -> Iterator[str]:
    """An empty database of its own (test_mig_<random>), dropped afterwards."""
    name = f"test_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(pg_dsn)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_supabase_folder_is_what_the_store_applies() -> None:
    folder = REPO / "supabase" / "migrations"
    on_disk = sorted((p.stem, p.read_text()) for p in folder.glob("*.sql"))
    assert on_disk == migrations("postgres")
    for version, _ in on_disk:
        assert version[:14].isdigit() and version[14] == "_"  # Supabase CLI naming


@pytest.mark.postgres
def test_migrations_apply_to_an_empty_database(fresh_db: str) -> None:
    store = PostgresJobStore(fresh_db, QueueSettings())
    versions = [v for v, _ in migrations("postgres")]
    assert store.applied_migrations() == versions
    store.close()
    again = PostgresJobStore(fresh_db, QueueSettings())  # nothing left to apply
    assert again.applied_migrations() == versions
    alice = again.submit("alice", "u://a")
    again.submit("bob", "u://b")
    job = again.claim("w", 1)[0]
    assert job.id == alice.id
    assert again.complete(job.id, job.lease_token or "", {}, compute_seconds=1).result == {}
    again.close()

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # Re-running a migration by hand (as `supabase db reset` might) is harmless.
        for _, script in migrations("postgres"):
            conn.execute(script.encode())
        # A signed-in Supabase user sees only their own jobs, and cannot write.
        with conn.transaction():
            conn.execute("SET LOCAL ROLE authenticated")
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", ('{"sub": "alice"}',))
            owners = [r[0] for r in conn.execute("SELECT owner FROM jobs")]
            events = {r[0] for r in conn.execute("SELECT job_id FROM job_events")}
        assert owners == ["alice"]
        assert events == {alice.id}
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SET LOCAL ROLE authenticated")
            conn.execute("DELETE FROM jobs")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE authenticated")
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)  # no claims


@pytest.mark.postgres
def test_sqlite_and_postgres_schemas_match(fresh_db: str, tmp_path: Path) -> None:
    PostgresJobStore(fresh_db, QueueSettings()).close()
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = ANY(%s)",
            (list(TABLES),),
        ).fetchall()
    pg = {(t, c) for t, c in rows}
    SqliteJobStore(tmp_path / "q.sqlite3", QueueSettings()).close()
    with sqlite3.connect(tmp_path / "q.sqlite3") as conn:
        lite = {
            (t, r[1]) for t in TABLES for r in conn.execute(f"PRAGMA table_info({t})").fetchall()
        }
    assert {t for t, _ in pg} == TABLES
    assert pg == lite


def test_sqlite_schema_is_versioned(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    store = SqliteJobStore(path, QueueSettings())
    assert store.schema_version() == len(migrations("sqlite"))
    store.submit("alice", "u://a")
    store.close()
    reopened = SqliteJobStore(path, QueueSettings())  # applies nothing, keeps the data
    assert reopened.schema_version() == len(migrations("sqlite"))
    assert len(reopened.list_jobs("alice").jobs) == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reopened.close()
