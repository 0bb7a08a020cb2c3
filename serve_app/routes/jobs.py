"""``/v1/jobs``: submit, read, list, cancel/purge, download subtitles, read the timeline.

A job belongs to the owner of the API key that submitted it; every read and write passes
that owner to the store, which answers :class:`~aisubs.errors.NotFound` for anyone else's
job (so nobody can probe which ids exist). Store calls are synchronous: plain ``def``
routes run in FastAPI's thread pool, the async submit route hops to threads explicitly.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from aisubs.errors import AisubsError, Conflict, Forbidden, InvalidState, NotFound
from aisubs.media.decode import MediaInfo, probe_media
from aisubs.media.fetch import check_url
from aisubs.media.storage import MEDIA_PREFIX, RESULTS_PREFIX, Storage
from aisubs.pipeline import validate_options
from aisubs.queue.models import ApiKey, Job, JobState, Position
from serve_app.api import ApiState
from serve_app.auth import api_state, require_api_key
from serve_app.http_errors import error_responses
from serve_app.routes.uploads import (
    SUBMIT_REQUEST_BODY,
    FormSubmission,
    read_json_submission,
    read_upload_submission,
    upload_key,
)
from serve_app.schemas import (
    JobErrorInfo,
    JobEventOut,
    JobEventsResponse,
    JobLinks,
    JobListResponse,
    JobResponse,
    JobSourceInfo,
    JobTimings,
    SubtitleFormat,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

CONTENT_TYPES: dict[SubtitleFormat, str] = {
    SubtitleFormat.SRT: "application/x-subrip; charset=utf-8",
    SubtitleFormat.VTT: "text/vtt; charset=utf-8",
    SubtitleFormat.JSON: "application/json",
    SubtitleFormat.TXT: "text/plain; charset=utf-8",
}
MAX_PAGE_SIZE = 100

Key = Annotated[ApiKey, Depends(require_api_key)]
State = Annotated[ApiState, Depends(api_state)]


# ----------------------------------------------------------------------- views
def job_view(job: Job, request: Request, position: Position | None = None) -> JobResponse:
    """The owner's view of a job (no lease tokens, workers or storage keys)."""
    base = f"{request.scope.get('root_path', '').rstrip('/')}/v1/jobs/{job.id}"
    subtitles: dict[str, str] = {}
    if job.state == JobState.SUCCEEDED:
        known = {f.value for f in SubtitleFormat}
        subtitles = {fmt: f"{base}/subtitles.{fmt}" for fmt in sorted(job.result) if fmt in known}
    is_upload = upload_key(job.source) is not None
    return JobResponse(
        id=job.id,
        state=job.state,
        priority=job.priority,
        stage=job.progress.stage if job.progress else None,
        progress=job.progress.fraction if job.progress else None,
        position=position.position if position else None,
        eta_start_seconds=round(position.eta_start_s, 1) if position else None,
        eta_seconds=round(position.eta_s, 1) if position else None,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        error=JobErrorInfo(
            code=job.error.code,
            message=job.error.message,
            retryable=job.error.retryable,
            stage=job.error.stage,
        )
        if job.error
        else None,
        options=job.options,
        source=JobSourceInfo(kind="upload")
        if is_upload
        else JobSourceInfo(kind="url", url=job.source),
        idempotency_key=job.idempotency_key,
        timings=JobTimings(
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            not_before=job.not_before,
            audio_duration_s=job.audio_duration_s,
            compute_seconds=job.compute_seconds,
        ),
        links=JobLinks(job=base, events=f"{base}/events", subtitles=subtitles),
    )


def _position(state: ApiState, job: Job) -> Position | None:
    if job.state != JobState.QUEUED:
        return None
    return state.store.position(job.id, live_slots(state), owner=job.owner)


def live_workers(state: ApiState) -> int:
    """The injected replica count, 0 if the probe fails (ETAs then assume one replica)."""
    try:
        return max(0, int(state.active_workers()))
    except Exception:  # a broken probe must not fail job reads
        log.warning("active_workers probe failed", exc_info=True)
        return 0


def live_slots(state: ApiState) -> int:
    """Jobs the running model replicas process at once (ETAs divide the work by this).

    With no replica running (scaled to zero) the first one to start is counted: the queue
    waits for it, not forever.
    """
    serve = state.settings.serve
    return min(serve.worker_slots, max(1, live_workers(state)) * serve.jobs_per_replica)


