"""Queue rules written once over named SQL; SQLite and PostgreSQL differ only below this.

A backend supplies transactions (:class:`Tx`, running named queries) and the encoding of
times, ids and JSON. Everything that decides what happens to a job lives here, so the two
stores cannot drift apart.
"""

from __future__ import annotations

import abc
import hashlib
import heapq
import json
import random
import secrets
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

from aisubs.errors import (
    Cancelled,
    CapacityExceeded,
    IdempotencyConflict,
    InvalidRequest,
    InvalidState,
    LeaseLost,
    NotFound,
    Unauthorized,
)
from aisubs.queue.clock import Clock, system_clock
from aisubs.queue.models import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    ApiKey,
    EventKind,
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
from aisubs.queue.retry import backoff_seconds
from aisubs.queue.store import JobStore
from aisubs.settings import QueueSettings

Row = Mapping[str, Any]
TxMode = Literal["read", "write", "claim"]

API_KEY_PREFIX = "aisk_"
SPEED_WINDOW_JOBS = 100
MAX_PAGE = 500


class Tx(Protocol):
    """One open transaction that runs named queries with keyword parameters."""

    def one(self, name: str, **params: Any) -> Row | None: ...

    def all(self, name: str, **params: Any) -> list[Row]: ...

    def run(self, name: str, **params: Any) -> int: ...


