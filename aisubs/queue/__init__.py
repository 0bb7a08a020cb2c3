"""Durable job queue: one :class:`JobStore` interface, SQLite and PostgreSQL implementations.

Open one with :func:`aisubs.queue.factory.open_store` (``settings.store.backend`` chooses).
"""

from aisubs.queue.clock import Clock, ManualClock, system_clock
from aisubs.queue.factory import open_store
from aisubs.queue.models import (
    ApiKey,
    EventKind,
    Job,
    JobError,
    JobEvent,
    JobOptions,
    JobPage,
    JobState,
    Position,
    Progress,
    QueueMetricsSample,
    QueueStats,
)
from aisubs.queue.store import JobStore

__all__ = [
    "ApiKey",
    "Clock",
    "EventKind",
    "Job",
    "JobError",
    "JobEvent",
    "JobOptions",
    "JobPage",
    "JobState",
    "JobStore",
    "ManualClock",
    "Position",
    "Progress",
    "QueueMetricsSample",
    "QueueStats",
    "open_store",
    "system_clock",
]
