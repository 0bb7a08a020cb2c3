"""One exception hierarchy for the whole domain.

Every error carries a stable machine-readable ``code`` and says whether retrying the
same work can succeed (``retryable``). HTTP status codes are chosen only at the HTTP
edge (``serve_app.http_errors``), never here.

Two texts per error. ``message`` is the detail for logs and operators: exception text,
database hosts, file paths, storage keys, resolved addresses. ``public_message`` is what a
user may read (HTTP error bodies, a job's error, its timeline): the ``public`` text the
raiser gave, else the message itself for errors that only describe the caller's own request
(``message_is_public``: bad input, auth, conflicts, caps), else the fixed text for the code
in :data:`PUBLIC_MESSAGES`. Raisers that want a specific but safe text for users pass
``public=`` (e.g. the limits a media file broke).
"""

from __future__ import annotations

from typing import ClassVar

# What users read for each code whose detail is not theirs to see.
PUBLIC_MESSAGES: dict[str, str] = {
    "internal_error": "an internal error occurred",
    "store_unavailable": "the job store is unavailable; retry later",
    "lease_lost": "the job was taken over by another worker",
    "lease_expired": "the worker processing this job stopped responding",
    "cancelled": "the job was cancelled",
    "media_error": "the media cannot be processed",
    "undecodable_media": "the media could not be decoded (damaged, or not audio or video)",
    "empty_media": "the media holds no audio samples",
    "no_audio_stream": "the media has no audio stream",
    "media_too_long": "the media is longer than the service accepts",
    "media_too_large": "the media is larger than the service accepts",
    "media_missing": "the uploaded media is no longer stored; submit it again",
    "forbidden_url": "the URL may not be fetched (private, reserved or invalid address)",
    "fetch_failed": "the media URL could not be downloaded",
    "fetch_timeout": "downloading the media URL took too long",
    "fetch_http_error": "the media URL answered with an HTTP error",
    "too_many_redirects": "the media URL redirected too many times",
    "dns_failed": "the host name of the media URL could not be resolved",
    "dns_timeout": "resolving the host name of the media URL took too long",
    "model_error": "the speech model failed",
    "model_not_found": "the speech model is not available on this service",
    "model_checksum_mismatch": "the speech model files are damaged on this service",
    "pipeline_error": "processing the media failed",
}


def public_message_for(code: str, default: str | None = None) -> str:
    """The user-facing text of an error code (a generic one for codes not listed)."""
    return PUBLIC_MESSAGES.get(code, default or PUBLIC_MESSAGES["internal_error"])


class AisubsError(Exception):
    """Root of every error the domain raises on purpose."""

    code: str = "internal_error"
    retryable: bool = False
    # True where the message only ever describes the caller's own request.
    message_is_public: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool | None = None,
        public: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.public = public
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    @property
    def public_message(self) -> str:
        """What a user may read about this error (see the module doc)."""
        if self.public is not None:
            return self.public
        if self.message_is_public:
            return self.message
        return public_message_for(self.code)

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------- request / queue
class InvalidRequest(AisubsError):
    """The caller asked for something malformed (bad priority, unknown option...)."""

    code = "invalid_request"
    message_is_public = True


class NotFound(AisubsError):
    """No such object, or it belongs to someone else (never reveal which)."""

    code = "not_found"
    message_is_public = True


class Unauthorized(AisubsError):
    code = "unauthorized"
    message_is_public = True


class Forbidden(AisubsError):
    """The caller is known but may not do this (e.g. a priority above its key's maximum)."""

    code = "forbidden"
    message_is_public = True


class Conflict(AisubsError):
    """The request conflicts with the current state (e.g. results before success)."""

    code = "conflict"
    message_is_public = True


class IdempotencyConflict(Conflict):
    """An idempotency key was reused with a different request body."""

    code = "idempotency_conflict"


class InvalidState(Conflict):
    """The job is not in a state that allows this transition."""

    code = "invalid_state"


class LeaseLost(Conflict):
    """The worker's lease was taken over or expired: it must stop touching the job."""

    code = "lease_lost"
    message_is_public = False


class CapacityExceeded(AisubsError):
    """A queue cap was hit; the caller should retry after ``retry_after`` seconds."""

    code = "capacity_exceeded"
    retryable = True
    message_is_public = True

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
    message_is_public = True


class NoAudioStream(MediaError):
    code = "no_audio_stream"
    message_is_public = True


class MediaTooLong(MediaError):
    code = "media_too_long"


class MediaTooLarge(MediaError):
    code = "media_too_large"
    message_is_public = True


class MediaMissing(MediaError):
    """A stored upload is gone (deleted, lost by the storage): no retry brings it back."""

    code = "media_missing"


class ForbiddenURL(MediaError):
    """A URL source points somewhere we refuse to go (private network, bad scheme)."""

    code = "forbidden_url"
    # Messages name the (redacted) URL the user gave and the reason, never an address a
    # name resolved to (aisubs.media.addresses).
    message_is_public = True


class FetchFailed(AisubsError):
    """Downloading a URL source failed for a reason that may be transient."""

    code = "fetch_failed"
    retryable = True
    # Messages name the (redacted) URL and the reason; low-level text goes to the log.
    message_is_public = True


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

    def __init__(
        self,
        message: str,
        *,
        stage: str = "unknown",
        retryable: bool | None = None,
        public: str | None = None,
    ):
        super().__init__(message, retryable=retryable, public=public)
        self.stage = stage

    @property
    def public_message(self) -> str:
        if self.public is not None:
            return self.public
        return f"processing the media failed in the {self.stage} stage"


class Cancelled(AisubsError):
    """The job was cancelled while running; the runner stops at the next chunk."""

    code = "cancelled"
