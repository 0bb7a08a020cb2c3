"""Dispatcher deployment: one CPU replica feeding the job runner in queue order.

A background task calls :meth:`aisubs.dispatch.Dispatcher.step` every
``serve.dispatch_interval_s`` (sooner while it keeps finding work). The store is the only
state: Serve replaces a crashed dispatcher and the new one simply carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ray import serve
from ray.serve._private.common import ReplicaState
from ray.serve.handle import DeploymentHandle

from aisubs.dispatch import Dispatcher as DispatchCore
from aisubs.dispatch import DispatchReport
from aisubs.errors import AisubsError
from aisubs.queue.models import Job
from aisubs.settings import Settings
from deployments.metrics import setup_replica

log = logging.getLogger(__name__)


# How often the dispatcher recounts the running Transcriber replicas.
REPLICA_COUNT_S = 5.0
PENDING_STATES = (ReplicaState.STARTING, ReplicaState.UPDATING, ReplicaState.RECOVERING)


def count_running_replicas(app_name: str, deployment: str) -> int:
    """Running replicas of ``deployment`` as the Serve controller sees them."""
    return replica_counts(app_name, (deployment,))[deployment]["running"]


def replica_counts(app_name: str, deployments: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Running and pending (starting, updating, recovering) replicas per deployment."""
    status = serve.status()
    app = status.applications.get(app_name)
    counts: dict[str, dict[str, int]] = {}
    for name in deployments:
        states = app.deployments[name].replica_states if app and name in app.deployments else {}
        counts[name] = {
            "running": int(states.get(ReplicaState.RUNNING, 0)),
            "pending": sum(int(states.get(s, 0)) for s in PENDING_STATES),
        }
    return counts


@serve.deployment(name="Dispatcher", num_replicas=1, ray_actor_options={"num_cpus": 0.1})
class Dispatcher:
    def __init__(self, settings: Settings, runner: DeploymentHandle):
        from aisubs.queue import open_store

        context = serve.get_replica_context()
        self.app_name = context.app_name
        self.settings = settings
        self.runner = runner
        self.store = open_store(settings)
        self.in_flight: set[asyncio.Task[Any]] = set()
        self.workers = 0
        self.core = DispatchCore(
            settings=settings,
            store=self.store,
            worker_instance=f"dispatcher-{context.replica_id.unique_id}",
            active_workers=lambda: self.workers,
            metrics=setup_replica(settings),
        )
        self.last_report = DispatchReport()
        self._loop = asyncio.get_event_loop().create_task(self._run())

    def _launch(self, job: Job) -> None:
        """Send a claimed job to the runner without waiting for it to finish."""
        assert job.lease_token is not None
        task = asyncio.ensure_future(self._follow(job, job.lease_token))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _follow(self, job: Job, lease_token: str) -> None:
        try:
            outcome = await self.runner.run.remote(str(job.id), lease_token)
            log.debug("job %s: %s", job.id, outcome)
        except Exception as exc:  # the runner replica died: the lease brings the job back
            log.warning("runner call for job %s failed: %s", job.id, exc)

    async def _run(self) -> None:
        interval = self.settings.serve.dispatch_interval_s
        counted_at = -REPLICA_COUNT_S
        while True:
            try:
                # serve.status() asks the controller: only for the metrics sample, so at
                # most every few seconds (every step would keep the controller busy).
                if time.monotonic() - counted_at >= REPLICA_COUNT_S:
                    self.workers = await asyncio.to_thread(
                        count_running_replicas, self.app_name, "Transcriber"
                    )
                    counted_at = time.monotonic()
                self.last_report = await asyncio.to_thread(self.core.step)
                for job in self.last_report.jobs:
                    self._launch(job)
            except AisubsError as exc:
                log.warning("dispatch step failed: %s", exc)
            except Exception:
                log.exception("dispatch step crashed")
            busy = self.last_report.claimed > 0
            await asyncio.sleep(interval / 4 if busy else interval)

    async def status(self) -> dict[str, Any]:
        r = self.last_report
        return {
            "requeued": r.requeued,
            "claimed": r.claimed,
            "running": r.running,
            "free_slots": r.free_slots,
            "in_flight_here": len(self.in_flight),
            "active_workers": self.workers,
        }

    async def check_health(self) -> None:
        if self._loop.done():
            raise RuntimeError("dispatch loop stopped")

    def __del__(self) -> None:
        # Serve calls this when the replica shuts down: stop claiming, release connections.
        with contextlib.suppress(Exception):
            self._loop.cancel()
        with contextlib.suppress(Exception):
            self.store.close()
