"""The one job-store interface; SQLite and PostgreSQL implement it with identical behaviour.

Rules every implementation keeps (checked by ``tests/queue`` against both):

* The job row is the single source of truth. Every state change is ONE conditional UPDATE
  fenced by the expected state and, for worker calls, the lease token: a worker whose lease
  was taken over (expired and re-claimed, cancelled, deleted) can never heartbeat, complete
  or fail the job again; it gets :class:`~aisubs.errors.LeaseLost` (or
  :class:`~aisubs.errors.Cancelled` when the job was cancelled).
* Time comes from an injected clock (``now()`` returning an aware UTC datetime), never from
  the database, so tests control lease expiry and backoff.
* All methods are synchronous and thread-safe; async callers use a thread.
* Connection failures surface as :class:`~aisubs.errors.StoreUnavailable`.

Claim order (the ORDER KEY, also used by :meth:`JobStore.position`), over ``queued`` jobs::

    (priority DESC, fair_tag ASC, seq ASC)

Within a priority owners are served round robin: a job's ``fair_tag`` is fixed when it is
queued, as the later of the priority's virtual time (the latest round claims have reached
there) and one past the owner's last waiting or running tag at that priority. So an owner's
k-th waiting job sorts into round k, and an owner who was not served recently joins the
current round, ahead of the next job of an owner with a backlog: with one worker slot,
owner A's 10 earlier jobs and owner B's single job run A, B, A, A... ``seq`` is the
insertion sequence (FIFO within a round). ``claim`` skips jobs whose ``not_before`` is in
the future and owners who already have ``max_running_per_owner`` jobs running (counting the
jobs taken earlier in the same batch); a batch of n takes exactly what n single claims
would. ``position`` follows the same order (see :mod:`aisubs.queue.positions` for what it
promises about capped owners and waiting retries) with index range counts, so it stays fast
on a long queue. ``tests/queue`` checks positions against the claims that follow.

Caps: the per-owner queued cap is exact (submissions of one owner are serialized); the
queue-wide cap may be overshot by concurrent submissions of different owners on PostgreSQL
(by at most the number of concurrent submitters), never by a single one.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

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


class JobStore(abc.ABC):
    """Durable job queue: submissions, leases, retries, history, metrics and API keys."""

    # ------------------------------------------------------------------ submission
    @abc.abstractmethod
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
        """Queue a new job, or return the existing one for the same ``idempotency_key``.

        ``priority`` 1-10 (default from settings), higher runs first. ``content_id`` (e.g.
        the digest of an uploaded file) stands in for ``source`` when telling a replay from
        a different request, so two uploads of the same bytes under one key are one job even
        though each was stored under its own key. Raises
        :class:`InvalidRequest` (bad priority, unknown option), :class:`IdempotencyConflict`
        (same owner and key with a different source/options/priority) and
        :class:`CapacityExceeded` (owner's queued cap or the queue-wide cap; carries
        ``retry_after``). An idempotent replay never counts against the caps.
        """

    # ------------------------------------------------------------------ worker side
    @abc.abstractmethod
    def claim(
        self, worker_instance: str, limit: int = 1, *, lease_seconds: float | None = None
    ) -> list[Job]:
        """Lease up to ``limit`` queued jobs in claim order (see module doc).

        Requeues expired leases first. Each returned job is ``running`` with a fresh
        ``lease_token``, ``lease_expires_at = now + lease_seconds`` and ``attempts + 1``.
        """

    @abc.abstractmethod
    def heartbeat(self, job_id: UUID, lease_token: str, progress: Progress | None = None) -> Job:
        """Extend the lease (and optionally record progress).

        Raises :class:`Cancelled` if the job was cancelled, :class:`LeaseLost` if the token
        no longer holds the job (taken over, finished, deleted).
        """

    @abc.abstractmethod
    def progress(self, job_id: UUID, lease_token: str, progress: Progress) -> None:
        """Record the stage and fraction of a running job, fenced like :meth:`heartbeat`."""

    @abc.abstractmethod
    def complete(
        self,
        job_id: UUID,
        lease_token: str,
        result: Mapping[str, str],
        *,
        compute_seconds: float,
        audio_duration_s: float | None = None,
    ) -> Job:
        """Mark the job ``succeeded`` with its artifact URIs and the compute time it took.

        ``compute_seconds`` feeds the measured processing speed used for ETAs. Raises
        :class:`LeaseLost` / :class:`Cancelled` like :meth:`heartbeat`.
        """

    @abc.abstractmethod
    def fail(self, job_id: UUID, lease_token: str, error: JobError) -> Job:
        """Record a failed attempt.

        Retryable errors with attempts left put the job back to ``queued`` with
        ``not_before = now + backoff(attempts)``; otherwise the job becomes ``failed`` with
        the error kept. Raises :class:`LeaseLost` / :class:`Cancelled` like :meth:`heartbeat`.
        """

    @abc.abstractmethod
    def requeue_expired(self, limit: int = 1000) -> int:
        """Treat running jobs whose lease expired as failed attempts (``lease_expired``).

        Returns how many jobs were requeued or failed.
        """

    @abc.abstractmethod
    def add_event(
        self,
        job_id: UUID,
        kind: str,
        detail: Mapping[str, Any] | None = None,
        *,
        lease_token: str | None = None,
    ) -> None:
        """Append a history line (e.g. ``stage_started`` with ``{"stage": "asr"}``).

        A worker passes its ``lease_token``: the line is then written only while that lease
        holds the job (:class:`LeaseLost` / :class:`Cancelled` otherwise), so a stale worker
        never writes into a newer attempt's history.
        """

    # ------------------------------------------------------------------ owner side
    @abc.abstractmethod
    def get(self, job_id: UUID, owner: str | None = None) -> Job:
        """The job, or :class:`NotFound` (also when ``owner`` is given and differs)."""

    @abc.abstractmethod
    def list_jobs(
        self,
        owner: str,
        *,
        states: set[JobState] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """An owner's jobs, newest first, optionally only in ``states``; keyset paginated."""

    @abc.abstractmethod
    def cancel(self, job_id: UUID, owner: str | None = None) -> Job:
        """Cancel a queued or running job (a running one loses its lease at once).

        Cancelling a cancelled job returns it unchanged; a succeeded/failed job raises
        :class:`InvalidState`; someone else's job raises :class:`NotFound`.
        """

    @abc.abstractmethod
    def delete(self, job_id: UUID, owner: str | None = None) -> Job:
        """Remove the job row and its events; returns the last snapshot so the caller can
        delete artifacts. A running job's worker gets :class:`LeaseLost` afterwards."""

    @abc.abstractmethod
    def list_events(self, job_id: UUID, owner: str | None = None) -> list[JobEvent]:
        """History of a job, oldest first."""

    @abc.abstractmethod
    def position(
        self, job_id: UUID, worker_slots: int, owner: str | None = None
    ) -> Position | None:
        """Place and ETA of a queued job (None when the job is not queued).

        ``jobs_ahead`` counts the jobs claims take before this one (claim order, see module
        doc); ETA uses the measured compute seconds per audio second and
        ``max(1, worker_slots)`` jobs in parallel: start after the work ahead, finish after
        its own audio.
        """

    # ------------------------------------------------------------------ operators
    @abc.abstractmethod
    def stats(self) -> QueueStats:
        """Depth by priority, running, oldest wait, last-hour outcomes, error rate by stage."""

    @abc.abstractmethod
    def compute_per_audio_second(self) -> float:
        """Measured compute seconds per audio second over recent successes (or the default)."""

    @abc.abstractmethod
    def write_queue_metrics_sample(self, active_workers: int) -> QueueMetricsSample:
        """Insert one ``queue_metrics`` row describing the queue now."""

    @abc.abstractmethod
    def list_queue_metrics(self, since: datetime) -> list[QueueMetricsSample]:
        """Samples taken at or after ``since``, oldest first."""

    @abc.abstractmethod
    def prune_queue_metrics(self, older_than: datetime) -> int:
        """Delete samples taken before ``older_than``; returns how many."""

    # ------------------------------------------------------------------ API keys
    @abc.abstractmethod
    def create_api_key(self, owner: str, max_priority: int) -> tuple[str, str]:
        """Create a key; returns ``(key_id, plaintext)``. Only a SHA-256 hash is stored."""

    @abc.abstractmethod
    def authenticate(self, plaintext: str) -> ApiKey:
        """The key's owner and limits, or :class:`Unauthorized` (unknown or revoked)."""

    @abc.abstractmethod
    def revoke_api_key(self, key_id: str, owner: str | None = None) -> None:
        """Revoke a key (idempotent); :class:`NotFound` if it does not exist."""

    @abc.abstractmethod
    def list_api_keys(self, owner: str) -> list[ApiKey]:
        """An owner's keys, oldest first."""

    # ------------------------------------------------------------------ life cycle
    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
