"""Handing queued jobs to workers in queue order, as fast as worker slots free up.

The dispatcher keeps no state of its own: how many jobs are in flight is read from the
store (``running`` rows), so a restarted dispatcher carries on exactly where the old one
stopped, and jobs claimed by a dispatcher that died are reaped when their leases expire.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from aisubs.observability.metrics import JobMetrics
from aisubs.queue.models import Job
from aisubs.queue.store import JobStore
from aisubs.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DispatchReport:
    requeued: int = 0
    claimed: int = 0
    running: int = 0
    free_slots: int = 0
    sampled: bool = False
    jobs: list[Job] = field(default_factory=list)


@dataclass
class Dispatcher:
    """One dispatch step at a time; the Ray deployment calls :meth:`step` in a loop and
    hands the claimed jobs (``report.jobs``) to the runner."""

    settings: Settings
    store: JobStore
    worker_instance: str = "dispatcher"
    active_workers: Callable[[], int] = lambda: 0
    clock: Callable[[], float] = time.monotonic
    metrics: JobMetrics = field(default_factory=JobMetrics)
    _next_sample: float = field(default=0.0, init=False)

    def step(self) -> DispatchReport:
        report = DispatchReport()
        report.requeued = self.store.requeue_expired()
        stats = self.store.stats()
        report.running = stats.running
        report.free_slots = max(0, self.settings.serve.worker_slots - stats.running)
        if report.free_slots and stats.queued:
            jobs = self.store.claim(
                self.worker_instance,
                limit=report.free_slots,
                lease_seconds=self.settings.queue.lease_seconds,
            )
            report.jobs = jobs
            report.claimed = len(jobs)
            for job in jobs:
                self.metrics.claimed(job.priority, queue_wait_s(job))
        now = self.clock()
        if now >= self._next_sample:
            self._next_sample = now + self.settings.queue.metrics_sample_seconds
            # The jobs claimed above are leased to us: a failed sample must not lose them
            # (they would sit "running" until their leases ran out).
            try:
                self.sample_metrics()
                report.sampled = True
            except Exception:
                log.warning("queue metrics sample failed; retrying next step", exc_info=True)
                self._next_sample = now + min(5.0, self.settings.queue.metrics_sample_seconds)
        return report

    def sample_metrics(self) -> None:
        """Write a ``queue_metrics`` row and drop rows older than the retention.

        The cut-off is measured from the new sample's timestamp, i.e. the store's clock,
        so retention follows the same time as everything else the store records.
        """
        sample = self.store.write_queue_metrics_sample(self.active_workers())
        keep = timedelta(days=self.settings.queue.metrics_retention_days)
        self.store.prune_queue_metrics(sample.timestamp - keep)


def queue_wait_s(job: Job) -> float:
    """Seconds a just-claimed job waited: since submission, or since its retry became due."""
    if job.started_at is None:
        return 0.0
    ready = max(job.created_at, job.not_before)
    return max(0.0, (job.started_at - ready).total_seconds())
