"""``/v1/queue/status``: how busy the service is (the seed's 2.4, with more detail)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from aisubs.queue.models import ApiKey
from serve_app.api import ApiState
from serve_app.auth import api_state, require_api_key
from serve_app.http_errors import error_responses
from serve_app.routes.jobs import live_slots, live_workers
from serve_app.schemas import QueueStatusResponse

router = APIRouter(prefix="/v1/queue", tags=["queue"])


def estimated_wait_s(
    queued: int, running: int, slots: int, speed: float, typical_audio_s: float
) -> float:
    """Seconds before a job submitted now would start, if it queued behind everything.

    The work ahead is every queued job plus half of each running one (on average half
    done), each assumed ``typical_audio_s`` long, processed at ``speed`` compute seconds
    per audio second on ``max(1, slots)`` jobs in parallel (like the store's ETAs).
    """
    work = (queued + running / 2) * typical_audio_s * speed
    return work / max(1, slots)


@router.get(
    "/status",
    response_model=QueueStatusResponse,
    summary="Queue depth, workers and estimated wait",
    responses=error_responses(401, 503),
)
def queue_status(
    key: Annotated[ApiKey, Depends(require_api_key)],
    state: Annotated[ApiState, Depends(api_state)],
) -> QueueStatusResponse:
    stats = state.store.stats()
    workers = live_workers(state)
    wait = estimated_wait_s(
        stats.queued,
        stats.running,
        live_slots(state),
        stats.compute_per_audio_second,
        state.settings.queue.eta_default_audio_seconds,
    )
    return QueueStatusResponse(
        queue_depth=stats.queued,
        depth_by_priority={str(p): n for p, n in stats.depth_by_priority.items()},
        active_workers=workers,
        processing_jobs=stats.running,
        estimated_wait_minutes=round(wait / 60, 2),
        oldest_wait_s=round(stats.oldest_wait_s, 3),
        compute_per_audio_second=stats.compute_per_audio_second,
        completed_last_hour=stats.completed_last_hour,
        failed_last_hour=stats.failed_last_hour,
    )
