"""Ingress deployment: the HTTP API (FastAPI) on Serve's proxy, CPU only, 1..N replicas.

The FastAPI application is built inside the replica (``__serve_build_asgi_app__``) from
state opened in ``__init__``, so nothing heavy happens at import or in the driver.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from aisubs.settings import Settings
from serve_app.dispatcher import replica_counts

log = logging.getLogger(__name__)

WORKER_DEPLOYMENTS = ("Transcriber", "Diarizer")
# How often the ingress recounts the model replicas (ETAs, /readyz, /metrics).
REPLICA_COUNT_S = 5.0


@serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0.1})
@serve.ingress()
class Ingress:
    def __init__(self, settings: Settings, dispatcher: DeploymentHandle):
        from deployments.metrics import setup_replica
        from serve_app.api import ApiState

        setup_replica(settings)
        self.settings = settings
        # Kept so the dispatcher is part of this application's graph (and for status).
        self.dispatcher = dispatcher
        self.app_name = serve.get_replica_context().app_name
        self._replicas: dict[str, dict[str, int]] = {}
        self._counting = asyncio.get_event_loop().create_task(self._count_replicas())
        self.state = ApiState.create(
            settings,
            active_workers=lambda: self._replica_counts().get("Transcriber", 0),
            models_ready=self._models_ready,
            gpu_visible=ray.cluster_resources().get("GPU", 0) > 0,
            replica_counts=self._replica_states,
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        from serve_app.api import create_api

        return create_api(self.state)

    def _replica_states(self) -> dict[str, dict[str, int]]:
        """Running and pending worker replicas as last counted (see _count_replicas)."""
        return self._replicas

    async def _count_replicas(self) -> None:
        """Recount the worker replicas every few seconds, off the request path: asking the
        Serve controller can take long when the machine is busy, and a job read must not
        wait for it."""
        while True:
            try:
                self._replicas = await asyncio.to_thread(
                    replica_counts, self.app_name, WORKER_DEPLOYMENTS
                )
            except Exception as exc:  # the controller is busy: keep the last count
                log.warning("cannot read replica counts: %s", exc)
            await asyncio.sleep(REPLICA_COUNT_S)

    def _replica_counts(self) -> dict[str, int]:
        """Running worker replicas per deployment."""
        return {name: s.get("running", 0) for name, s in self._replica_states().items()}

    def _models_ready(self) -> dict[str, Any]:
        """Warm replicas per model deployment; zero is fine when the cluster can start one."""
        counts = self._replica_counts()
        gpus = ray.cluster_resources().get("GPU", 0)
        need = {
            "Transcriber": self.settings.serve.transcriber_gpus,
            "Diarizer": self.settings.serve.diarizer_gpus,
        }
        return {
            name: {
                "running_replicas": counts.get(name, 0),
                "warm": counts.get(name, 0) > 0,
                "can_start": counts.get(name, 0) > 0
                or gpus >= need[name]
                or self.settings.serve.gpu_nodes_autoscale,
            }
            for name in WORKER_DEPLOYMENTS
        }

    def __del__(self) -> None:
        # Serve calls this when the replica shuts down: release the store's connections.
        counting = getattr(self, "_counting", None)
        if counting is not None:
            counting.cancel()
        state = getattr(self, "state", None)
        if state is not None:
            state.close()

    async def dispatcher_status(self) -> dict[str, Any]:
        status: dict[str, Any] = await self.dispatcher.status.remote()
        return status
