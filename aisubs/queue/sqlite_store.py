"""SQLite job store: the embedded default, one file shared safely by several processes.

WAL lets readers run beside the single writer; every state change runs in a
``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two claimers never
both read the same queued row before one of them writes), and ``busy_timeout`` makes a
waiting writer queue up instead of failing. Each thread gets its own connection; the
``:memory:`` database (for quick unit tests) is one connection behind a lock.
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
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
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
                # Each thread keeps its own connection; close() may run on another thread.
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
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreUnavailable("the job store is closed")
        if self.path == MEMORY:
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, mode: TxMode, owner_lock: str | None = None) -> Iterator[_SqliteTx]:
        # BEGIN IMMEDIATE serializes all writers, which covers claim and owner locks.
        conn = self._conn()
        lock = self._memory_lock
        if lock is not None:
            lock.acquire()
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
        finally:
            if lock is not None:
                lock.release()

    def _migrate(self) -> None:
        """Apply migrations newer than ``PRAGMA user_version``, each in its own transaction."""
        conn = self._conn()
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
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
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
