"""Backlog in the durable queue scales the Transcriber deployment up, idle brings it down."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.paths import MODELS

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _replicas(app: str, deployment: str) -> int:
    from ray import serve
    from ray.serve._private.common import ReplicaState

    status = serve.status().applications.get(app)
    if status is None or deployment not in status.deployments:
        return 0
    return int(status.deployments[deployment].replica_states.get(ReplicaState.RUNNING, 0))


def _wait_for(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.25)
    return time.monotonic() - started


def test_backlog_scales_up_and_idle_scales_to_minimum(ray_cluster: Path) -> None:
    from ray import serve

    from aisubs.queue import open_store
    from aisubs.settings import Settings
    from deployments.transcriber import Transcriber
    from serve_app.app import autoscaling_config

    tmp = ray_cluster / "autoscale"
    tmp.mkdir()
    settings = Settings(
        store={"backend": "sqlite", "sqlite_path": str(tmp / "q.sqlite3")},  # type: ignore[arg-type]
        asr={"model": "tiny.en", "cache_dir": str(MODELS)},  # type: ignore[arg-type]
        serve={  # type: ignore[arg-type]
            "min_replicas": 0,
            "max_replicas": 2,
            "jobs_per_replica": 1,
            "backlog_poll_s": 0.5,
            "downscale_delay_s": 2,
        },
    )
    app = Transcriber.options(
        name="Transcriber",
        ray_actor_options={"num_gpus": 0.25, "num_cpus": 0.1},
        autoscaling_config=autoscaling_config(settings, request_resources=False),
    ).bind(settings)
    serve.run(app, name="autoscale-test", route_prefix=None, blocking=False)
    try:
        with open_store(settings) as store:
            time.sleep(3)
            assert _replicas("autoscale-test", "Transcriber") == 0  # idle starts at zero
            jobs = [store.submit(f"owner{i}", f"upload://x{i}") for i in range(4)]
            took = _wait_for(
                lambda: _replicas("autoscale-test", "Transcriber") == 2, 120, "2 replicas"
            )
            print(f"backlog of 4 -> 2 running replicas in {took:.1f} s")
            for job in jobs:
                store.cancel(job.id)
            _wait_for(lambda: _replicas("autoscale-test", "Transcriber") == 0, 120, "scale to 0")
    finally:
        serve.delete("autoscale-test")
