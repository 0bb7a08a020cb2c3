"""What the service measures, declared once, and the small interface that records it.

Domain code (the job executor, the dispatcher, the model shells) records through
:class:`JobMetrics`, which speaks in domain terms ("a job attempt failed in asr with
undecodable_media") and writes to a :class:`MetricsRecorder`. The Ray shells inject a
recorder over ``ray.util.metrics`` (``deployments/metrics.py``): Ray's metrics agent then
exports every series with a ``ray_`` prefix, counters with a ``_total`` suffix and
histograms as ``_bucket``/``_sum``/``_count``, next to Ray Serve's own ``ray_serve_*``
series. Tests inject :class:`MemoryRecorder`. Nothing here imports Ray.

Queue-level gauges (depth by priority, running jobs, replicas) are not events: they are read
from the store at scrape time by :mod:`aisubs.observability.queue_exporter`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["counter", "gauge", "histogram"]
RAY_PREFIX = "ray_"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its name as recorded (before Ray's prefix), kind, help and labels."""

    name: str
    kind: Kind
    description: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    def exported_names(self, prefix: str = RAY_PREFIX) -> tuple[str, ...]:
        """The series names a Prometheus scrape of Ray's metrics agent shows for it."""
        base = prefix + self.name
        if self.kind == "counter":
            return (base + "_total",)
        if self.kind == "histogram":
            return (base + "_bucket", base + "_sum", base + "_count")
        return (base,)


# Wait in the queue: seconds to hours (the alert fires on a 30 min average).
WAIT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)
# Whole attempts and single stages: a short clip takes seconds, a 4 h recording an hour.
DURATION_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# Real-time factor (stage seconds per audio second): Whisper small on an L4 is ~0.05.
RTF_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)

JOBS_CLAIMED = MetricSpec(
    "aisubs_jobs_claimed", "counter", "Jobs leased to a worker, by priority", ("priority",)
)
JOB_WAIT = MetricSpec(
    "aisubs_job_wait_seconds",
    "histogram",
    "Seconds a job waited in the queue (since submission, or since its retry became due) "
    "before a worker took it",
    ("priority",),
    WAIT_BUCKETS,
)
JOBS_COMPLETED = MetricSpec("aisubs_jobs_completed", "counter", "Jobs that succeeded")
JOBS_FAILED = MetricSpec(
    "aisubs_jobs_failed",
    "counter",
    "Failed job attempts by stage and error code; outcome=retrying (queued again) or failed",
    ("stage", "code", "outcome"),
)
JOBS_STOPPED = MetricSpec(
    "aisubs_jobs_stopped",
    "counter",
    "Attempts that stopped because the job was cancelled, deleted or its lease was lost",
    ("reason",),
)
JOB_PROCESSING = MetricSpec(
    "aisubs_job_processing_seconds",
    "histogram",
    "Wall seconds of one attempt, from lease to completion or failure",
    ("outcome",),
    DURATION_BUCKETS,
)
AUDIO_SECONDS = MetricSpec(
    "aisubs_audio_seconds_processed", "counter", "Seconds of audio in jobs that succeeded"
)
STAGE_SECONDS = MetricSpec(
    "aisubs_stage_seconds",
    "histogram",
    "Wall seconds of one pipeline stage of one job",
    ("stage",),
    DURATION_BUCKETS,
)
STAGE_RTF = MetricSpec(
    "aisubs_stage_rtf",
    "histogram",
    "Real-time factor of a pipeline stage: stage seconds per second of audio",
    ("stage",),
    RTF_BUCKETS,
)
MODEL_LOAD = MetricSpec(
    "aisubs_model_load_seconds",
    "gauge",
    "Seconds the replica took to load its model",
    ("deployment", "model"),
)
STAGE_IN_FLIGHT = MetricSpec(
    "aisubs_stage_requests_in_flight",
    "gauge",
    "Requests a model replica is working on now (utilisation = this / its slots)",
    ("deployment",),
)
GPU_MEMORY = MetricSpec(
    "aisubs_gpu_memory_bytes",
    "gauge",
    "GPU memory of a model replica: torch allocated/reserved, and used on the whole device",
    ("deployment", "kind"),
)

METRICS: tuple[MetricSpec, ...] = (
    JOBS_CLAIMED,
    JOB_WAIT,
    JOBS_COMPLETED,
    JOBS_FAILED,
    JOBS_STOPPED,
    JOB_PROCESSING,
    AUDIO_SECONDS,
    STAGE_SECONDS,
    STAGE_RTF,
    MODEL_LOAD,
    STAGE_IN_FLIGHT,
    GPU_MEMORY,
)
# Recorded only where a GPU is visible to the replica.
GPU_ONLY: frozenset[str] = frozenset({GPU_MEMORY.name})


