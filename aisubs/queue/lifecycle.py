"""A job's life after it was queued: leases, completion, failure and retry, cancel, delete.

Every worker call is one conditional UPDATE fenced by the state and the lease token, so a
worker whose lease was taken over can never change the job again (see ``store.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

from aisubs.errors import InvalidRequest, InvalidState, NotFound
from aisubs.queue.backend import Row, Tx
from aisubs.queue.core import StoreCore
from aisubs.queue.models import EventKind, Job, JobError, JobState, Progress
from aisubs.queue.retry import backoff_seconds

# What a user reads when a worker vanished mid-job (the worker's name goes to the log).
LEASE_EXPIRED_MESSAGE = "the worker processing this job stopped responding"


def heartbeat(core: StoreCore, job_id: UUID, lease_token: str, progress: Progress | None) -> Job:
    db = core.backend
    now = core.clock()
    with core.tx("write") as tx:
        row = tx.one(
            "heartbeat",
            id=db.id(job_id),
            lease_token=lease_token,
            now=db.time(now),
            lease_expires_at=db.time(core.lease_until(now, None)),
            stage=progress.stage if progress else None,
            fraction=progress.fraction if progress else None,
        )
        if row is None:
            raise core.lost(tx, job_id)
        return core.job(row)


def set_progress(core: StoreCore, job_id: UUID, lease_token: str, progress: Progress) -> None:
    db = core.backend
    with core.tx("write") as tx:
        n = tx.run(
            "set_progress",
            id=db.id(job_id),
            lease_token=lease_token,
            now=db.time(core.clock()),
            stage=progress.stage,
            fraction=progress.fraction,
        )
        if n == 0:
            raise core.lost(tx, job_id)


def complete(
    core: StoreCore,
    job_id: UUID,
    lease_token: str,
    result: Mapping[str, str],
    *,
    compute_seconds: float,
    audio_duration_s: float | None,
) -> Job:
    if not compute_seconds >= 0:
        raise InvalidRequest(f"compute_seconds must be >= 0, got {compute_seconds}")
    if audio_duration_s is not None and not audio_duration_s >= 0:
        raise InvalidRequest(f"audio_duration_s must be >= 0, got {audio_duration_s}")
    db = core.backend
    now = core.clock()
    with core.tx("write") as tx:
        row = tx.one(
            "complete_job",
            id=db.id(job_id),
            lease_token=lease_token,
            now=db.time(now),
            result=db.json(dict(result)),
            compute_seconds=compute_seconds,
            audio_duration_s=audio_duration_s,
        )
        if row is None:
            raise core.lost(tx, job_id)
        detail = {"compute_seconds": compute_seconds, "artifacts": sorted(result)}
        core.event(tx, job_id, EventKind.COMPLETED, now, detail)
        return core.job(row)


def fail(core: StoreCore, job_id: UUID, lease_token: str, error: JobError) -> Job:
    with core.tx("write") as tx:
        row = tx.one("get_running", id=core.backend.id(job_id), lease_token=lease_token)
        new = None
        if row is not None:
            last = int(row["attempts"]) >= int(row["max_attempts"])
            kind = EventKind.RETRIED if error.retryable and not last else EventKind.FAILED
            new = finish_attempt(core, tx, row, error, kind)
        if new is None:
            raise core.lost(tx, job_id)
        return core.job(new)


def finish_attempt(
    core: StoreCore, tx: Tx, row: Row, error: JobError, event_kind: str
) -> Row | None:
    """Retry the job (queued, backoff) or fail it for good; fenced by the row's token.

    Returns the updated row, or None if the fence did not match.
    """
    db = core.backend
    now = core.clock()
    job_id = db.from_id(row["id"])
    attempts = int(row["attempts"])
    params = {
        "id": db.id(job_id),
        "lease_token": row["lease_token"],
        "now": db.time(now),
        "error_code": error.code,
        "error_message": error.message,
        "error_retryable": error.retryable,
        "error_stage": error.stage,
    }
    detail: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "retryable": error.retryable,
        "stage": error.stage,
    }
    if error.retryable and attempts < int(row["max_attempts"]):
        not_before = now + timedelta(seconds=backoff_seconds(attempts, core.settings, core.rng))
        new = tx.one("retry_job", not_before=db.time(not_before), **params)
        if new is not None:
            detail["not_before"] = not_before.isoformat()
            core.event(tx, job_id, event_kind, now, {**detail, "outcome": "retried"})
            if event_kind != EventKind.RETRIED:
                core.event(tx, job_id, EventKind.RETRIED, now, detail)
        return new
    new = tx.one("fail_job", **params)
    if new is not None:
        core.event(tx, job_id, event_kind, now, {**detail, "outcome": "failed"})
        if event_kind != EventKind.FAILED:
            core.event(tx, job_id, EventKind.FAILED, now, detail)
    return new


def requeue_expired_in(core: StoreCore, tx: Tx, limit: int) -> int:
    """Expired leases in this transaction become failed attempts (``lease_expired``)."""
    db = core.backend
    done = 0
    for row in tx.all("expired_leases", now=db.time(core.clock()), limit=limit):
        error = JobError(
            code="lease_expired",
            message=LEASE_EXPIRED_MESSAGE,
            retryable=True,
            stage=row["progress_stage"],
        )
        if finish_attempt(core, tx, row, error, EventKind.LEASE_EXPIRED) is not None:
            done += 1
    return done


def requeue_expired(core: StoreCore, limit: int) -> int:
    with core.tx("claim") as tx:
        return requeue_expired_in(core, tx, limit)


def add_event(
    core: StoreCore,
    job_id: UUID,
    kind: str,
    detail: Mapping[str, Any] | None,
    lease_token: str | None,
) -> None:
    if not kind:
        raise InvalidRequest("event kind must not be empty")
    now = core.clock()
    with core.tx("write") as tx:
        if core.event(tx, job_id, kind, now, detail, lease_token=lease_token) == 0:
            if lease_token is not None:
                raise core.lost(tx, job_id)
            raise NotFound(f"job {job_id} not found")


def cancel(core: StoreCore, job_id: UUID, owner: str | None) -> Job:
    db = core.backend
    now = core.clock()
    with core.tx("write") as tx:
        row = core.owned(tx.one("get_job_for_update", id=db.id(job_id)), job_id, owner)
        state = JobState(row["state"])
        if state == JobState.CANCELLED:
            return core.job(row)
        if state.is_terminal:
            raise InvalidState(f"job {job_id} already {state.value}; it cannot be cancelled")
        new = tx.one("cancel_job", id=db.id(job_id), expected_state=state.value, now=db.time(now))
        if new is None:  # pragma: no cover - the row is locked by this transaction
            raise InvalidState(f"job {job_id} changed state while being cancelled")
        core.event(
            tx,
            job_id,
            EventKind.CANCELLED,
            now,
            {"previous_state": state.value},
            worker_instance=row["worker_instance"],
        )
        return core.job(new)


def delete(core: StoreCore, job_id: UUID, owner: str | None) -> Job:
    db = core.backend
    with core.tx("write") as tx:
        row = core.owned(tx.one("get_job_for_update", id=db.id(job_id)), job_id, owner)
        tx.run("delete_events", id=db.id(job_id))
        tx.run("delete_job", id=db.id(job_id))
        return core.job(row)
