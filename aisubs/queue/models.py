"""Domain types of the durable job queue.

These are plain values handed across the store interface; the database row is the single
source of truth and these objects are snapshots of it. ``JobState`` mirrors the CHECK
constraint / enum in both schemas, so a new state needs a migration as well.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aisubs.errors import AisubsError, InvalidRequest, public_message_for

MIN_PRIORITY = 1
MAX_PRIORITY = 10

OutputFormat = Literal["srt", "vtt", "json", "txt"]


class JobState(enum.StrEnum):
    """Life cycle: ``queued -> running -> succeeded | failed | cancelled``.

    A retry puts a running job back to ``queued`` with ``not_before`` in the future.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class EventKind(enum.StrEnum):
    """Kinds of ``job_events`` rows the store writes itself (the runner may add others)."""

    SUBMITTED = "submitted"
    CLAIMED = "claimed"
    RETRIED = "retried"
    FAILED = "failed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    LEASE_EXPIRED = "lease_expired"
    STAGE_STARTED = "stage_started"
    STAGE_FINISHED = "stage_finished"


class JobOptions(BaseModel):
    """What the pipeline should do with the media; unknown keys are refused.

    Validated once at submit time so a worker never meets an option it does not know.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "description": "What the pipeline should produce. Cross-field rules (answered "
            "with 400 invalid_request when broken): min_speakers <= max_speakers, and "
            "num_speakers within min_speakers..max_speakers when both are given; formats "
            "names at least one format.",
            "x-cross-field-rules": [
                "min_speakers <= max_speakers",
                "min_speakers <= num_speakers <= max_speakers",
            ],
        },
    )

    language: str | None = Field(default=None, min_length=2, max_length=16)
    task: Literal["transcribe", "translate"] = "transcribe"
    # Target language for translation of the subtitles (None: keep the spoken language).
    translate_to: str | None = Field(default=None, min_length=2, max_length=16)
    diarize: bool = True
    num_speakers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Exact number of speakers, when known. Must lie within "
        "min_speakers..max_speakers when those are given too (400 otherwise).",
    )
    min_speakers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="At least this many speakers. Must not exceed max_speakers (400 otherwise).",
    )
    max_speakers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="At most this many speakers. Must not be below min_speakers (400 otherwise).",
    )
    formats: tuple[OutputFormat, ...] = ("srt", "vtt", "json", "txt")
    prompt: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _check_speaker_hints(self) -> JobOptions:
        lo, hi, n = self.min_speakers, self.max_speakers, self.num_speakers
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_speakers ({lo}) is greater than max_speakers ({hi})")
        if n is not None and ((lo is not None and n < lo) or (hi is not None and n > hi)):
            raise ValueError(f"num_speakers ({n}) is outside min_speakers..max_speakers")
        if not self.formats:
            raise ValueError("formats must name at least one output format")
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any] | JobOptions | None) -> JobOptions:
        """Validate user input, turning any problem into :class:`InvalidRequest`."""
        if data is None:
            return cls()
        if isinstance(data, JobOptions):
            return data
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InvalidRequest(f"invalid job options: {problems}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass(frozen=True, slots=True)
class JobError:
    """Why an attempt failed, kept on the job (the last one) and in its events."""

    code: str
    message: str
    retryable: bool
    stage: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, stage: str | None = None) -> JobError:
        """Map any exception to a job error; unknown exceptions are retryable internals.

        The message is the public one (users read it): the detail of ``exc`` is for the
        log, which the caller writes.
        """
        if isinstance(exc, AisubsError):
            return cls(
                code=exc.code,
                message=exc.public_message,
                retryable=exc.retryable,
                stage=stage or getattr(exc, "stage", None),
            )
        return cls(
            code="internal_error",
            message=public_message_for("internal_error"),
            retryable=True,
            stage=stage,
        )


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a running job is: pipeline stage name and a fraction 0..1 of the whole job."""

    stage: str
    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise InvalidRequest(f"progress fraction {self.fraction} is outside 0..1")


@dataclass(frozen=True, slots=True)
class Job:
    """Snapshot of one job row."""

    id: UUID
    owner: str
    # Stored upload reference (e.g. ``upload://<sha256>``) or a http(s) URL.
    source: str
    options: JobOptions
    priority: int
    state: JobState
    attempts: int
    max_attempts: int
    not_before: datetime
    created_at: datetime
    updated_at: datetime
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    worker_instance: str | None = None
    progress: Progress | None = None
    error: JobError | None = None
    audio_duration_s: float | None = None
    compute_seconds: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    idempotency_key: str | None = None
    # Artifact name (``srt``, ``vtt``, ``json``, ``txt``...) -> storage URI.
    result: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of an owner's jobs, newest first; pass ``next_cursor`` to get the next."""

    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Position:
    """Place of a queued job: 1 = claimed next. ``eta_s`` = seconds until it should finish."""

    position: int
    jobs_ahead: int
    eta_start_s: float
    eta_s: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Live numbers for operators, the autoscaler and ``/metrics``."""

    queued: int
    depth_by_priority: dict[int, int]
    running: int
    oldest_wait_s: float
    completed_last_hour: int
    failed_last_hour: int
    # Failed attempts (final or retried, incl. expired leases) in the last hour, per stage,
    # divided by attempts started in the last hour.
    error_rate_by_stage: dict[str, float]
    compute_per_audio_second: float
    # How far past its lease the most overdue running job is (0 when none): running jobs
    # are requeued as soon as the dispatcher sees their lease expired, so this stays near
    # zero unless nothing is reaping them.
    lease_overdue_s: float = 0.0


@dataclass(frozen=True, slots=True)
class QueueMetricsSample:
    """One row of ``queue_metrics`` (the seed's phase 4.2 sample table)."""

    id: UUID
    timestamp: datetime
    queue_depth: int
    active_workers: int
    avg_processing_time: float | None
    jobs_completed_hour: int


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One line of a job's history."""

    id: int
    job_id: UUID
    at: datetime
    kind: str
    attempt: int
    worker_instance: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the store knows it (never the plaintext)."""

    key_id: str
    owner: str
    max_priority: int
    created_at: datetime
    revoked_at: datetime | None = None
