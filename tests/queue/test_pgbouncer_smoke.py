"""Real queries through a real PgBouncer in ``pool_mode = transaction`` (Supabase's pooler).

The harness itself (tests/support/pgbouncer.py) and what transaction pooling allows: plain
and multi-statement transactions and transaction-scoped advisory locks work; psycopg's
server-side prepared statements do not, so clients must run with ``prepare_threshold=None``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.pgbouncer import PgBouncer, pgbouncer_or_skip

pytestmark = pytest.mark.postgres

QUERY = "SELECT %s::int + 1"


@pytest.fixture
def bouncer(tmp_path: Path) -> Iterator[PgBouncer]:
    with pgbouncer_or_skip(tmp_path) as running:
        yield running


def backend_pid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_transactions_and_xact_locks_through_transaction_pooling(bouncer: PgBouncer) -> None:
    assert bouncer.running and bouncer.dsn.endswith(f"127.0.0.1:{bouncer.port}/test")
    with psycopg.connect(bouncer.dsn, prepare_threshold=None, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        for i in range(10):  # the same query more often than psycopg's prepare threshold
            assert conn.execute(QUERY, (i,)).fetchone() == (i + 1,)
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE smoke (n int) ON COMMIT DROP")
            conn.execute("INSERT INTO smoke VALUES (1), (2), (3)")
            conn.execute("SELECT pg_advisory_xact_lock(1)")
            locked = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objid = 1 AND pid = pg_backend_pid()"
            ).fetchone()
            assert locked == (1,)
            assert conn.execute("SELECT sum(n) FROM smoke").fetchone() == (6,)
        # A second client is served while the first one is still connected, and the
        # transaction-scoped lock went with the first one's transaction.
        with psycopg.connect(bouncer.dsn, prepare_threshold=None, autocommit=True) as other:
            assert other.execute("SELECT pg_try_advisory_xact_lock(1)").fetchone() == (True,)
            assert other.execute("SELECT current_database()").fetchone() == ("test",)
        # Several statements in one transaction stay on one server connection.
        conn.autocommit = False
        first = backend_pid(conn)
        conn.execute("SELECT pg_advisory_xact_lock(1)")
        assert backend_pid(conn) == first
        conn.commit()


def test_many_clients_share_few_server_connections(tmp_path: Path) -> None:
    with pgbouncer_or_skip(tmp_path, pool_size=2) as bouncer:
        clients = [
            psycopg.connect(bouncer.dsn, prepare_threshold=None, autocommit=True) for _ in range(8)
        ]
        try:
            pids = {backend_pid(c) for c in clients for _ in range(3)}
        finally:
            for c in clients:
                c.close()
        assert 1 <= len(pids) <= 2


def test_prepared_statements_break_under_transaction_pooling(tmp_path: Path) -> None:
    """Why ``prepare_threshold=None``: psycopg's statement names are per client connection,
    PgBouncer hands out server connections per transaction."""
    with pgbouncer_or_skip(tmp_path, pool_size=1) as bouncer:
        # Two clients, one server connection: the second prepares the same name again.
        a = psycopg.connect(bouncer.dsn, prepare_threshold=0, autocommit=True)
        b = psycopg.connect(bouncer.dsn, prepare_threshold=0, autocommit=True)
        try:
            a.execute(QUERY, (1,))
            with pytest.raises(psycopg.errors.DuplicatePreparedStatement, match="_pg3_0"):
                b.execute(QUERY, (1,))
        finally:
            a.close()
            b.close()
        # The default threshold (5) only delays it.
        clients = [psycopg.connect(bouncer.dsn, autocommit=True) for _ in range(2)]
        try:
            with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
                for i in range(10):
                    for c in clients:
                        c.execute(QUERY, (i,))
        finally:
            for c in clients:
                c.close()

    with pgbouncer_or_skip(tmp_path / "two", pool_size=2) as bouncer:
        # One client: its statement was prepared on a server connection that another
        # client's transaction now holds, so its next execution lands where it never was.
        a = psycopg.connect(bouncer.dsn, prepare_threshold=0, autocommit=True)
        b = psycopg.connect(bouncer.dsn, prepare_threshold=None)
        try:
            a.execute(QUERY, (1,))
            prepared_on = backend_pid(a)  # LIFO: the server connection just used
            assert backend_pid(b) == prepared_on  # b's open transaction now holds it
            with pytest.raises(psycopg.errors.InvalidSqlStatementName, match="does not exist"):
                a.execute(QUERY, (2,))
            b.rollback()
        finally:
            a.close()
            b.close()
