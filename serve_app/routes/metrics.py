"""``GET /metrics``: queue and replica gauges in Prometheus text format, read at scrape time.

No API key: Prometheus scrapes it, and it shows counts only (no owners, no job ids).
Operators who do not want it on the public port turn it off with
``AISUBS_OBSERVABILITY__METRICS_ROUTE=false`` and rely on Ray's metrics agent alone.
Per-event metrics (completions, failures, wait and processing histograms, model load
time, GPU memory) are recorded by the replicas through Ray's metrics agent instead.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from aisubs.observability.queue_exporter import QueueCollector, render
from serve_app.api import ApiState
from serve_app.auth import api_state

router = APIRouter(tags=["metrics"])


def collector(state: ApiState) -> QueueCollector:
    return QueueCollector(
        stats=lambda: state.store.stats(),
        replicas=state.replica_counts,
        slots_per_replica=state.settings.serve.jobs_per_replica,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(state: Annotated[ApiState, Depends(api_state)]) -> Response:
    body = await asyncio.to_thread(render, collector(state))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
