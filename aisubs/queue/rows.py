"""Database rows -> queue domain values, through the backend's decodings."""

from __future__ import annotations

from aisubs.queue.backend import Row, SqlBackend
from aisubs.queue.models import (
    ApiKey,
    Job,
    JobError,
    JobEvent,
    JobOptions,
    JobState,
    Progress,
    QueueMetricsSample,
)


def job_from_row(db: SqlBackend, row: Row) -> Job:
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
    return Job(
        id=db.from_id(row["id"]),
        owner=row["owner"],
        source=row["source"],
        options=JobOptions.model_validate(db.from_json(row["options"])),
        priority=int(row["priority"]),
        state=JobState(row["state"]),
        attempts=int(row["attempts"]),
        max_attempts=int(row["max_attempts"]),
        not_before=db.from_time(row["not_before"]),
        created_at=db.from_time(row["created_at"]),
        updated_at=db.from_time(row["updated_at"]),
        lease_token=row["lease_token"],
        lease_expires_at=db.opt_time(row["lease_expires_at"]),
        worker_instance=row["worker_instance"],
        progress=progress,
        error=error,
        audio_duration_s=row["audio_duration_s"],
        compute_seconds=row["compute_seconds"],
        started_at=db.opt_time(row["started_at"]),
        finished_at=db.opt_time(row["finished_at"]),
        idempotency_key=row["idempotency_key"],
        result={str(k): str(v) for k, v in db.from_json(row["result"]).items()},
    )


def api_key_from_row(db: SqlBackend, row: Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        owner=row["owner"],
        max_priority=int(row["max_priority"]),
        created_at=db.from_time(row["created_at"]),
        revoked_at=db.opt_time(row["revoked_at"]),
    )


def metric_from_row(db: SqlBackend, row: Row) -> QueueMetricsSample:
    avg = row["avg_processing_time"]
    return QueueMetricsSample(
        id=db.from_id(row["id"]),
        timestamp=db.from_time(row["timestamp"]),
        queue_depth=int(row["queue_depth"]),
        active_workers=int(row["active_workers"]),
        avg_processing_time=None if avg is None else float(avg),
        jobs_completed_hour=int(row["jobs_completed_hour"]),
    )


def event_from_row(db: SqlBackend, row: Row) -> JobEvent:
    return JobEvent(
        id=int(row["id"]),
        job_id=db.from_id(row["job_id"]),
        at=db.from_time(row["at"]),
        kind=row["kind"],
        attempt=int(row["attempt"]),
        worker_instance=row["worker_instance"],
        detail=db.from_json(row["detail"]),
    )
