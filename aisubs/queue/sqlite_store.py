"""SQLite job store: the embedded default, one file shared safely by several processes.

WAL lets readers run beside the single writer; every state change runs in a
``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two claimers never
both read the same queued row before one of them writes), and ``busy_timeout`` makes a
waiting writer queue up instead of failing. Connections are pooled: a transaction takes an
idle one (or opens one) and gives it back, whatever thread it runs on. (One connection per
thread opened a new one for every short-lived worker thread of a thread pool, and kept all
of them open.) The ``:memory:`` database (for quick unit tests) is one connection behind a
lock.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from aisubs.errors import StoreUnavailable
from aisubs.queue.backend import Row, SqlBackend, TxMode
from aisubs.queue.clock import Clock
from aisubs.queue.sql import Dialect, migrations, queries
from aisubs.queue.sql_store import SqlJobStore
from aisubs.settings import QueueSettings

MEMORY = ":memory:"
# Idle connections kept for reuse; more are opened while more transactions run at once.
MAX_IDLE_CONNECTIONS = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection, sql: Mapping[str, str]) -> None:
        self._conn = conn
        self._sql = sql

    def one(self, name: str, **params: Any) -> Row | None:
        row: Row | None = self._conn.execute(self._sql[name], params).fetchone()
        return row

    def all(self, name: str, **params: Any) -> list[Row]:
        return list(self._conn.execute(self._sql[name], params).fetchall())

    def run(self, name: str, **params: Any) -> int:
        return self._conn.execute(self._sql[name], params).rowcount

    @contextmanager
    def iterate(self, name: str, **params: Any) -> Iterator[Iterator[Row]]:
        # A sqlite3 cursor steps through the result as it is read; the write lock this
        # transaction holds keeps the snapshot consistent.
        cur = self._conn.execute(self._sql[name], params)
        try:
            yield iter(cur)
        finally:
            cur.close()


def _statements(script: str) -> Iterator[str]:
    """Split a migration into complete statements (``executescript`` would COMMIT early)."""
    buf: list[str] = []
    for line in script.splitlines(keepends=True):
        buf.append(line)
        text = "".join(buf)
        if sqlite3.complete_statement(text):
            if text.strip():
                yield text
            buf = []
    if "".join(buf).strip(" \n\t;"):
        raise ValueError("migration ends with an incomplete statement")


class SqliteBackend(SqlBackend):
    """Connections, transactions and encodings of one SQLite file (or ``:memory:``)."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self._busy_timeout_s = busy_timeout_s
        self._sql = queries("sqlite")
        self._idle: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._memory_lock: threading.RLock | None = None
        self._closed = False
        if self.path == MEMORY:
            self._memory_lock = threading.RLock()
            self._shared = self._connect()
        else:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create SQLite store {self.path}: {exc}") from exc
        self._migrate()

    # ------------------------------------------------------------------ connections
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                # Pooled: used by one thread at a time, but not always the same one.
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            if self.path != MEMORY:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        return conn

    @property
    def idle_connections(self) -> int:
        """Connections open and waiting in the pool."""
        with self._pool_lock:
            return len(self._idle)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for this thread's use until the block ends (then back to the pool)."""
        if self._closed:
            raise StoreUnavailable("the job store is closed")
        if self._memory_lock is not None:
            with self._memory_lock:
                yield self._shared
            return
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                keep = not self._closed and len(self._idle) < MAX_IDLE_CONNECTIONS
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    @contextmanager
    def transaction(self, mode: TxMode, owner_lock: str | None = None) -> Iterator[_SqliteTx]:
        # BEGIN IMMEDIATE serializes all writers, which covers claim and owner locks.
        with self.connection() as conn:
            try:
                try:
                    conn.execute("BEGIN" if mode == "read" else "BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    raise StoreUnavailable(f"SQLite store {self.path} is busy: {exc}") from exc
                try:
                    yield _SqliteTx(conn, self._sql)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite store {self.path} failed: {exc}") from exc

    def _migrate(self) -> None:
        """Apply migrations newer than ``PRAGMA user_version``, each in its own transaction."""
        with self.connection() as conn:
            self._apply_migrations(conn)

    def _apply_migrations(self, conn: sqlite3.Connection) -> None:
        for number, (_version, script) in enumerate(migrations("sqlite"), start=1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                if current < number:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self.connection() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            conns, self._idle = self._idle, []
        if self._memory_lock is not None:
            conns.append(self._shared)
        for conn in conns:
            conn.close()

    # ------------------------------------------------------------------ encodings
    def time(self, value: datetime) -> int:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the job store; the clock must be aware")
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def from_time(self, value: Any) -> datetime:
        seconds, micros = divmod(int(value), 1_000_000)
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)

    def json(self, value: Mapping[str, Any]) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def from_json(self, value: Any) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(value) if isinstance(value, str) else dict(value)
        return result

    def id(self, value: UUID) -> str:
        return str(value)

    def states(self, states: list[str]) -> str:
        return json.dumps(states)


class SqliteJobStore(SqlJobStore):
    """:class:`~aisubs.queue.store.JobStore` on a SQLite file (or ``:memory:``)."""

    backend: SqliteBackend

    def __init__(
        self,
        path: str | Path,
        settings: QueueSettings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        busy_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(
            SqliteBackend(path, busy_timeout_s=busy_timeout_s), settings, clock=clock, rng=rng
        )
        self.path = self.backend.path

    def schema_version(self) -> int:
        """Number of migrations applied to this database."""
        return self.backend.schema_version()
