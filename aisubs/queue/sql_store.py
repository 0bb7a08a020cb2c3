"""The :class:`JobStore` over SQL, written once; SQLite and PostgreSQL differ only below it.

A :class:`~aisubs.queue.backend.SqlBackend` object supplies transactions running named
queries and the encoding of times, ids and JSON. Everything that decides what happens to a
job lives in the concern modules this class delegates to (submission, claiming, lifecycle,
positions, queue_stats, api_keys), so the two stores cannot drift apart.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from aisubs.errors import InvalidRequest
from aisubs.queue import api_keys, claiming, lifecycle, positions, queue_stats, submission
from aisubs.queue.backend import SqlBackend
from aisubs.queue.clock import Clock, system_clock
from aisubs.queue.core import StoreCore
from aisubs.queue.models import (
    ApiKey,
    Job,
    JobError,
    JobEvent,
    JobOptions,
    JobPage,
    JobState,
    Position,
    Progress,
    QueueMetricsSample,
    QueueStats,
)
from aisubs.queue.rows import event_from_row
from aisubs.queue.store import JobStore
from aisubs.settings import QueueSettings

MAX_PAGE = 500


class SqlJobStore(JobStore):
    """The :class:`JobStore` behaviour on top of one SQL backend."""

    def __init__(
        self,
        backend: SqlBackend,
        settings: QueueSettings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.clock: Clock = clock or system_clock
        self.core = StoreCore(backend, settings, self.clock, rng or random.Random())

    # ------------------------------------------------------------------ submission
    def submit(
        self,
        owner: str,
        source: str,
        options: JobOptions | Mapping[str, Any] | None = None,
        *,
        priority: int | None = None,
        idempotency_key: str | None = None,
        audio_duration_s: float | None = None,
        max_attempts: int | None = None,
        content_id: str | None = None,
    ) -> Job:
        return submission.submit(
            self.core,
            owner,
            source,
            options,
            priority=priority,
            idempotency_key=idempotency_key,
            audio_duration_s=audio_duration_s,
            max_attempts=max_attempts,
            content_id=content_id,
        )

    # ------------------------------------------------------------------ worker side
    def claim(
        self, worker_instance: str, limit: int = 1, *, lease_seconds: float | None = None
    ) -> list[Job]:
        return claiming.claim(self.core, worker_instance, limit, lease_seconds)

    def heartbeat(self, job_id: UUID, lease_token: str, progress: Progress | None = None) -> Job:
        return lifecycle.heartbeat(self.core, job_id, lease_token, progress)

    def progress(self, job_id: UUID, lease_token: str, progress: Progress) -> None:
        lifecycle.set_progress(self.core, job_id, lease_token, progress)

    def complete(
        self,
        job_id: UUID,
        lease_token: str,
        result: Mapping[str, str],
        *,
        compute_seconds: float,
        audio_duration_s: float | None = None,
    ) -> Job:
        return lifecycle.complete(
            self.core,
            job_id,
            lease_token,
            result,
            compute_seconds=compute_seconds,
            audio_duration_s=audio_duration_s,
        )

    def fail(self, job_id: UUID, lease_token: str, error: JobError) -> Job:
        return lifecycle.fail(self.core, job_id, lease_token, error)

    def requeue_expired(self, limit: int = 1000) -> int:
        return lifecycle.requeue_expired(self.core, limit)

    def add_event(
        self,
        job_id: UUID,
        kind: str,
        detail: Mapping[str, Any] | None = None,
        *,
        lease_token: str | None = None,
    ) -> None:
        lifecycle.add_event(self.core, job_id, kind, detail, lease_token)

    # ------------------------------------------------------------------ owner side
    def get(self, job_id: UUID, owner: str | None = None) -> Job:
        core = self.core
        with core.tx("read") as tx:
            return core.job(
                core.owned(tx.one("get_job", id=self.backend.id(job_id)), job_id, owner)
            )

    def list_jobs(
        self,
        owner: str,
        *,
        states: set[JobState] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be 1-{MAX_PAGE}, got {limit}")
        before = 2**62
        if cursor is not None:
            try:
                before = int(cursor)
            except ValueError:
                raise InvalidRequest(f"invalid cursor {cursor!r}") from None
        wanted = sorted(s.value for s in (states or set(JobState)))
        with self.core.tx("read") as tx:
            rows = tx.all(
                "list_jobs",
                owner=owner,
                states=self.backend.states(wanted),
                before_seq=before,
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return JobPage(
            jobs=[self.core.job(r) for r in rows],
            next_cursor=str(rows[-1]["seq"]) if more else None,
        )

    def cancel(self, job_id: UUID, owner: str | None = None) -> Job:
        return lifecycle.cancel(self.core, job_id, owner)

    def delete(self, job_id: UUID, owner: str | None = None) -> Job:
        return lifecycle.delete(self.core, job_id, owner)

    def list_events(self, job_id: UUID, owner: str | None = None) -> list[JobEvent]:
        core = self.core
        with core.tx("read") as tx:
            core.owned(tx.one("get_job", id=self.backend.id(job_id)), job_id, owner)
            rows = tx.all("list_events", job_id=self.backend.id(job_id))
        return [event_from_row(self.backend, r) for r in rows]

    def position(
        self, job_id: UUID, worker_slots: int, owner: str | None = None
    ) -> Position | None:
        return positions.position(self.core, job_id, worker_slots, owner)

    # ------------------------------------------------------------------ operators
    def stats(self) -> QueueStats:
        return queue_stats.stats(self.core)

    def compute_per_audio_second(self) -> float:
        return queue_stats.compute_per_audio_second(self.core)

    def write_queue_metrics_sample(self, active_workers: int) -> QueueMetricsSample:
        return queue_stats.write_sample(self.core, active_workers)

    def list_queue_metrics(self, since: datetime) -> list[QueueMetricsSample]:
        return queue_stats.list_samples(self.core, since)

    def prune_queue_metrics(self, older_than: datetime) -> int:
        return queue_stats.prune_samples(self.core, older_than)

    # ------------------------------------------------------------------ API keys
    def create_api_key(self, owner: str, max_priority: int) -> tuple[str, str]:
        return api_keys.create(self.core, owner, max_priority)

    def authenticate(self, plaintext: str) -> ApiKey:
        return api_keys.authenticate(self.core, plaintext)

    def revoke_api_key(self, key_id: str, owner: str | None = None) -> None:
        api_keys.revoke(self.core, key_id, owner)

    def list_api_keys(self, owner: str) -> list[ApiKey]:
        return api_keys.list_keys(self.core, owner)

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        self.backend.close()
