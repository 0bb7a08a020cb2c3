"""Open the job store the settings ask for (``settings.store.backend``)."""

from __future__ import annotations

import random

from aisubs.queue.clock import Clock
from aisubs.queue.store import JobStore
from aisubs.settings import Settings


def open_store(
    settings: Settings,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    schema: str | None = None,
) -> JobStore:
    """A ready store (schema migrated); call ``close()`` when done.

    ``schema`` (PostgreSQL only) puts the tables in their own schema, e.g. one per test run.
    Raises :class:`~aisubs.errors.StoreUnavailable` when the database cannot be reached.
    """
    store = settings.store
    if store.backend == "sqlite":
        from aisubs.queue.sqlite_store import SqliteJobStore

        if schema is not None:
            raise ValueError("schema applies to the PostgreSQL store only")
        return SqliteJobStore(store.sqlite_path, settings.queue, clock=clock, rng=rng)
    from aisubs.queue.postgres_store import PostgresJobStore

    return PostgresJobStore(
        store.postgres_dsn,
        settings.queue,
        store_settings=store,
        schema=schema,
        clock=clock,
        rng=rng,
    )
