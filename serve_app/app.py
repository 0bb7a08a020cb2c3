"""The application graph, wired in one place: ``serve run serve_app.app:build_app``.

Ingress -> Dispatcher -> JobRunner -> {Transcriber, Diarizer}. Settings are built here,
once, from the environment plus the ``settings`` argument of the Serve config, and passed
to every deployment's constructor.
"""

from __future__ import annotations

from typing import Any, cast

from ray.serve import Application
from ray.serve.deployment import Deployment

from aisubs.settings import Settings
from deployments.diarizer import Diarizer
from deployments.runner import JobRunner
from deployments.transcriber import Transcriber
from serve_app.dispatcher import Dispatcher
from serve_app.ingress import Ingress

POLICY = "serve_app.autoscaling:BacklogAutoscalingPolicy"


def autoscaling_config(settings: Settings, *, request_resources: bool) -> dict[str, Any]:
    """Backlog-driven autoscaling for a GPU deployment (see serve_app.autoscaling)."""
    serve = settings.serve
    policy_kwargs: dict[str, Any] = {
        "jobs_per_replica": serve.jobs_per_replica,
        "downscale_delay_s": serve.downscale_delay_s,
        "poll_interval_s": serve.backlog_poll_s,
        # Never the DSN (it would show in Serve's config and status): the controller reads
        # AISUBS_STORE__POSTGRES_DSN from its own environment.
        "source_kwargs": {
            "settings": {
                "store": {
                    "backend": settings.store.backend,
                    "sqlite_path": str(settings.store.sqlite_path),
                }
            }
        },
    }
    if request_resources and serve.request_resources:
        policy_kwargs["resource_request"] = {
            "per_replica": {
                "GPU": serve.transcriber_gpus + serve.diarizer_gpus,
                "CPU": serve.transcriber_cpus + serve.diarizer_cpus,
            },
            "max_nodes": serve.max_gpu_nodes,
            "node": {"GPU": 1, "CPU": serve.gpu_node_cpus},
        }
    return {
        "min_replicas": serve.min_replicas,
        "max_replicas": serve.max_replicas,
        "initial_replicas": serve.min_replicas,
        "upscale_delay_s": 0,
        "downscale_delay_s": 0,
        "policy": {"policy_function": POLICY, "policy_kwargs": policy_kwargs},
    }


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Build the Serve application; ``args["settings"]`` overrides environment settings."""
    overrides = dict((args or {}).get("settings") or {})
    settings = Settings(**overrides)
    serve = settings.serve
    transcriber = _deployment(Transcriber).options(
        ray_actor_options={"num_gpus": serve.transcriber_gpus, "num_cpus": serve.transcriber_cpus},
        max_ongoing_requests=serve.jobs_per_replica,
        autoscaling_config=autoscaling_config(settings, request_resources=True),
    )
    diarizer = _deployment(Diarizer).options(
        ray_actor_options={"num_gpus": serve.diarizer_gpus, "num_cpus": serve.diarizer_cpus},
        max_ongoing_requests=serve.jobs_per_replica,
        autoscaling_config=autoscaling_config(settings, request_resources=False),
    )
    # The runner takes every claimed job at once (a job waiting in a Serve queue would not
    # heartbeat); the dispatcher never claims more than worker_slots.
    runner = _deployment(JobRunner).options(max_ongoing_requests=serve.worker_slots + 1)
    ingress = _deployment(Ingress).options(
        num_replicas=serve.ingress_replicas,
        max_ongoing_requests=serve.ingress_max_ongoing_requests,
    )
    jobs = runner.bind(settings, transcriber.bind(settings), diarizer.bind(settings))
    return ingress.bind(settings, _deployment(Dispatcher).bind(settings, jobs))


def _deployment(cls: type) -> Deployment:
    """@serve.deployment made ``cls`` a Deployment; mypy only sees the class."""
    return cast(Deployment, cls)
