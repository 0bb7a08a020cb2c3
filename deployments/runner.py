"""Job runner deployment: CPU-only, async, many jobs in flight per replica.

It receives claimed jobs from the dispatcher and runs each through
:class:`aisubs.runner.JobExecutor`, whose model stages are calls to the Transcriber and
Diarizer deployments. The decoded audio goes into the Ray object store once and both
stages read it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from uuid import UUID

import numpy as np
import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from aisubs.asr.base import ASROptions
from aisubs.job_lease import RunnerThreads, run_in
from aisubs.jobwatch import Lease
from aisubs.runner import JobExecutor
from aisubs.settings import Settings
from aisubs.transcript import SpeakerTurn, Transcript
from deployments.metrics import setup_replica

log = logging.getLogger(__name__)

# check_health fails when a no-op on the store threads takes longer than this.
HEALTH_TIMEOUT_S = 10.0


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
    """Takes every job the dispatcher claims (up to ``worker_slots``; see build_app).

    Its work runs on thread pools of its own (:class:`aisubs.job_lease.RunnerThreads`):
    Serve gives a replica with ``num_cpus: 0.1`` a default executor of only 5 threads,
    which ``worker_slots`` jobs' downloads and decoding would fill, starving heartbeats.
    """

    def __init__(
        self, settings: Settings, transcriber: DeploymentHandle, diarizer: DeploymentHandle
    ):
        from aisubs.media.storage import Storage
        from aisubs.queue import open_store

        metrics = setup_replica(settings)
        context = serve.get_replica_context()
        self.instance = f"runner-{context.replica_id.unique_id}"
        self.store = open_store(settings)
        self.threads = RunnerThreads.from_settings(settings)
        self.executor = JobExecutor(
            settings,
            self.store,
            Storage.from_settings(settings.media),
            RayStages(transcriber, diarizer),
            worker_instance=self.instance,
            metrics=metrics,
            threads=self.threads,
        )

    async def run(self, job_id: str, lease_token: str) -> str:
        """Run one claimed job; the dispatcher does not wait on the answer to keep going."""
        job = await run_in(self.threads.store, self.store.get, UUID(job_id))
        if job.lease_token != lease_token:
            return "stopped"  # claimed again elsewhere since the dispatcher sent it
        return await self.executor.run(job)

    async def check_health(self) -> None:
        """Unhealthy when the store threads stop answering (heartbeats would stop too)."""
        try:
            await asyncio.wait_for(run_in(self.threads.store, time.monotonic), HEALTH_TIMEOUT_S)
        except TimeoutError:
            raise RuntimeError(
                f"the runner's store threads did not answer within {HEALTH_TIMEOUT_S} s"
            ) from None

    def __del__(self) -> None:
        # Serve calls this when the replica shuts down: release the store's connections.
        for close in (self.executor.close, self.store.close):
            with contextlib.suppress(Exception):
                close()
