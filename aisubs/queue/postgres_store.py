"""PostgreSQL job store (what Supabase runs), over a psycopg 3 connection pool.

Claims are serialized by a transaction-scoped advisory lock so the per-owner running cap
sees every committed claim, and lock rows with ``FOR UPDATE SKIP LOCKED`` so a claim never
waits behind a cancel or delete holding a row. Submissions of one owner are serialized by a
per-owner advisory lock (the owner's queued cap). Migrations from ``supabase/migrations``
are applied at start, tracked in ``aisubs_schema_migrations`` under a session advisory lock
so several processes starting together apply them once.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql as pgsql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from aisubs.errors import StoreUnavailable
from aisubs.queue.clock import Clock
from aisubs.queue.sql import migrations, queries
from aisubs.queue.sql_store import Row, SqlJobStore, TxMode
from aisubs.settings import QueueSettings, StoreSettings

MIGRATION_LOCK_KEY = "aisubs:migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Any], sql: Mapping[str, str]) -> None:
        self._cur = conn.cursor(row_factory=dict_row)
        self._sql = sql

    def one(self, name: str, **params: Any) -> Row | None:
        self._cur.execute(self._sql[name], params)
        row: Row | None = self._cur.fetchone()
        return row

    def all(self, name: str, **params: Any) -> list[Row]:
        self._cur.execute(self._sql[name], params)
        return list(self._cur.fetchall())

    def run(self, name: str, **params: Any) -> int:
        self._cur.execute(self._sql[name], params)
        return self._cur.rowcount

    def execute(self, query: str, params: Any = None) -> None:
        self._cur.execute(query, params)


class PostgresJobStore(SqlJobStore):
    """:class:`JobStore` on PostgreSQL; ``schema`` (optional) isolates its tables."""

    def __init__(
        self,
        dsn: str,
        settings: QueueSettings,
        *,
        store_settings: StoreSettings | None = None,
        schema: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(settings, clock=clock, rng=rng)
        store = store_settings or StoreSettings(backend="postgres", postgres_dsn=dsn)
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.schema = schema
        self._sql = queries("postgres")
        self._claim_key = f"aisubs:{schema or 'default'}:claim"
        self._owner_key = f"aisubs:{schema or 'default'}:owner:"
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, round(store.connect_timeout_s)),
        }
        if schema is not None:
            kwargs["options"] = f"-c search_path={schema}"
        self._pool: ConnectionPool[Any] = ConnectionPool(
            dsn,
            min_size=store.pool_min_size,
            max_size=store.pool_max_size,
            kwargs=kwargs,
            timeout=store.connect_timeout_s,
            open=False,
            name="aisubs-jobstore",
        )
        try:
            self._pool.open(wait=True, timeout=store.connect_timeout_s)
            self._migrate()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._pool.close()
            raise StoreUnavailable(f"cannot reach PostgreSQL job store: {exc}") from exc
        except BaseException:
            self._pool.close()
            raise

    # ------------------------------------------------------------------ connections
    @contextmanager
    def _transaction(self, mode: TxMode, owner_lock: str | None = None) -> Iterator[_PgTx]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                tx = _PgTx(conn, self._sql)
                if mode == "claim":
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        (self._claim_key,),
                    )
                if owner_lock is not None:
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        (self._owner_key + owner_lock,),
                    )
                yield tx
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"PostgreSQL job store unavailable: {exc}") from exc

    def _migrate(self) -> None:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (MIGRATION_LOCK_KEY,))
            try:
                if self.schema is not None:
                    conn.execute(
                        pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            pgsql.Identifier(self.schema)
                        )
                    )
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS aisubs_schema_migrations ("
                    " version text PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                applied = {
                    r[0] for r in conn.execute("SELECT version FROM aisubs_schema_migrations")
                }
                for version, script in migrations("postgres"):
                    if version in applied:
                        continue
                    with conn.transaction():
                        conn.execute(script.encode())  # no params: several statements
                        conn.execute(
                            "INSERT INTO aisubs_schema_migrations (version) VALUES (%s)",
                            (version,),
                        )
            finally:
                conn.execute(
                    "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (MIGRATION_LOCK_KEY,)
                )

    def applied_migrations(self) -> list[str]:
        """Versions recorded in the tracking table, in order."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT version FROM aisubs_schema_migrations ORDER BY version"
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        self._pool.close()

    # ------------------------------------------------------------------ encodings
    def _t(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the job store; the clock must be aware")
        return value

    def _dt(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise TypeError(f"expected a timestamp, got {value!r}")
        return value.astimezone(UTC)

    def _json(self, value: Mapping[str, Any]) -> Jsonb:
        return Jsonb(dict(value))

    def _unjson(self, value: Any) -> dict[str, Any]:
        return dict(value)

    def _id(self, value: UUID) -> UUID:
        return value
