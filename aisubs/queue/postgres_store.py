"""PostgreSQL job store (what Supabase runs), over a psycopg 3 connection pool.

Claims are serialized by a transaction-scoped advisory lock so the per-owner running cap
sees every committed claim, and lock rows with ``FOR UPDATE SKIP LOCKED`` so a claim never
waits behind a cancel or delete holding a row. Submissions of one owner are serialized by a
per-owner advisory lock (the owner's queued cap).

Pooled connections (Supabase's pooler, PgBouncer in ``pool_mode = transaction``) hand each
transaction to whichever server connection is free, so nothing may rely on session state:

* prepared statements are off (``prepare_threshold=None``): a statement prepared on one
  server connection does not exist on the next;
* every lock is transaction-scoped (``pg_advisory_xact_lock``), migrations included: each
  migration runs in one transaction that first takes the migration lock, then checks the
  tracking table ``aisubs_schema_migrations``, so processes starting together apply it once;
* a store confined to a ``schema`` (tests, benchmarks) sets ``search_path`` per
  transaction (``SET LOCAL``, one more round trip) instead of as a connection option,
  which a pooler refuses or ignores; a direct connection keeps the connection option.

``StoreSettings.pooled`` says whether the DSN goes through such a pooler; ``None`` guesses
from the DSN (port 6543 or a host name containing ``pooler``, as Supabase's pooler URLs do).
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
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from aisubs.errors import StoreUnavailable
from aisubs.queue.backend import Row, SqlBackend, TxMode
from aisubs.queue.clock import Clock
from aisubs.queue.sql import Dialect, migrations, queries
from aisubs.queue.sql_store import SqlJobStore
from aisubs.settings import QueueSettings, StoreSettings

MIGRATION_LOCK_KEY = "aisubs:migrations"
SUPABASE_POOLER_PORT = "6543"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


def is_pooled_dsn(dsn: str) -> bool:
    """Whether ``dsn`` looks like a transaction pooler (Supabase's, by port or host name)."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return False
    return str(info.get("port", "")) == SUPABASE_POOLER_PORT or "pooler" in str(
        info.get("host", "")
    )


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Any], sql: Mapping[str, str]) -> None:
        self._conn = conn
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

    @contextmanager
    def iterate(self, name: str, **params: Any) -> Iterator[Iterator[Row]]:
        # A server-side cursor: one statement (one snapshot), rows fetched 64 at a time.
        with self._conn.cursor(name=f"aisubs_{name}", row_factory=dict_row) as cur:
            cur.itersize = 64
            cur.execute(self._sql[name], params)
            yield iter(cur)

    def execute(self, query: str | pgsql.Composed, params: Any = None) -> None:
        self._cur.execute(query, params)


class PostgresBackend(SqlBackend):
    """A connection pool, transactions and encodings for one PostgreSQL database/schema."""

    dialect: Dialect = "postgres"

    def __init__(
        self, dsn: str, store: StoreSettings | None = None, *, schema: str | None = None
    ) -> None:
        store = store or StoreSettings(backend="postgres", postgres_dsn=dsn)
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.schema = schema
        self.pooled = is_pooled_dsn(dsn) if store.pooled is None else store.pooled
        self._sql = queries("postgres")
        self._claim_key = f"aisubs:{schema or 'default'}:claim"
        self._owner_key = f"aisubs:{schema or 'default'}:owner:"
        self._search_path = (
            None
            if schema is None
            else pgsql.SQL("SET LOCAL search_path TO {}").format(pgsql.Identifier(schema))
        )
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, round(store.connect_timeout_s)),
            "application_name": store.application_name,
        }
        if self.pooled:
            kwargs["prepare_threshold"] = None
        elif schema is not None:  # one round trip less per transaction than SET LOCAL
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
    def transaction(self, mode: TxMode, owner_lock: str | None = None) -> Iterator[_PgTx]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                tx = _PgTx(conn, self._sql)
                if self.pooled and self._search_path is not None:
                    tx.execute(self._search_path)
                if mode == "claim":
                    tx.execute(_LOCK, (self._claim_key,))
                if owner_lock is not None:
                    tx.execute(_LOCK, (self._owner_key + owner_lock,))
                yield tx
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"PostgreSQL job store unavailable: {exc}") from exc

    def _migrate(self) -> None:
        """Apply each pending migration in a transaction of its own, under the xact lock."""
        with self._pool.connection() as conn:
            for version, script in migrations("postgres"):
                with conn.transaction():
                    conn.execute(_LOCK, (MIGRATION_LOCK_KEY,))
                    if self.schema is not None and self._search_path is not None:
                        conn.execute(
                            pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                                pgsql.Identifier(self.schema)
                            )
                        )
                        conn.execute(self._search_path)
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS aisubs_schema_migrations ("
                        " version text PRIMARY KEY,"
                        " applied_at timestamptz NOT NULL DEFAULT now())"
                    )
                    done = conn.execute(
                        "SELECT 1 FROM aisubs_schema_migrations WHERE version = %s", (version,)
                    ).fetchone()
                    if done is None:
                        conn.execute(script.encode())  # no params: several statements
                        conn.execute(
                            "INSERT INTO aisubs_schema_migrations (version) VALUES (%s)",
                            (version,),
                        )

    def applied_migrations(self) -> list[str]:
        with self._pool.connection() as conn, conn.transaction():
            if self._search_path is not None:
                conn.execute(self._search_path)
            rows = conn.execute(
                "SELECT version FROM aisubs_schema_migrations ORDER BY version"
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        self._pool.close()

    # ------------------------------------------------------------------ encodings
    def time(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the job store; the clock must be aware")
        return value

    def from_time(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise TypeError(f"expected a timestamp, got {value!r}")
        return value.astimezone(UTC)

    def json(self, value: Mapping[str, Any]) -> Jsonb:
        return Jsonb(dict(value))

    def from_json(self, value: Any) -> dict[str, Any]:
        return dict(value)

    def id(self, value: UUID) -> UUID:
        return value


class PostgresJobStore(SqlJobStore):
    """:class:`~aisubs.queue.store.JobStore` on PostgreSQL; ``schema`` (optional) isolates
    its tables."""

    backend: PostgresBackend

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
        super().__init__(
            PostgresBackend(dsn, store_settings, schema=schema), settings, clock=clock, rng=rng
        )
        self.schema = schema

    def applied_migrations(self) -> list[str]:
        """Versions recorded in the tracking table, in order."""
        return self.backend.applied_migrations()
