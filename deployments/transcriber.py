"""Transcriber deployment: a warm Whisper model per replica, GPU-fractional.

The model loads once in ``__init__``; every request reuses it. Inference runs in a worker
thread so the replica's event loop keeps answering health checks. Between chunks the
engine asks a :class:`aisubs.jobwatch.LeaseWatch` whether the job is still ours, so a
cancelled job stops within seconds instead of running to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from ray import serve

from aisubs.asr.base import ASROptions
from aisubs.jobwatch import report_progress, watch_lease
from aisubs.pipeline import transcription_stage
from aisubs.settings import Settings
from aisubs.transcript import Transcript
from deployments.common import fetch_audio, gpu_facts, lower_priority, process_rss_mb
from deployments.metrics import InFlight, sample_gpu_memory, setup_replica, stage_context

log = logging.getLogger(__name__)


@serve.deployment(name="Transcriber", max_ongoing_requests=2, health_check_period_s=5)
class Transcriber:
    def __init__(self, settings: Settings):
        from aisubs.asr import load_asr_engine
        from aisubs.queue import open_store

        self.settings = settings
        self.metrics = setup_replica(settings)
        self.niceness = lower_priority(settings.serve.model_niceness)
        started = time.perf_counter()
        self.engine = load_asr_engine(settings.asr)
        self.load_seconds = time.perf_counter() - started
        self.metrics.model_loaded("Transcriber", self.engine.model_name, self.load_seconds)
        self.in_flight = InFlight(self.metrics, "Transcriber")
        self.instance = f"Transcriber-{serve.get_replica_context().replica_id.unique_id}"
        self._gpu_sampler = asyncio.get_event_loop().create_task(
            sample_gpu_memory(self.metrics, "Transcriber", settings.observability.gpu_sample_s)
        )
        self.store = open_store(settings)
        log.info(
            "Transcriber ready: %s model %s loaded in %.1f s",
            self.engine.name,
            self.engine.model_name,
            self.load_seconds,
        )

    async def transcribe(self, shared: Any, options: ASROptions, lease: Any = None) -> Transcript:
        with self.in_flight, stage_context(lease, self.instance):
            audio = await fetch_audio(shared)
            log.info("transcribing %.1f s of audio (%s)", len(audio) / 16000, options.task)
            should_cancel = watch_lease(self.store, lease, self.settings.serve.cancel_check_s)
            progress = report_progress(self.store, lease, transcription_stage(options))
            return await asyncio.to_thread(
                self.engine.transcribe, audio, options, progress, should_cancel
            )

    def __del__(self) -> None:
        # Serve calls this when the replica shuts down: release the store's connections.
        with contextlib.suppress(Exception):
            self._gpu_sampler.cancel()
        with contextlib.suppress(Exception):
            self.store.close()

    def info(self) -> dict[str, Any]:
        return {
            "engine": self.engine.name,
            "model": self.engine.model_name,
            "load_seconds": self.load_seconds,
            "pid": os.getpid(),
            "niceness": self.niceness,
            "rss_mb": process_rss_mb(),
            **gpu_facts(),
        }
