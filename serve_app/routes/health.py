"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it can accept jobs).

``/healthz`` touches nothing, so a slow database never gets a healthy replica restarted.
``/readyz`` makes one cheap store query and asks the workers' model status; it answers
503 when the store is unreachable or the models cannot start, so a load balancer stops
sending submissions to a replica that would refuse them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from aisubs.errors import StoreUnavailable
from serve_app.api import ApiState
from serve_app.auth import api_state
from serve_app.routes.jobs import live_workers
from serve_app.schemas import HealthResponse, ReadinessResponse, StoreHealth

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, summary="Liveness")
async def healthz() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/readyz",
    response_model=ReadinessResponse,
    summary="Readiness",
    responses={503: {"model": ReadinessResponse, "description": "Not ready (same body)."}},
)
def readyz(state: Annotated[ApiState, Depends(api_state)]) -> JSONResponse:
    store = _check_store(state)
    models = _model_status(state)
    ready = store.ok and models_can_start(models)
    body = ReadinessResponse(
        ready=ready,
        store=store,
        models=models,
        gpu_visible=state.gpu_visible,
        active_workers=live_workers(state),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


def _check_store(state: ApiState) -> StoreHealth:
    # Details (host names, ports) go to the log, not to this unauthenticated endpoint.
    try:
        state.store.compute_per_audio_second()
    except StoreUnavailable as exc:
        log.warning("readiness: job store unavailable: %s", exc)
        return StoreHealth(ok=False, detail="job store unreachable")
    except Exception:
        log.exception("readiness: job store check failed")
        return StoreHealth(ok=False, detail="job store check failed")
    return StoreHealth(ok=True)


def models_can_start(models: Mapping[str, Any]) -> bool:
    """False when the model report says the models can neither run nor start.

    Understood shapes: ``{"status": "unavailable", ...}`` for the whole set, or one entry
    per model deployment with ``"can_start": false``.
    """
    if models.get("status") == "unavailable":
        return False
    return not any(
        isinstance(entry, Mapping) and entry.get("can_start") is False for entry in models.values()
    )


def _model_status(state: ApiState) -> dict[str, Any]:
    try:
        return dict(state.models_ready())
    except Exception:
        log.exception("readiness: model status probe failed")
        return {"status": "unknown", "detail": "model status probe failed"}
