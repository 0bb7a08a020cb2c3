"""``make serve``: a local Ray head plus the AI-Subs application, stopped by SIGINT/SIGTERM.

Starts Ray in this process (so everything it started goes away with it), declares fake
GPUs when the machine has none so the GPU-fractional deployments can schedule on a CPU
machine, deploys ``serve_app.app:build_app`` on 127.0.0.1:8000 with the embedded defaults
(SQLite, local files, bundled Whisper base) and keeps the dashboard on 127.0.0.1:8265.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import typer

log = logging.getLogger("aisubs.serve")


def real_gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:
        return 0


def cpu_replica_cap(max_replicas: int) -> int | None:
    """Model replicas per deployment that suit this machine's CPU, when lower than asked.

    On the CPU each Transcriber replica already decodes two jobs with two threads each:
    more replicas than one per two cores add no throughput, only contention (and the
    start-up of every extra replica takes the cores the API needs). Not applied when the
    operator set AISUBS_SERVE__MAX_REPLICAS.
    """
    if "AISUBS_SERVE__MAX_REPLICAS" in os.environ:
        return None
    cap = max(1, (os.cpu_count() or 2) // 2)
    return cap if cap < max_replicas else None


def main(
    fake_gpus: int = typer.Option(2, help="GPUs to declare when the machine has none."),
    num_cpus: int = typer.Option(
        8, help="Logical CPUs for the local head (replicas reserve some)."
    ),
    dashboard_port: int = typer.Option(8265),
    metrics_port: int = typer.Option(
        8080,
        help="Ray's metrics agent (Prometheus scrape) port; the app's own gauges "
        "are on the API port under /metrics.",
    ),
) -> None:
    from aisubs.observability import configure_logging
    from aisubs.settings import load_settings

    settings = load_settings()
    configure_logging(settings.observability)
    log.setLevel(logging.INFO)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # One local node on loopback: otherwise Ray swaps 127.0.0.1 for the interface address.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Replicas import the project from the working tree, whatever their cwd.
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)

    import ray
    from ray import serve

    from serve_app.app import build_app

    gpus = real_gpu_count()
    overrides: dict[str, Any] = {}
    if gpus == 0:
        log.warning("no GPU visible: declaring %d fake GPUs; models run on the CPU", fake_gpus)
        cap = cpu_replica_cap(settings.serve.max_replicas)
        if cap is not None:
            overrides = {"serve": {"max_replicas": cap}}
            log.warning(
                "models on the CPU: at most %d replica(s) per model deployment (one per two "
                "cores; more would only contend); AISUBS_SERVE__MAX_REPLICAS overrides",
                cap,
            )
    if settings.asr.model == "base":
        log.warning(
            "ASR model: bundled Whisper base (offline default). Production uses 'small': "
            "set AISUBS_ASR__MODEL=small (or a local model directory)."
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    started = time.perf_counter()
    ray.init(
        num_cpus=num_cpus,
        num_gpus=gpus or fake_gpus,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=dashboard_port,
        _metrics_export_port=metrics_port,
        runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}},
        # Ray starts workers at niceness 15; ours run at 0 and only the model replicas
        # lower themselves (AISUBS_SERVE__MODEL_NICENESS), so the API is never behind them.
        _system_config={"worker_niceness": 0},
    )
    try:
        serve.start(http_options={"host": settings.serve.host, "port": settings.serve.port})
        serve.run(
            build_app({"settings": overrides}), name="aisubs", route_prefix="/", blocking=False
        )
        log.info(
            "AI-Subs ready on http://%s:%d in %.1f s (dashboard http://127.0.0.1:%d, "
            "metrics http://127.0.0.1:%d/metrics and http://%s:%d/metrics)",
            settings.serve.host,
            settings.serve.port,
            time.perf_counter() - started,
            dashboard_port,
            metrics_port,
            settings.serve.host,
            settings.serve.port,
        )
        log.info("create an API key with: .venv/bin/aisubs apikey create --owner you")
        stop.wait()
        log.info("shutting down")
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    typer.run(main)
