"""The Ray side of metrics: a recorder over ``ray.util.metrics``, plus replica helpers.

Ray's metrics agent on each node exports what the replicas record here, next to Ray
Serve's own ``ray_serve_*`` series, with a ``ray_`` prefix (see
:mod:`aisubs.observability.metrics` for the names). Metric objects are created lazily, once
per process, the first time a spec is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from ray.util import metrics as ray_metrics

from aisubs.observability.logs import configure_logging, job_context
from aisubs.observability.metrics import JobMetrics, MetricSpec
from aisubs.settings import Settings

log = logging.getLogger(__name__)


class RayRecorder:
    """:class:`aisubs.observability.metrics.MetricsRecorder` over ``ray.util.metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, Any] = {}

    def _metric(self, spec: MetricSpec) -> Any:
        with self._lock:
            metric = self._metrics.get(spec.name)
            if metric is None:
                if spec.kind == "counter":
                    metric = ray_metrics.Counter(
                        spec.name, description=spec.description, tag_keys=spec.labels
                    )
                elif spec.kind == "gauge":
                    metric = ray_metrics.Gauge(
                        spec.name, description=spec.description, tag_keys=spec.labels
                    )
                else:
                    metric = ray_metrics.Histogram(
                        spec.name,
                        description=spec.description,
                        boundaries=list(spec.buckets),
                        tag_keys=spec.labels,
                    )
                self._metrics[spec.name] = metric
            return metric

    def record(self, spec: MetricSpec, value: float, labels: Mapping[str, str]) -> None:
        metric = self._metric(spec)
        tags = dict(labels) or None
        if spec.kind == "counter":
            metric.inc(value, tags=tags)
        elif spec.kind == "gauge":
            metric.set(value, tags=tags)
        else:
            metric.observe(value, tags=tags)


_recorder: RayRecorder | None = None


def replica_metrics() -> JobMetrics:
    """Domain metrics for this replica process (one shared Ray recorder per process)."""
    global _recorder
    if _recorder is None:
        _recorder = RayRecorder()
    return JobMetrics(_recorder)


def setup_replica(settings: Settings) -> JobMetrics:
    """What every replica does first: structured logs as configured, and its metrics."""
    configure_logging(settings.observability)
    return replica_metrics()


@contextlib.contextmanager
def stage_context(lease: Any, worker_instance: str) -> Iterator[None]:
    """Stamp this replica's log lines (and its model library's) with the job it serves."""
    if lease is None:
        yield
        return
    with job_context(lease.job_id, getattr(lease, "attempt", 0), worker_instance):
        yield


class InFlight:
    """Counts a model replica's requests in progress into the utilisation gauge."""

    def __init__(self, metrics: JobMetrics, deployment: str):
        self.metrics = metrics
        self.deployment = deployment
        self.count = 0
        metrics.in_flight(deployment, 0)

    def __enter__(self) -> InFlight:
        self.count += 1
        self.metrics.in_flight(self.deployment, self.count)
        return self

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        self.metrics.in_flight(self.deployment, self.count)


async def sample_gpu_memory(metrics: JobMetrics, deployment: str, every_s: float) -> None:
    """Refresh the GPU-memory gauge while the replica lives (no-op without a visible GPU)."""
    from deployments.common import gpu_facts

    while True:
        try:
            facts = await asyncio.to_thread(gpu_facts)
        except Exception as exc:  # a flaky driver query must not kill the replica
            log.warning("GPU memory sample failed: %s", exc)
        else:
            if not facts.get("gpu_visible"):
                return
            metrics.gpu_memory(deployment, facts)
        await asyncio.sleep(every_s)