# ----------------------------------------------------------------------- submit
def _effective_priority(requested: int | None, key: ApiKey, state: ApiState) -> int:
    """The priority to queue at: refused above the key's cap, default lowered to it."""
    if requested is None:
        return min(state.settings.queue.default_priority, key.max_priority)
    if requested > key.max_priority:
        raise Forbidden(
            f"priority {requested} is above this API key's maximum of {key.max_priority}",
            code="priority_not_allowed",
        )
    return requested


@router.post(
    "",
    status_code=202,
    response_model=JobResponse,
    summary="Submit a job (upload or URL)",
    responses={
        202: {
            "description": "Queued (or the job an earlier request with the same "
            "Idempotency-Key created).",
            "headers": {
                "Location": {"description": "The job's URL.", "schema": {"type": "string"}}
            },
        },
        **error_responses(400, 401, 403, 409, 411, 413, 415, 422, 429, 503),
    },
    openapi_extra=SUBMIT_REQUEST_BODY,
)
async def submit_job(
    request: Request,
    response: Response,
    key: Key,
    state: State,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Resubmitting with the same key returns the same job; a different "
            "body with the same key is refused (409 idempotency_conflict).",
        ),
    ] = None,
) -> JobResponse:
    """Queue a transcription job.

    Send ``application/json`` (``{"url": ..., "priority": ..., "options": {...}}``) for
    media the service downloads, or ``multipart/form-data`` with a ``file`` part plus the
    option fields (``language``, ``task``, ``translate_to``, ``diarize``,
    ``num_speakers``, ``min_speakers``, ``max_speakers``, ``formats``, ``prompt``) and
    ``priority`` as form fields. Answers 202 with the job, its queue position and ETA.
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    settings = state.settings
    if content_type == "application/json":
        body = await read_json_submission(request)
        priority = _effective_priority(body.priority, key, state)
        validate_options(body.options)
        await run_in_threadpool(check_url, body.url, settings.media)
        job = await run_in_threadpool(
            state.store.submit,
            key.owner,
            body.url,
            body.options,
            priority=priority,
            idempotency_key=idempotency_key,
        )
    elif content_type == "multipart/form-data":
        job = await _submit_upload(request, key, state, idempotency_key)
    else:
        raise StarletteHTTPException(
            415, "send application/json with a url, or multipart/form-data with a file"
        )
    view = job_view(job, request, await run_in_threadpool(_position, state, job))
    response.headers["Location"] = view.links.job
    return view


async def _submit_upload(
    request: Request, key: ApiKey, state: ApiState, idempotency_key: str | None
) -> Job:
    def check_early(form: FormSubmission) -> None:
        _effective_priority(form.priority, key, state)
        validate_options(form.options)

    form, upload = await read_upload_submission(
        request,
        state.storage,
        max_bytes=state.settings.media.max_upload_bytes,
        check_early=check_early,
    )
    try:
        priority = _effective_priority(form.priority, key, state)
        validate_options(form.options)
        info = await run_in_threadpool(_probe_upload, state, upload.key)
        job = await run_in_threadpool(
            state.store.submit,
            key.owner,
            upload.source,
            form.options,
            priority=priority,
            idempotency_key=idempotency_key,
            audio_duration_s=info.duration_s,
            content_id=upload.content_id,
        )
    except BaseException:
        await run_in_threadpool(upload.discard, state.storage)
        raise
    if job.source != upload.source:  # an idempotent replay: the job has its own copy
        await run_in_threadpool(upload.discard, state.storage)
    return job


def _probe_upload(state: ApiState, key: str) -> MediaInfo:
    """Read the stored upload's container header (not its audio).

    Media that cannot be decoded, has no audio or is too long is refused now (400) instead
    of failing in a worker later, and the declared duration makes the ETA real.
    """
    with state.storage.open(key) as f:
        return probe_media(f, state.settings.media)


# ----------------------------------------------------------------------- read
@router.get(
    "",
    response_model=JobListResponse,
    summary="List your jobs",
    responses=error_responses(400, 401, 422, 503),
)
def list_jobs(
    request: Request,
    key: Key,
    state: State,
    job_state: Annotated[
        list[JobState] | None,
        Query(alias="state", description="Only jobs in these states (repeatable)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the previous page."),
    ] = None,
) -> JobListResponse:
    """The caller's jobs, newest first, paginated (``limit`` + ``cursor``)."""
    page = state.store.list_jobs(
        key.owner, states=set(job_state) if job_state else None, limit=limit, cursor=cursor
    )
    return JobListResponse(
        jobs=[job_view(job, request) for job in page.jobs], next_cursor=page.next_cursor
    )


