"""``GET /metrics``: queue and replica gauges in Prometheus text format.

No API key: Prometheus scrapes it, and it shows counts only (no owners, no job ids). Set
``AISUBS_OBSERVABILITY__METRICS_TOKEN`` to require ``Authorization: Bearer <token>``, or
turn the route off with ``AISUBS_OBSERVABILITY__METRICS_ROUTE=false`` and rely on Ray's
metrics agent alone. The queue statistics are shared by all scrapes for
``metrics_cache_s`` seconds and fetched by one store call at a time
(:mod:`aisubs.observability.stats_cache`), so a scrape flood never holds more than one store
connection. Per-event metrics (completions, failures, wait and processing histograms, model
load time, GPU memory) are recorded by the replicas through Ray's metrics agent instead.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from aisubs.errors import AisubsError, Unauthorized
from aisubs.observability.queue_exporter import QueueCollector, render
from aisubs.queue.models import QueueStats
from serve_app.api import ApiState
from serve_app.auth import api_state

router = APIRouter(tags=["metrics"])


def _check_token(request: Request, state: ApiState) -> None:
    token = state.settings.observability.metrics_token
    if token is None:
        return
    sent = request.headers.get("authorization", "")
    scheme, _, value = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), token):
        raise Unauthorized("this /metrics needs 'Authorization: Bearer <metrics token>'")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, state: Annotated[ApiState, Depends(api_state)]) -> Response:
    _check_token(request, state)
    stats: QueueStats | AisubsError
    try:
        stats = await state.queue_stats.get()
    except AisubsError as exc:  # the collector reports aisubs_store_up 0
        stats = exc

    try:
        replicas = await state.replica_snapshot.get()
    except Exception:  # the Serve controller is busy: the collector skips these series
        replicas = {}

    def read() -> QueueStats:
        if isinstance(stats, AisubsError):
            raise stats
        return stats

    collector = QueueCollector(
        stats=read,
        replicas=lambda: replicas,
        slots_per_replica=state.settings.serve.jobs_per_replica,
    )
    return Response(render(collector), media_type=CONTENT_TYPE_LATEST)
