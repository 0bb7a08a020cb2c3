"""What every part of the SQL job store shares: the backend, the rules, the clock.

The store's concerns (submission, claiming, the job life cycle, positions, operator
statistics, API keys) are modules of plain functions over one :class:`StoreCore`;
:class:`~aisubs.queue.sql_store.SqlJobStore` is the thin object that ties them together.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from aisubs.errors import Cancelled, InvalidRequest, LeaseLost, NotFound
from aisubs.queue.backend import Row, SqlBackend, Tx, TxMode
from aisubs.queue.clock import Clock, system_clock
from aisubs.queue.models import Job, JobState
from aisubs.queue.rows import job_from_row
from aisubs.settings import QueueSettings


@dataclass
class StoreCore:
    backend: SqlBackend
    settings: QueueSettings
    clock: Clock = system_clock
    rng: random.Random = field(default_factory=random.Random)

    def tx(self, mode: TxMode, owner_lock: str | None = None) -> AbstractContextManager[Tx]:
        return self.backend.transaction(mode, owner_lock)

    def job(self, row: Row) -> Job:
        return job_from_row(self.backend, row)

    def event(
        self,
        tx: Tx,
        job_id: UUID,
        kind: str,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
        *,
        worker_instance: str | None = None,
        lease_token: str | None = None,
    ) -> int:
        """Append a history line; with ``lease_token`` only while that lease holds the job.

        Returns the number of rows written (0: no such job, or the lease is gone).
        """
        db = self.backend
        common = {"job_id": db.id(job_id), "now": db.time(now), "kind": kind,
                  "detail": db.json(detail or {})}  # fmt: skip
        if lease_token is not None:
            return tx.run("insert_fenced_event", lease_token=lease_token, **common)
        return tx.run("insert_event", worker_instance=worker_instance, **common)

    def owned(self, row: Row | None, job_id: UUID, owner: str | None) -> Row:
        if row is None or (owner is not None and row["owner"] != owner):
            raise NotFound(f"job {job_id} not found")
        return row

    def lost(self, tx: Tx, job_id: UUID) -> Exception:
        """The right error for a worker call whose fence did not match."""
        row = tx.one("get_job", id=self.backend.id(job_id))
        if row is None:
            return LeaseLost(f"job {job_id} no longer exists (deleted); stop working on it")
        if row["state"] == JobState.CANCELLED:
            return Cancelled(f"job {job_id} was cancelled; stop working on it")
        return LeaseLost(
            f"lease token no longer holds job {job_id} (now {row['state']}, "
            f"attempt {row['attempts']}); stop working on it"
        )

    def lease_until(self, now: datetime, lease_seconds: float | None) -> datetime:
        seconds = self.settings.lease_seconds if lease_seconds is None else lease_seconds
        if seconds <= 0:
            raise InvalidRequest(f"lease_seconds must be positive, got {seconds}")
        return now + timedelta(seconds=seconds)
