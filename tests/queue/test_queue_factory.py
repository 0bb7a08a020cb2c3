"""open_store picks the backend from settings; unreachable databases are StoreUnavailable."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisubs.errors import StoreUnavailable
from aisubs.queue.factory import open_store
from aisubs.queue.postgres_store import PostgresJobStore
from aisubs.queue.sqlite_store import SqliteJobStore
from aisubs.settings import Settings


def test_open_sqlite_store_from_settings(tmp_path: Path) -> None:
    settings = Settings(store={"backend": "sqlite", "sqlite_path": tmp_path / "a" / "q.db"})
    with open_store(settings) as store:
        assert isinstance(store, SqliteJobStore)
        assert store.submit("alice", "u://1").priority == settings.queue.default_priority
    assert (tmp_path / "a" / "q.db").exists()


@pytest.mark.postgres
def test_open_postgres_store_from_settings(pg_dsn: str, pg_schema: str) -> None:
    settings = Settings(store={"backend": "postgres", "postgres_dsn": pg_dsn})
    with open_store(settings, schema=pg_schema) as store:
        assert isinstance(store, PostgresJobStore)
        assert store.stats().running >= 0


def test_unreachable_postgres_is_store_unavailable() -> None:
    settings = Settings(
        store={
            "backend": "postgres",
            "postgres_dsn": "postgresql://postgres@127.0.0.1:1/none",
            "connect_timeout_s": 1,
        }
    )
    with pytest.raises(StoreUnavailable):
        open_store(settings)


def test_unusable_sqlite_path_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = Settings(store={"backend": "sqlite", "sqlite_path": blocker / "q.db"})
    with pytest.raises(StoreUnavailable):
        open_store(settings)
