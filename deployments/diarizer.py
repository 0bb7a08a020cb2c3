"""Diarizer deployment: warm speaker-diarization models per replica, GPU-fractional."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from ray import serve

from aisubs.jobwatch import watch_lease
from aisubs.settings import Settings
from aisubs.transcript import SpeakerTurn
from deployments.common import fetch_audio, gpu_facts, lower_priority, process_rss_mb
from deployments.metrics import InFlight, sample_gpu_memory, setup_replica, stage_context

log = logging.getLogger(__name__)


@serve.deployment(name="Diarizer", max_ongoing_requests=2, health_check_period_s=5)
class Diarizer:
    def __init__(self, settings: Settings):
        from aisubs.diarization import load_diarizer
        from aisubs.queue import open_store

        self.settings = settings
        self.metrics = setup_replica(settings)
        self.niceness = lower_priority(settings.serve.model_niceness)
        started = time.perf_counter()
        self.diarizer = load_diarizer(settings.diarization)
        self.load_seconds = time.perf_counter() - started
        self.metrics.model_loaded("Diarizer", settings.diarization.backend, self.load_seconds)
        self.in_flight = InFlight(self.metrics, "Diarizer")
        self.instance = f"Diarizer-{serve.get_replica_context().replica_id.unique_id}"
        self._gpu_sampler = asyncio.get_event_loop().create_task(
            sample_gpu_memory(self.metrics, "Diarizer", settings.observability.gpu_sample_s)
        )
        self.store = open_store(settings)
        log.info("Diarizer ready (%s) in %.1f s", settings.diarization.backend, self.load_seconds)

    async def diarize(
        self, shared: Any, hints: dict[str, int | None], lease: Any = None
    ) -> list[SpeakerTurn]:
        with self.in_flight, stage_context(lease, self.instance):
            audio = await fetch_audio(shared)
            log.info("diarizing %.1f s of audio", len(audio) / 16000)
            should_cancel = watch_lease(self.store, lease, self.settings.serve.cancel_check_s)
            return await asyncio.to_thread(
                lambda: self.diarizer.diarize(audio, should_cancel=should_cancel, **hints)
            )

    def __del__(self) -> None:
        # Serve calls this when the replica shuts down: release the store's connections.
        with contextlib.suppress(Exception):
            self._gpu_sampler.cancel()
        with contextlib.suppress(Exception):
            self.store.close()

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.settings.diarization.backend,
            "load_seconds": self.load_seconds,
            "pid": os.getpid(),
            "niceness": self.niceness,
            "rss_mb": process_rss_mb(),
            **gpu_facts(),
        }
