"""Queue and replica gauges read at scrape time, in Prometheus text format.

Why at scrape time: the queue lives in the store, not in any process. Reading it when
Prometheus asks means the numbers are right even while the dispatcher is down, which is
exactly when the "backlog but no worker" and "job running past its lease" alerts matter.
The ingress serves this on ``GET /metrics`` (see ``serve_app/routes/metrics.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aisubs.errors import AisubsError
from aisubs.queue.models import MAX_PRIORITY, MIN_PRIORITY, QueueStats

log = logging.getLogger(__name__)

# deployment -> {"running": n, "pending": n}
ReplicaCounts = Mapping[str, Mapping[str, int]]

# Every gauge this module can export (for the dashboard check and the docs).
QUEUE_GAUGES: tuple[str, ...] = (
    "aisubs_store_up",
    "aisubs_queue_depth",
    "aisubs_jobs_running",
    "aisubs_queue_oldest_wait_seconds",
    "aisubs_queue_lease_overdue_seconds",
    "aisubs_jobs_completed_last_hour",
    "aisubs_jobs_failed_last_hour",
    "aisubs_queue_error_rate",
    "aisubs_compute_per_audio_second",
    "aisubs_worker_replicas",
    "aisubs_worker_slots",
)


class QueueCollector(Collector):
    """A prometheus_client collector over ``stats()`` (the store) and ``replicas()``.

    ``slots_per_replica`` is how many jobs one model replica takes at once, so that
    ``aisubs_worker_slots`` (running replicas x slots) is the denominator of utilisation.
    """

    def __init__(
        self,
        stats: Callable[[], QueueStats],
        replicas: Callable[[], ReplicaCounts],
        slots_per_replica: int,
    ):
        self.stats = stats
        self.replicas = replicas
        self.slots_per_replica = slots_per_replica

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("aisubs_store_up", "1 when the job store answered this scrape")
        try:
            stats = self.stats()
        except AisubsError as exc:
            log.warning("metrics scrape: store unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield from self._queue(stats)
        yield from self._replicas()

    def _queue(self, stats: QueueStats) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "aisubs_queue_depth", "Jobs waiting in the queue, by priority", labels=["priority"]
        )
        # Every priority, zeros included, so sums and alerts never see a missing series.
        for priority in range(MIN_PRIORITY, MAX_PRIORITY + 1):
            depth.add_metric([str(priority)], stats.depth_by_priority.get(priority, 0))
        yield depth
        yield GaugeMetricFamily("aisubs_jobs_running", "Jobs leased to a worker now", stats.running)
        yield GaugeMetricFamily(
            "aisubs_queue_oldest_wait_seconds",
            "Age of the oldest queued job",
            stats.oldest_wait_s,
        )
        yield GaugeMetricFamily(
            "aisubs_queue_lease_overdue_seconds",
            "How far past its lease the most overdue running job is (0 when none)",
            stats.lease_overdue_s,
        )
        yield GaugeMetricFamily(
            "aisubs_jobs_completed_last_hour",
            "Jobs that succeeded in the last hour",
            stats.completed_last_hour,
        )
        yield GaugeMetricFamily(
            "aisubs_jobs_failed_last_hour",
            "Jobs that failed for good in the last hour",
            stats.failed_last_hour,
        )
        rate = GaugeMetricFamily(
            "aisubs_queue_error_rate",
            "Failed attempts in the last hour (retried or final, expired leases included) "
            "per attempt started, by stage; their sum is the worker error rate",
            labels=["stage"],
        )
        for stage, value in stats.error_rate_by_stage.items():
            rate.add_metric([stage], value)
        yield rate
        yield GaugeMetricFamily(
            "aisubs_compute_per_audio_second",
            "Measured compute seconds per audio second over recent successes (ETA basis)",
            stats.compute_per_audio_second,
        )

    def _replicas(self) -> Iterator[Metric]:
        try:
            counts = self.replicas()
        except Exception as exc:  # the Serve controller is busy: skip these series
            log.warning("metrics scrape: replica counts unavailable: %s", exc)
            return
        replicas = GaugeMetricFamily(
            "aisubs_worker_replicas",
            "Model replicas by deployment and state (running, or pending: starting/recovering)",
            labels=["deployment", "state"],
        )
        slots = GaugeMetricFamily(
            "aisubs_worker_slots",
            "Jobs the running replicas of a deployment can take at once",
            labels=["deployment"],
        )
        for deployment, states in sorted(counts.items()):
            for state in ("running", "pending"):
                replicas.add_metric([deployment, state], states.get(state, 0))
            slots.add_metric([deployment], states.get("running", 0) * self.slots_per_replica)
        yield replicas
        yield slots


def render(collector: Collector) -> bytes:
    """One scrape in Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return bytes(generate_latest(registry))