def request_hash(source: str, options: JobOptions, priority: int) -> str:
    """Fingerprint of what a submission asks for, to tell replays from key reuse."""
    body = json.dumps(
        {"source": source, "options": options.to_dict(), "priority": priority},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def hash_api_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _check_priority(priority: Any, what: str = "priority") -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidRequest(f"{what} must be an integer {MIN_PRIORITY}-{MAX_PRIORITY}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidRequest(
            f"{what} {priority} is outside {MIN_PRIORITY}-{MAX_PRIORITY} (higher runs first)"
        )
    return priority


class SqlJobStore(JobStore):
    """The :class:`JobStore` behaviour on top of a backend's transactions and encodings."""

    def __init__(
        self,
        settings: QueueSettings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or system_clock
        self._rng = rng or random.Random()

    # ------------------------------------------------------------------ backend hooks
    @abc.abstractmethod
    def _transaction(
        self, mode: TxMode, owner_lock: str | None = None
    ) -> AbstractContextManager[Tx]:
        """A transaction; ``write``/``claim`` ones serialize with other writers as needed.

        ``claim`` transactions are serialized with each other (the running cap must see
        every committed claim); ``owner_lock`` serializes writers for one owner (caps).
        """

    @abc.abstractmethod
    def _t(self, value: datetime) -> Any:
        """Encode a time for the database."""

    @abc.abstractmethod
    def _dt(self, value: Any) -> datetime:
        """Decode a time from the database."""

    @abc.abstractmethod
    def _json(self, value: Mapping[str, Any]) -> Any:
        """Encode a JSON object parameter."""

    @abc.abstractmethod
    def _unjson(self, value: Any) -> dict[str, Any]:
        """Decode a JSON column."""

    @abc.abstractmethod
    def _id(self, value: UUID) -> Any:
        """Encode a UUID."""

    def _states(self, states: list[str]) -> Any:
        """Encode a list of state names for ``list_jobs``."""
        return states

    # ------------------------------------------------------------------ decoding
    def _opt_dt(self, value: Any) -> datetime | None:
        return None if value is None else self._dt(value)

    def _job(self, row: Row) -> Job:
        error = None
        if row["error_code"] is not None:
            error = JobError(
                code=row["error_code"],
                message=row["error_message"] or "",
                retryable=bool(row["error_retryable"]),
                stage=row["error_stage"],
            )
        progress = None
        if row["progress_stage"] is not None:
            progress = Progress(row["progress_stage"], float(row["progress_fraction"] or 0.0))
        raw_id = row["id"]
        return Job(
            id=raw_id if isinstance(raw_id, UUID) else UUID(raw_id),
            owner=row["owner"],
            source=row["source"],
            options=JobOptions.model_validate(self._unjson(row["options"])),
            priority=int(row["priority"]),
            state=JobState(row["state"]),
            attempts=int(row["attempts"]),
            max_attempts=int(row["max_attempts"]),
            not_before=self._dt(row["not_before"]),
            created_at=self._dt(row["created_at"]),
            updated_at=self._dt(row["updated_at"]),
            lease_token=row["lease_token"],
            lease_expires_at=self._opt_dt(row["lease_expires_at"]),
            worker_instance=row["worker_instance"],
            progress=progress,
            error=error,
            audio_duration_s=row["audio_duration_s"],
            compute_seconds=row["compute_seconds"],
            started_at=self._opt_dt(row["started_at"]),
            finished_at=self._opt_dt(row["finished_at"]),
            idempotency_key=row["idempotency_key"],
            result={str(k): str(v) for k, v in self._unjson(row["result"]).items()},
        )

    def _api_key(self, row: Row) -> ApiKey:
        return ApiKey(
            key_id=row["key_id"],
            owner=row["owner"],
            max_priority=int(row["max_priority"]),
            created_at=self._dt(row["created_at"]),
            revoked_at=self._opt_dt(row["revoked_at"]),
        )

    def _metric(self, row: Row) -> QueueMetricsSample:
        raw_id = row["id"]
        return QueueMetricsSample(
            id=raw_id if isinstance(raw_id, UUID) else UUID(raw_id),
            timestamp=self._dt(row["timestamp"]),
            queue_depth=int(row["queue_depth"]),
            active_workers=int(row["active_workers"]),
            avg_processing_time=(
                None if row["avg_processing_time"] is None else float(row["avg_processing_time"])
            ),
            jobs_completed_hour=int(row["jobs_completed_hour"]),
        )

    # ------------------------------------------------------------------ helpers
    def _event(
        self,
        tx: Tx,
        job_id: UUID,
        kind: str,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
        worker_instance: str | None = None,
    ) -> int:
        return tx.run(
            "insert_event",
            job_id=self._id(job_id),
            now=self._t(now),
            kind=kind,
            worker_instance=worker_instance,
            detail=self._json(detail or {}),
        )

    def _owned(self, row: Row | None, job_id: UUID, owner: str | None) -> Row:
        if row is None or (owner is not None and row["owner"] != owner):
            raise NotFound(f"job {job_id} not found")
        return row

    def _lost(self, tx: Tx, job_id: UUID) -> Exception:
        """The right error for a worker call whose fence did not match."""
        row = tx.one("get_job", id=self._id(job_id))
        if row is None:
            return LeaseLost(f"job {job_id} no longer exists (deleted); stop working on it")
        if row["state"] == JobState.CANCELLED:
            return Cancelled(f"job {job_id} was cancelled; stop working on it")
        return LeaseLost(
            f"lease token no longer holds job {job_id} (now {row['state']}, "
            f"attempt {row['attempts']}); stop working on it"
        )

    def _lease_until(self, now: datetime, lease_seconds: float | None) -> datetime:
        seconds = self.settings.lease_seconds if lease_seconds is None else lease_seconds
        if seconds <= 0:
            raise InvalidRequest(f"lease_seconds must be positive, got {seconds}")
        return now + timedelta(seconds=seconds)

    def _error_params(self, error: JobError) -> dict[str, Any]:
        return {
            "error_code": error.code,
            "error_message": error.message,
            "error_retryable": error.retryable,
            "error_stage": error.stage,
        }

    def _finish_attempt(
        self, tx: Tx, row: Row, error: JobError, now: datetime, event_kind: str
    ) -> Row | None:
        """Retry the job (queued, backoff) or fail it for good; fenced by the row's token.

        Returns the updated row, or None if the fence did not match.
        """
        job_id = UUID(str(row["id"]))
        attempts = int(row["attempts"])
        params = {
            "id": self._id(job_id),
            "lease_token": row["lease_token"],
            "now": self._t(now),
            **self._error_params(error),
        }
        detail: dict[str, Any] = {
            "code": error.code,
            "message": error.message,
            "retryable": error.retryable,
            "stage": error.stage,
        }
        if error.retryable and attempts < int(row["max_attempts"]):
            delay = backoff_seconds(attempts, self.settings, self._rng)
            not_before = now + timedelta(seconds=delay)
            new = tx.one("retry_job", not_before=self._t(not_before), **params)
            if new is not None:
                detail["not_before"] = not_before.isoformat()
                self._event(tx, job_id, event_kind, now, {**detail, "outcome": "retried"})
                if event_kind != EventKind.RETRIED:
                    self._event(tx, job_id, EventKind.RETRIED, now, detail)
            return new
        new = tx.one("fail_job", **params)
        if new is not None:
            self._event(tx, job_id, event_kind, now, {**detail, "outcome": "failed"})
            if event_kind != EventKind.FAILED:
                self._event(tx, job_id, EventKind.FAILED, now, detail)
        return new

    def _requeue_expired(self, tx: Tx, now: datetime, limit: int) -> int:
        done = 0
        for row in tx.all("expired_leases", now=self._t(now), limit=limit):
            error = JobError(
                code="lease_expired",
                message=(
                    f"worker {row['worker_instance']} stopped renewing its lease "
                    f"(expired {self._dt(row['lease_expires_at']).isoformat()})"
                ),
                retryable=True,
                stage=row["progress_stage"],
            )
            if self._finish_attempt(tx, row, error, now, EventKind.LEASE_EXPIRED) is not None:
                done += 1
        return done

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
    ) -> Job:
        if not owner:
            raise InvalidRequest("owner must not be empty")
        if not source:
            raise InvalidRequest("source must not be empty")
        prio = _check_priority(self.settings.default_priority if priority is None else priority)
        opts = JobOptions.parse(options)
        attempts = self.settings.max_attempts if max_attempts is None else max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidRequest(f"max_attempts must be a positive integer, got {attempts!r}")
        if audio_duration_s is not None and not audio_duration_s >= 0:
            raise InvalidRequest(f"audio_duration_s must be >= 0, got {audio_duration_s}")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
            raise InvalidRequest("idempotency key must be 1-255 characters")
        digest = request_hash(source, opts, prio)
        now = self.clock()
        with self._transaction("write", owner_lock=owner) as tx:
            if idempotency_key is not None:
                existing = tx.one(
                    "get_by_idempotency", owner=owner, idempotency_key=idempotency_key
                )
                if existing is not None:
                    if existing["request_hash"] != digest:
                        raise IdempotencyConflict(
                            f"idempotency key {idempotency_key!r} was already used for job "
                            f"{existing['id']} with a different source, options or priority"
                        )
                    return self._job(existing)
            counts = tx.one("count_queued", owner=owner)
            assert counts is not None
            retry_after = self.settings.capacity_retry_after_s
            if counts["total_queued"] >= self.settings.max_queued_total:
                raise CapacityExceeded(
                    f"the queue is full ({counts['total_queued']} jobs queued, "
                    f"cap {self.settings.max_queued_total}); retry later",
                    retry_after=retry_after,
                    code="queue_full",
                )
            if counts["owner_queued"] >= self.settings.max_queued_per_owner:
                raise CapacityExceeded(
                    f"owner {owner!r} already has {counts['owner_queued']} jobs queued "
                    f"(cap {self.settings.max_queued_per_owner}); retry later",
                    retry_after=retry_after,
                    code="owner_queue_full",
                )
            job_id = uuid.uuid4()
            row = tx.one(
                "insert_job",
                id=self._id(job_id),
                owner=owner,
                source=source,
                options=self._json(opts.to_dict()),
                priority=prio,
                max_attempts=attempts,
                now=self._t(now),
                audio_duration_s=audio_duration_s,
                idempotency_key=idempotency_key,
                request_hash=digest,
            )
            assert row is not None
            self._event(tx, job_id, EventKind.SUBMITTED, now, {"priority": prio})
            return self._job(row)

    # ------------------------------------------------------------------ worker side
    def claim(
        self, worker_instance: str, limit: int = 1, *, lease_seconds: float | None = None
    ) -> list[Job]:
        if not worker_instance:
            raise InvalidRequest("worker_instance must not be empty")
        if limit < 1:
            return []
        now = self.clock()
        expires = self._lease_until(now, lease_seconds)
        max_running = self.settings.max_running_per_owner
        with self._transaction("claim") as tx:
            self._requeue_expired(tx, now, limit=1000)
            # A batch claim takes exactly the jobs that claiming one at a time would: each
            # job taken raises its owner's running count, which re-ranks that owner's
            # remaining jobs (fairness) and may bring it to its running cap.
            rows = []
            offset, page = 0, max(4 * limit, 64)
            while True:
                batch = tx.all(
                    "claim_candidates",
                    now=self._t(now),
                    max_running=max_running,
                    limit=page,
                    offset=offset,
                )
                rows.extend(batch)
                # Enough when the window holds `limit` jobs from owners still under the cap
                # after the batch, or when the queue is exhausted.
                if len(batch) < page or _window_suffices(rows, limit, max_running):
                    break
                offset += page
            picked = pick_one_by_one(rows, limit, max_running)
            if not picked:
                return []
            tokens = {str(job_id): secrets.token_urlsafe(18) for job_id in picked}
            rows = tx.all(
                "claim_jobs",
                tokens=self._json(tokens),
                lease_expires_at=self._t(expires),
                worker_instance=worker_instance,
                now=self._t(now),
            )
            # Rows cancelled or deleted meanwhile are missing; keep the claim order.
            got = {str(row["id"]): row for row in rows}
            claimed = [self._job(got[str(job_id)]) for job_id in picked if str(job_id) in got]
            tx.run(
                "insert_claim_events",
                tokens=self._json({str(j.id): j.lease_token for j in claimed}),
                now=self._t(now),
            )
        return claimed

    def heartbeat(self, job_id: UUID, lease_token: str, progress: Progress | None = None) -> Job:
        now = self.clock()
        with self._transaction("write") as tx:
            row = tx.one(
                "heartbeat",
                id=self._id(job_id),
                lease_token=lease_token,
                now=self._t(now),
                lease_expires_at=self._t(self._lease_until(now, None)),
                stage=progress.stage if progress else None,
                fraction=progress.fraction if progress else None,
            )
            if row is None:
                raise self._lost(tx, job_id)
            return self._job(row)

    def progress(self, job_id: UUID, lease_token: str, progress: Progress) -> None:
        now = self.clock()
        with self._transaction("write") as tx:
            n = tx.run(
                "set_progress",
                id=self._id(job_id),
                lease_token=lease_token,
                now=self._t(now),
                stage=progress.stage,
                fraction=progress.fraction,
            )
            if n == 0:
                raise self._lost(tx, job_id)

    def complete(
        self,
        job_id: UUID,
        lease_token: str,
        result: Mapping[str, str],
        *,
        compute_seconds: float,
        audio_duration_s: float | None = None,
    ) -> Job:
        if not compute_seconds >= 0:
            raise InvalidRequest(f"compute_seconds must be >= 0, got {compute_seconds}")
        if audio_duration_s is not None and not audio_duration_s >= 0:
            raise InvalidRequest(f"audio_duration_s must be >= 0, got {audio_duration_s}")
        now = self.clock()
        with self._transaction("write") as tx:
            row = tx.one(
                "complete_job",
                id=self._id(job_id),
                lease_token=lease_token,
                now=self._t(now),
                result=self._json(dict(result)),
                compute_seconds=compute_seconds,
                audio_duration_s=audio_duration_s,
            )
            if row is None:
                raise self._lost(tx, job_id)
            self._event(
                tx,
                job_id,
                EventKind.COMPLETED,
                now,
                {"compute_seconds": compute_seconds, "artifacts": sorted(result)},
            )
            return self._job(row)

    def fail(self, job_id: UUID, lease_token: str, error: JobError) -> Job:
        now = self.clock()
        with self._transaction("write") as tx:
            row = tx.one("get_running", id=self._id(job_id), lease_token=lease_token)
            new = None
            if row is not None:
                kind = (
                    EventKind.RETRIED
                    if error.retryable and int(row["attempts"]) < int(row["max_attempts"])
                    else EventKind.FAILED
                )
                new = self._finish_attempt(tx, row, error, now, kind)
            if new is None:
                raise self._lost(tx, job_id)
            return self._job(new)

    def requeue_expired(self, limit: int = 1000) -> int:
        now = self.clock()
        with self._transaction("claim") as tx:
            return self._requeue_expired(tx, now, limit)

    def add_event(self, job_id: UUID, kind: str, detail: Mapping[str, Any] | None = None) -> None:
        if not kind:
            raise InvalidRequest("event kind must not be empty")
        now = self.clock()
        with self._transaction("write") as tx:
            if self._event(tx, job_id, kind, now, detail) == 0:
                raise NotFound(f"job {job_id} not found")

    # ------------------------------------------------------------------ owner side
    def get(self, job_id: UUID, owner: str | None = None) -> Job:
        with self._transaction("read") as tx:
            return self._job(self._owned(tx.one("get_job", id=self._id(job_id)), job_id, owner))

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
        with self._transaction("read") as tx:
            rows = tx.all(
                "list_jobs",
                owner=owner,
                states=self._states(wanted),
                before_seq=before,
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return JobPage(
            jobs=[self._job(r) for r in rows],
            next_cursor=str(rows[-1]["seq"]) if more else None,
        )

    def cancel(self, job_id: UUID, owner: str | None = None) -> Job:
        now = self.clock()
        with self._transaction("write") as tx:
            row = self._owned(tx.one("get_job_for_update", id=self._id(job_id)), job_id, owner)
            state = JobState(row["state"])
            if state == JobState.CANCELLED:
                return self._job(row)
            if state.is_terminal:
                raise InvalidState(f"job {job_id} already {state.value}; it cannot be cancelled")
            new = tx.one(
                "cancel_job", id=self._id(job_id), expected_state=state.value, now=self._t(now)
            )
            if new is None:  # pragma: no cover - the row is locked by this transaction
                raise InvalidState(f"job {job_id} changed state while being cancelled")
            self._event(
                tx,
                job_id,
                EventKind.CANCELLED,
                now,
                {"previous_state": state.value},
                worker_instance=row["worker_instance"],
            )
            return self._job(new)

    def delete(self, job_id: UUID, owner: str | None = None) -> Job:
        with self._transaction("write") as tx:
            row = self._owned(tx.one("get_job_for_update", id=self._id(job_id)), job_id, owner)
            tx.run("delete_events", id=self._id(job_id))
            tx.run("delete_job", id=self._id(job_id))
            return self._job(row)

    def list_events(self, job_id: UUID, owner: str | None = None) -> list[JobEvent]:
        with self._transaction("read") as tx:
            self._owned(tx.one("get_job", id=self._id(job_id)), job_id, owner)
            rows = tx.all("list_events", job_id=self._id(job_id))
        return [
            JobEvent(
                id=int(r["id"]),
                job_id=job_id,
                at=self._dt(r["at"]),
                kind=r["kind"],
                attempt=int(r["attempt"]),
                worker_instance=r["worker_instance"],
                detail=self._unjson(r["detail"]),
            )
            for r in rows
        ]

    def position(
        self, job_id: UUID, active_workers: int, owner: str | None = None
    ) -> Position | None:
        with self._transaction("read") as tx:
            row = self._owned(tx.one("get_job", id=self._id(job_id)), job_id, owner)
            if row["state"] != JobState.QUEUED:
                return None
            ahead = tx.one("position", id=self._id(job_id))
            running = tx.one("running_remaining")
            typical = tx.one("typical_audio")
            speed = self._speed(tx)
        assert ahead is not None and running is not None and typical is not None
        default_audio = typical["avg_audio"] or self.settings.eta_default_audio_seconds
        audio_ahead = (
            float(ahead["audio_ahead_known"]) + int(ahead["audio_ahead_unknown"]) * default_audio
        )
        audio_running = float(running["audio_remaining_known"]) + int(running["unknown"]) * (
            default_audio / 2
        )
        own_audio = row["audio_duration_s"]
        own = default_audio if own_audio is None else float(own_audio)
        slots = max(1, active_workers)
        eta_start = (audio_ahead + audio_running) * speed / slots
        return Position(
            position=int(ahead["jobs_ahead"]) + 1,
            jobs_ahead=int(ahead["jobs_ahead"]),
            eta_start_s=eta_start,
            eta_s=eta_start + own * speed,
        )

    # ------------------------------------------------------------------ operators
    def _speed(self, tx: Tx) -> float:
        row = tx.one("speed", limit=SPEED_WINDOW_JOBS)
        if row is None or not row["audio"] or row["compute"] is None:
            return self.settings.default_compute_per_audio_second
        return float(row["compute"]) / float(row["audio"])

    def compute_per_audio_second(self) -> float:
        with self._transaction("read") as tx:
            return self._speed(tx)

    def stats(self) -> QueueStats:
        now = self.clock()
        since = self._t(now - timedelta(hours=1))
        with self._transaction("read") as tx:
            depth = {int(r["priority"]): int(r["n"]) for r in tx.all("stats_depth")}
            running = tx.one("stats_running")
            finished = tx.one("stats_finished", since=since)
            errors = {r["stage"]: int(r["n"]) for r in tx.all("stats_errors", since=since)}
            speed = self._speed(tx)
        assert running is not None and finished is not None
        oldest = running["oldest_created_at"]
        claims = int(finished["claims"])
        return QueueStats(
            queued=sum(depth.values()),
            depth_by_priority=dict(sorted(depth.items(), reverse=True)),
            running=int(running["running"]),
            oldest_wait_s=0.0 if oldest is None else (now - self._dt(oldest)).total_seconds(),
            completed_last_hour=int(finished["completed"]),
            failed_last_hour=int(finished["failed"]),
            error_rate_by_stage={stage: n / max(claims, n) for stage, n in sorted(errors.items())},
            compute_per_audio_second=speed,
            lease_overdue_s=(
                0.0
                if running["earliest_lease_expiry"] is None
                else max(0.0, (now - self._dt(running["earliest_lease_expiry"])).total_seconds())
            ),
        )

    def write_queue_metrics_sample(self, active_workers: int) -> QueueMetricsSample:
        now = self.clock()
        since = self._t(now - timedelta(hours=1))
        with self._transaction("write") as tx:
            depth = sum(int(r["n"]) for r in tx.all("stats_depth"))
            finished = tx.one("stats_finished", since=since)
            assert finished is not None
            avg = finished["avg_processing_time"]
            row = tx.one(
                "insert_metric",
                id=self._id(uuid.uuid4()),
                timestamp=self._t(now),
                queue_depth=depth,
                active_workers=active_workers,
                avg_processing_time=None if avg is None else float(avg),
                jobs_completed_hour=int(finished["completed"]),
            )
            assert row is not None
            return self._metric(row)

    def list_queue_metrics(self, since: datetime) -> list[QueueMetricsSample]:
        with self._transaction("read") as tx:
            return [self._metric(r) for r in tx.all("list_metrics", since=self._t(since))]

    def prune_queue_metrics(self, older_than: datetime) -> int:
        with self._transaction("write") as tx:
            return tx.run("prune_metrics", before=self._t(older_than))

    # ------------------------------------------------------------------ API keys
    def create_api_key(self, owner: str, max_priority: int) -> tuple[str, str]:
        if not owner:
            raise InvalidRequest("owner must not be empty")
        _check_priority(max_priority, "max_priority")
        key_id = uuid.uuid4().hex[:16]
        plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
        with self._transaction("write") as tx:
            tx.run(
                "insert_api_key",
                key_id=key_id,
                owner=owner,
                key_hash=hash_api_key(plaintext),
                max_priority=max_priority,
                now=self._t(self.clock()),
            )
        return key_id, plaintext

    def authenticate(self, plaintext: str) -> ApiKey:
        if not plaintext:
            raise Unauthorized("missing API key")
        with self._transaction("read") as tx:
            row = tx.one("api_key_by_hash", key_hash=hash_api_key(plaintext))
        if row is None:
            raise Unauthorized("unknown API key")
        if row["revoked_at"] is not None:
            raise Unauthorized("API key was revoked")
        return self._api_key(row)

    def revoke_api_key(self, key_id: str, owner: str | None = None) -> None:
        with self._transaction("write") as tx:
            row = tx.one("get_api_key", key_id=key_id)
            if row is None or (owner is not None and row["owner"] != owner):
                raise NotFound(f"API key {key_id} not found")
            tx.run("revoke_api_key", key_id=key_id, now=self._t(self.clock()))

    def list_api_keys(self, owner: str) -> list[ApiKey]:
        with self._transaction("read") as tx:
            return [self._api_key(r) for r in tx.all("list_api_keys", owner=owner)]


def _window_suffices(rows: list[Any], limit: int, max_running: int) -> bool:
    """Whether the fetched rows hold ``limit`` picks even if every owner fills its cap."""
    room: dict[str, int] = {}
    for row in rows:
        room.setdefault(row["owner"], max_running - int(row["owner_running"]))
    usable: dict[str, int] = {}
    for row in rows:
        usable[row["owner"]] = usable.get(row["owner"], 0) + 1
    return sum(min(room[o], n) for o, n in usable.items()) >= limit


def pick_one_by_one(rows: list[Any], limit: int, max_running: int) -> list[Any]:
    """Ids in the order repeated single claims would take them from ``rows``.

    ``rows`` come sorted by the ORDER KEY (priority DESC, owner_running, created_at, seq).
    Within the highest priority left, the owner with the fewest running jobs (counting
    those taken by this batch) goes next, then the oldest job; an owner at its cap drops out.
    """
    by_priority: dict[int, dict[str, deque[Any]]] = defaultdict(lambda: defaultdict(deque))
    running: dict[str, int] = {}
    for row in rows:
        by_priority[int(row["priority"])][row["owner"]].append(row)
        running.setdefault(row["owner"], int(row["owner_running"]))
    picked: list[Any] = []
    for priority in sorted(by_priority, reverse=True):
        owners = by_priority[priority]
        heap = [
            (running[o], q[0]["created_at"], q[0]["seq"], o)
            for o, q in owners.items()
            if running[o] < max_running
        ]
        heapq.heapify(heap)
        while heap and len(picked) < limit:
            _, _, _, owner = heapq.heappop(heap)
            row = owners[owner].popleft()
            picked.append(row["id"])
            running[owner] += 1
            if owners[owner] and running[owner] < max_running:
                nxt = owners[owner][0]
                heapq.heappush(heap, (running[owner], nxt["created_at"], nxt["seq"], owner))
        if len(picked) == limit:
            break
    return picked
