"""Code that runs inside spawned worker processes of the queue tests (must be importable)."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from aisubs.queue.clock import ManualClock
from aisubs.queue.postgres_store import PostgresJobStore
from aisubs.queue.sqlite_store import SqliteJobStore
from aisubs.queue.store import JobStore
from aisubs.settings import QueueSettings, StoreSettings


def open_spec(spec: dict[str, Any], clock: ManualClock | None = None) -> JobStore:
    """Open the store a test describes: ``{"backend", "path" | "dsn"+"schema", "queue"}``."""
    queue = QueueSettings(**spec["queue"])
    if spec["backend"] == "sqlite":
        return SqliteJobStore(spec["path"], queue, clock=clock)
    return PostgresJobStore(
        spec["dsn"],
        queue,
        store_settings=StoreSettings(backend="postgres", pool_min_size=1, pool_max_size=2),
        schema=spec["schema"],
        clock=clock,
    )


def claim_and_complete(spec: dict[str, Any], name: str, start: Any, out: Any) -> None:
    """Claim small random batches until the queue is empty, completing each job."""
    store = open_spec(spec)
    rng = random.Random(name)
    claimed: list[str] = []
    start.wait()
    while jobs := store.claim(name, rng.randint(1, 5)):
        for job in jobs:
            claimed.append(str(job.id))
            store.complete(job.id, job.lease_token or "", {"json": name}, compute_seconds=0.01)
    store.close()
    out.put((name, claimed))


def claim_then_hang(spec: dict[str, Any], now: datetime, n: int, out: Any) -> None:
    """Claim ``n`` jobs at the injected time ``now``, report them, then keep heartbeating
    forever (until the test SIGKILLs this process)."""
    store = open_spec(spec, clock=ManualClock(now))
    jobs = store.claim("doomed", n)
    out.put([(str(j.id), j.lease_token) for j in jobs])
    while True:
        for job in jobs:
            store.heartbeat(job.id, job.lease_token or "")