@router.get(
    "/{job_id}",
    response_model=JobResponse,
    summary="Get a job",
    responses=error_responses(401, 404, 422, 503),
)
def get_job(request: Request, job_id: UUID, key: Key, state: State) -> JobResponse:
    """State, stage, progress, queue position and ETA (queued), attempts, error, links."""
    job = state.store.get(job_id, owner=key.owner)
    return job_view(job, request, _position(state, job))


@router.get(
    "/{job_id}/events",
    response_model=JobEventsResponse,
    summary="A job's timeline",
    responses=error_responses(401, 404, 422, 503),
)
def job_events(job_id: UUID, key: Key, state: State) -> JobEventsResponse:
    """Every recorded step of the job (submitted, claimed, stages, retries...), oldest first."""
    events = state.store.list_events(job_id, owner=key.owner)
    return JobEventsResponse(
        job_id=job_id,
        events=[
            JobEventOut(
                id=e.id,
                at=e.at,
                kind=e.kind,
                attempt=e.attempt,
                worker_instance=e.worker_instance,
                detail=e.detail,
            )
            for e in events
        ],
    )


@router.get(
    "/{job_id}/subtitles.{fmt}",
    response_class=Response,
    summary="Download subtitles",
    responses={
        200: {
            "description": "The artifact.",
            "content": {
                "application/x-subrip": {"schema": {"type": "string"}},
                "text/vtt": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        **error_responses(401, 404, 409, 422, 503),
    },
)
def get_subtitles(job_id: UUID, fmt: SubtitleFormat, key: Key, state: State) -> Response:
    """409 ``not_ready`` until the job succeeded; 404 if this format was not requested."""
    job = state.store.get(job_id, owner=key.owner)
    if job.state != JobState.SUCCEEDED:
        raise Conflict(
            f"job {job_id} is {job.state.value}; subtitles are available once it has succeeded",
            code="not_ready",
        )
    ref = job.result.get(fmt.value)
    if ref is None:
        raise NotFound(f"job {job_id} did not produce {fmt.value} subtitles")
    data = state.storage.get_bytes(ref)
    return Response(
        content=data,
        media_type=CONTENT_TYPES[fmt],
        headers={"Content-Disposition": f'inline; filename="{job_id}.{fmt.value}"'},
    )


# ----------------------------------------------------------------------- cancel / purge
@router.delete(
    "/{job_id}",
    response_model=JobResponse,
    summary="Cancel a job, or delete it with its media and results",
    responses=error_responses(401, 404, 409, 422, 503),
)
def delete_job(
    request: Request,
    job_id: UUID,
    key: Key,
    state: State,
    purge: Annotated[
        bool,
        Query(description="Also delete the job, its media and its results (any state)."),
    ] = False,
) -> JobResponse:
    """Cancel a queued or running job (409 ``invalid_state`` once it finished).

    With ``purge=true`` the job is cancelled if still active, then its media, results and
    row are deleted; the answer is its last snapshot.
    """
    store = state.store
    if not purge:
        return job_view(store.cancel(job_id, owner=key.owner), request)
    job = store.get(job_id, owner=key.owner)
    if not job.state.is_terminal:
        with contextlib.suppress(InvalidState):  # finished meanwhile: delete it all the same
            store.cancel(job_id, owner=key.owner)
    delete_artifacts(state.storage, job)
    last = store.delete(job_id, owner=key.owner)
    # A worker that was writing results when the job was cancelled may have added some.
    delete_artifacts(state.storage, last, quiet=True)
    return job_view(last, request)


def delete_artifacts(storage: Storage, job: Job, *, quiet: bool = False) -> int:
    """Remove a job's upload and results; returns how many objects went away."""
    prefixes = [f"{RESULTS_PREFIX}/{job.id}", f"{MEDIA_PREFIX}/{job.id}"]
    source_key = upload_key(job.source)
    if source_key is not None and "/" in source_key:
        prefixes.append(source_key.rsplit("/", 1)[0])
    removed = 0
    try:
        for prefix in prefixes:
            removed += storage.delete_prefix(prefix)
        for ref in job.result.values():
            if not any(ref.startswith(p + "/") for p in prefixes):
                removed += int(storage.delete(ref))
    except (AisubsError, OSError):
        if not quiet:
            raise
        log.warning("could not delete all artifacts of job %s", job.id, exc_info=True)
    return removed