class MetricsRecorder(Protocol):
    """Where measurements go; implementations must be cheap and never raise."""

    def record(self, spec: MetricSpec, value: float, labels: Mapping[str, str]) -> None:
        """Counter: add ``value``; gauge: set it; histogram: observe it."""


class NullRecorder:
    """Records nothing (the default where no metrics backend is wired in)."""

    def record(self, spec: MetricSpec, value: float, labels: Mapping[str, str]) -> None:
        return None


class MemoryRecorder:
    """Keeps every measurement in memory, for tests and for in-process inspection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = defaultdict(list)

    def record(self, spec: MetricSpec, value: float, labels: Mapping[str, str]) -> None:
        key = (spec.name, tuple(sorted(labels.items())))
        with self._lock:
            if spec.kind == "gauge":
                self.values[key] = [value]
            elif spec.kind == "counter":
                previous = self.values[key][0] if self.values[key] else 0.0
                self.values[key] = [previous + value]
            else:
                self.values[key].append(value)

    def get(self, spec: MetricSpec, **labels: str) -> list[float]:
        """Observations (histogram), or ``[value]`` (counter, gauge); [] if never recorded."""
        with self._lock:
            return list(self.values.get((spec.name, tuple(sorted(labels.items()))), []))

    def series(self, spec: MetricSpec) -> dict[tuple[tuple[str, str], ...], list[float]]:
        """Every label combination recorded for ``spec``."""
        with self._lock:
            return {k[1]: list(v) for k, v in self.values.items() if k[0] == spec.name}


class JobMetrics:
    """Domain-level recording: one method per thing that happens to a job or a replica."""

    def __init__(self, recorder: MetricsRecorder | None = None):
        self.recorder: MetricsRecorder = recorder or NullRecorder()

    def _record(self, spec: MetricSpec, value: float, **labels: str) -> None:
        missing = set(spec.labels) ^ set(labels)
        assert not missing, f"{spec.name}: labels {sorted(missing)} do not match {spec.labels}"
        try:
            self.recorder.record(spec, value, labels)
        except Exception:  # a metrics backend hiccup must never fail a job
            return

    def claimed(self, priority: int, wait_s: float) -> None:
        self._record(JOBS_CLAIMED, 1, priority=str(priority))
        self._record(JOB_WAIT, max(0.0, wait_s), priority=str(priority))

    def stage_finished(self, stage: str, seconds: float, audio_s: float | None) -> None:
        self._record(STAGE_SECONDS, seconds, stage=stage)
        if audio_s:
            self._record(STAGE_RTF, seconds / audio_s, stage=stage)

    def succeeded(self, seconds: float, audio_s: float) -> None:
        self._record(JOBS_COMPLETED, 1)
        self._record(JOB_PROCESSING, seconds, outcome="succeeded")
        self._record(AUDIO_SECONDS, audio_s)

    def failed(self, stage: str, code: str, final: bool, seconds: float) -> None:
        outcome = "failed" if final else "retrying"
        self._record(JOBS_FAILED, 1, stage=stage, code=code, outcome=outcome)
        self._record(JOB_PROCESSING, seconds, outcome=outcome)

    def stopped(self, reason: str, seconds: float) -> None:
        self._record(JOBS_STOPPED, 1, reason=reason)
        self._record(JOB_PROCESSING, seconds, outcome="stopped")

    def model_loaded(self, deployment: str, model: str, seconds: float) -> None:
        self._record(MODEL_LOAD, seconds, deployment=deployment, model=model)

    def in_flight(self, deployment: str, requests: int) -> None:
        self._record(STAGE_IN_FLIGHT, requests, deployment=deployment)

    def gpu_memory(self, deployment: str, facts: Mapping[str, Any]) -> None:
        """Record the GPU memory in ``facts`` (``deployments.common.gpu_facts``) if visible."""
        if not facts.get("gpu_visible"):
            return
        for kind, key in (
            ("allocated", "torch_allocated_mb"),
            ("reserved", "torch_reserved_mb"),
            ("device_used", "device_used_mb"),
            ("device_total", "device_total_mb"),
        ):
            if key in facts:
                self._record(
                    GPU_MEMORY, float(facts[key]) * 2**20, deployment=deployment, kind=kind
                )
