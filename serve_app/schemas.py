"""Request and response bodies of HTTP API v1.

These pydantic models are the API contract: FastAPI turns them into ``/openapi.json`` and
checks every response against them, so a field added here is a promise to clients.
Domain objects (:class:`~aisubs.queue.models.Job` and friends) are converted at the edge
(``serve_app.routes.jobs``) so that internal fields (lease tokens, storage keys, worker
names) never leak.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from aisubs.queue.models import MAX_PRIORITY, MIN_PRIORITY, JobOptions, JobState

MAX_URL_CHARS = 4096


class SubtitleFormat(enum.StrEnum):
    """Downloadable artifact formats (``/v1/jobs/{id}/subtitles.{format}``)."""

    SRT = "srt"
    VTT = "vtt"
    JSON = "json"
    TXT = "txt"


# ------------------------------------------------------------------------- errors
class ValidationIssue(BaseModel):
    """One problem found in the request (422 only)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code, e.g. `not_found`.")
    message: str = Field(description="Human-readable explanation.")
    details: list[ValidationIssue] | None = Field(
        default=None, description="Per-field problems (request validation errors only)."
    )


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorBody


# ------------------------------------------------------------------------- requests
class SubmitURLJob(BaseModel):
    """JSON body of ``POST /v1/jobs`` for media the service downloads itself.

    To upload a file instead, send ``multipart/form-data`` with a ``file`` part and the
    option fields as form fields (see the request body's multipart schema).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://media.example.com/interview.mp3",
                    "priority": 5,
                    "options": {"language": "en", "diarize": True, "formats": ["srt", "vtt"]},
                }
            ]
        },
    )

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="http(s) URL of the media; private and loopback addresses are refused.",
    )
    priority: int | None = Field(
        default=None,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description="1-10, higher runs first; at most the API key's max_priority. "
        "Default: the service default, lowered to the key's maximum.",
    )
    options: JobOptions = Field(
        default_factory=JobOptions, description="What the pipeline should produce."
    )


# ------------------------------------------------------------------------- jobs
class JobErrorInfo(BaseModel):
    """Why the last attempt failed (kept when the job finally fails)."""

    code: str
    message: str
    retryable: bool
    stage: str | None = None


class JobSourceInfo(BaseModel):
    kind: Literal["upload", "url"]
    url: str | None = Field(default=None, description="The submitted URL (URL jobs only).")


class JobTimings(BaseModel):
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = Field(
        default=None, description="When the latest attempt started."
    )
    finished_at: datetime | None = None
    not_before: datetime = Field(description="A retried job waits until this time.")
    audio_duration_s: float | None = None
    compute_seconds: float | None = None


class JobLinks(BaseModel):
    job: str
    events: str
    subtitles: dict[str, str] = Field(
        default_factory=dict,
        description="Download path per produced format (present once the job succeeded).",
    )


class JobResponse(BaseModel):
    """A job as its owner sees it."""

    id: UUID
    state: JobState
    priority: int
    stage: str | None = Field(default=None, description="Pipeline stage now running.")
    progress: float | None = Field(
        default=None, ge=0, le=1, description="Fraction of the whole job done."
    )
    position: int | None = Field(
        default=None,
        ge=1,
        description="Place in the queue, 1 = next (queued jobs, single-job answers only).",
    )
    eta_start_seconds: float | None = Field(
        default=None, description="Estimated seconds until the job starts (queued jobs)."
    )
    eta_seconds: float | None = Field(
        default=None, description="Estimated seconds until the job is done (queued jobs)."
    )
    attempts: int
    max_attempts: int
    error: JobErrorInfo | None = None
    options: JobOptions
    source: JobSourceInfo
    idempotency_key: str | None = None
    timings: JobTimings
    links: JobLinks


class JobListResponse(BaseModel):
    """One page of the caller's jobs, newest first."""

    jobs: list[JobResponse]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last."
    )


class JobEventOut(BaseModel):
    id: int
    at: datetime
    kind: str
    attempt: int
    worker_instance: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class JobEventsResponse(BaseModel):
    """A job's history, oldest first."""

    job_id: UUID
    events: list[JobEventOut]


# ------------------------------------------------------------------------- queue
class QueueStatusResponse(BaseModel):
    """Live queue numbers (the seed's ``/queue/status``, extended)."""

    queue_depth: int = Field(description="Jobs waiting (state queued).")
    depth_by_priority: dict[str, int] = Field(
        description="Queued jobs per priority (keys are priorities 1-10 as strings)."
    )
    active_workers: int = Field(description="Live transcriber replicas.")
    processing_jobs: int = Field(description="Jobs running now.")
    estimated_wait_minutes: float = Field(
        description="Rough wait before a newly submitted job starts, from the measured "
        "speed, the configured typical audio length and the live worker count."
    )
    oldest_wait_s: float = Field(description="Age of the oldest queued job.")
    compute_per_audio_second: float = Field(
        description="Measured seconds of compute per second of audio."
    )
    completed_last_hour: int
    failed_last_hour: int


# ------------------------------------------------------------------------- health
class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class StoreHealth(BaseModel):
    ok: bool
    detail: str | None = None


class ReadinessResponse(BaseModel):
    """``/readyz``: 200 when jobs can be accepted, 503 otherwise (same body)."""

    ready: bool
    store: StoreHealth
    models: dict[str, Any] = Field(
        description="Model status reported by the deployment. The service is not ready when "
        "it says `status: unavailable`, or an entry says `can_start: false`."
    )
    gpu_visible: bool
    active_workers: int
