"""Queueing a job: validation, idempotent replays, queue caps and the job's fair tag."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from aisubs.errors import CapacityExceeded, IdempotencyConflict, InvalidRequest
from aisubs.queue.core import StoreCore
from aisubs.queue.models import MAX_PRIORITY, MIN_PRIORITY, EventKind, Job, JobOptions


def request_hash(source: str, options: JobOptions, priority: int) -> str:
    """Fingerprint of what a submission asks for, to tell replays from key reuse."""
    body = json.dumps(
        {"source": source, "options": options.to_dict(), "priority": priority},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def check_priority(priority: Any, what: str = "priority") -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidRequest(f"{what} must be an integer {MIN_PRIORITY}-{MAX_PRIORITY}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidRequest(
            f"{what} {priority} is outside {MIN_PRIORITY}-{MAX_PRIORITY} (higher runs first)"
        )
    return priority


def submit(
    core: StoreCore,
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
    settings = core.settings
    if not owner:
        raise InvalidRequest("owner must not be empty")
    if not source:
        raise InvalidRequest("source must not be empty")
    prio = check_priority(settings.default_priority if priority is None else priority)
    opts = JobOptions.parse(options)
    attempts = settings.max_attempts if max_attempts is None else max_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InvalidRequest(f"max_attempts must be a positive integer, got {attempts!r}")
    if audio_duration_s is not None and not audio_duration_s >= 0:
        raise InvalidRequest(f"audio_duration_s must be >= 0, got {audio_duration_s}")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise InvalidRequest("idempotency key must be 1-255 characters")
    digest = request_hash(content_id or source, opts, prio)
    db = core.backend
    now = core.clock()
    with core.tx("write", owner_lock=owner) as tx:
        if idempotency_key is not None:
            existing = tx.one("get_by_idempotency", owner=owner, idempotency_key=idempotency_key)
            if existing is not None:
                if existing["request_hash"] != digest:
                    raise IdempotencyConflict(
                        f"idempotency key {idempotency_key!r} was already used for job "
                        f"{existing['id']} with a different source, options or priority"
                    )
                return core.job(existing)
        counts = tx.one("count_queued", owner=owner)
        assert counts is not None
        retry_after = settings.capacity_retry_after_s
        if counts["total_queued"] >= settings.max_queued_total:
            raise CapacityExceeded(
                f"the queue is full ({counts['total_queued']} jobs queued, "
                f"cap {settings.max_queued_total}); retry later",
                retry_after=retry_after,
                code="queue_full",
            )
        if counts["owner_queued"] >= settings.max_queued_per_owner:
            raise CapacityExceeded(
                f"owner {owner!r} already has {counts['owner_queued']} jobs queued "
                f"(cap {settings.max_queued_per_owner}); retry later",
                retry_after=retry_after,
                code="owner_queue_full",
            )
        job_id = uuid.uuid4()
        row = tx.one(
            "insert_job",
            id=db.id(job_id),
            owner=owner,
            source=source,
            options=db.json(opts.to_dict()),
            priority=prio,
            max_attempts=attempts,
            now=db.time(now),
            audio_duration_s=audio_duration_s,
            idempotency_key=idempotency_key,
            request_hash=digest,
        )
        assert row is not None
        core.event(tx, job_id, EventKind.SUBMITTED, now, {"priority": prio})
        return core.job(row)
