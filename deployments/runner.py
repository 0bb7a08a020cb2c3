"""Job runner deployment: CPU-only, async, many jobs in flight per replica.

It receives claimed jobs from the dispatcher and runs each through
:class:`aisubs.runner.JobExecutor`, whose model stages are calls to the Transcriber and
Diarizer deployments. The decoded audio goes into the Ray object store once and both
stages read it from there.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import numpy as np
import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from aisubs.asr.base import ASROptions
from aisubs.jobwatch import Lease
from aisubs.runner import JobExecutor
from aisubs.settings import Settings
from aisubs.transcript import SpeakerTurn, Transcript
from deployments.metrics import setup_replica

log = logging.getLogger(__name__)


class RayStages:
    """:class:`aisubs.runner.StageBackend` over the warm-model deployments."""

    def __init__(self, transcriber: DeploymentHandle, diarizer: DeploymentHandle):
        self.transcriber = transcriber
        self.diarizer = diarizer

    def share(self, audio: np.ndarray) -> Any:
        # Boxed in a list so Serve passes the reference instead of resolving it in the caller.
        return [ray.put(audio)]

    async def transcribe(self, shared: Any, options: ASROptions, lease: Lease) -> Transcript:
        result: Transcript = await self.transcriber.transcribe.remote(shared, options, lease)
        return result

    async def diarize(
        self, shared: Any, hints: dict[str, int | None], lease: Lease
    ) -> list[SpeakerTurn]:
        result: list[SpeakerTurn] = await self.diarizer.diarize.remote(shared, hints, lease)
        return result


@serve.deployment(name="JobRunner", ray_actor_options={"num_cpus": 0.1})
class JobRunner:
    def __init__(
        self, settings: Settings, transcriber: DeploymentHandle, diarizer: DeploymentHandle
    ):
        from aisubs.media.storage import Storage
        from aisubs.queue import open_store

        metrics = setup_replica(settings)
        context = serve.get_replica_context()
        self.instance = f"runner-{context.replica_id.unique_id}"
        self.store = open_store(settings)
        self.executor = JobExecutor(
            settings,
            self.store,
            Storage.from_settings(settings.media),
            RayStages(transcriber, diarizer),
            worker_instance=self.instance,
            metrics=metrics,
        )

    async def run(self, job_id: str, lease_token: str) -> str:
        """Run one claimed job; the dispatcher does not wait on the answer to keep going."""
        import asyncio

        job = await asyncio.to_thread(self.store.get, UUID(job_id))
        if job.lease_token != lease_token:
            return "stopped"  # claimed again elsewhere since the dispatcher sent it
        return await self.executor.run(job)
