"""Observability: metric definitions and recording, queue gauges, structured job logs.

No Ray in here: the Ray shells inject a recorder over ``ray.util.metrics``
(``deployments/metrics.py``) and call :func:`configure_logging` in each replica.
"""

from aisubs.observability.logs import (
    JobContextFilter,
    JsonFormatter,
    configure_logging,
    current_job_context,
    job_context,
)
from aisubs.observability.metrics import (
    METRICS,
    JobMetrics,
    MemoryRecorder,
    MetricSpec,
    MetricsRecorder,
    NullRecorder,
)

__all__ = [
    "METRICS",
    "JobContextFilter",
    "JobMetrics",
    "JsonFormatter",
    "MemoryRecorder",
    "MetricSpec",
    "MetricsRecorder",
    "NullRecorder",
    "configure_logging",
    "current_job_context",
    "job_context",
]
