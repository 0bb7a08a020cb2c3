"""One exception hierarchy for the whole domain.

Every error carries a stable machine-readable ``code`` and says whether retrying the
same work can succeed (``retryable``). HTTP status codes are chosen only at the HTTP
edge (``serve_app.http_errors``), never here.
"""

from __future__ import annotations


class AisubsError(Exception):
    """Root of every error the domain raises on purpose."""

    code: str = "internal_error"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------- request / queue
class InvalidRequest(AisubsError):
    """The caller asked for something malformed (bad priority, unknown option...)."""

    code = "invalid_request"


class NotFound(AisubsError):
    """No such object, or it belongs to someone else (never reveal which)."""

    code = "not_found"


class Unauthorized(AisubsError):
    code = "unauthorized"


class Forbidden(AisubsError):
    """The caller is known but may not do this (e.g. a priority above its key's maximum)."""

    code = "forbidden"


class Conflict(AisubsError):
    """The request conflicts with the current state (e.g. results before success)."""

    code = "conflict"


class IdempotencyConflict(Conflict):
    """An idempotency key was reused with a different request body."""

    code = "idempotency_conflict"


class InvalidState(Conflict):
    """The job is not in a state that allows this transition."""

    code = "invalid_state"


class LeaseLost(Conflict):
    """The worker's lease was taken over or expired: it must stop touching the job."""

    code = "lease_lost"


class CapacityExceeded(AisubsError):
    """A queue cap was hit; the caller should retry after ``retry_after`` seconds."""

    code = "capacity_exceeded"
    retryable = True

    def __init__(self, message: str, *, retry_after: float = 30.0, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StoreUnavailable(AisubsError):
    """The job store cannot be reached right now."""

    code = "store_unavailable"
    retryable = True


# ---------------------------------------------------------------- media
class MediaError(AisubsError):
    """The media itself is unusable; retrying the same bytes cannot help."""

    code = "media_error"


class UndecodableMedia(MediaError):
    code = "undecodable_media"


class EmptyMedia(MediaError):
    code = "empty_media"


class NoAudioStream(MediaError):
    code = "no_audio_stream"


class MediaTooLong(MediaError):
    code = "media_too_long"


class MediaTooLarge(MediaError):
    code = "media_too_large"


class ForbiddenURL(MediaError):
    """A URL source points somewhere we refuse to go (private network, bad scheme)."""

    code = "forbidden_url"


class FetchFailed(AisubsError):
    """Downloading a URL source failed for a reason that may be transient."""

    code = "fetch_failed"
    retryable = True


# ---------------------------------------------------------------- models / pipeline
class ModelError(AisubsError):
    code = "model_error"


class ModelNotFound(ModelError):
    code = "model_not_found"


class ModelChecksumMismatch(ModelError):
    code = "model_checksum_mismatch"


class PipelineError(AisubsError):
    """A pipeline stage failed unexpectedly; usually worth a retry."""

    code = "pipeline_error"
    retryable = True

    def __init__(self, message: str, *, stage: str = "unknown", retryable: bool | None = None):
        super().__init__(message, retryable=retryable)
        self.stage = stage


class Cancelled(AisubsError):
    """The job was cancelled while running; the runner stops at the next chunk."""

    code = "cancelled"
