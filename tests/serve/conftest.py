"""One real local Ray cluster (fake GPUs) with the AI-Subs application, per test session.

Starting Ray and Serve costs ~25 s, so every test here shares one cluster and one app.
The app runs tiny.en (fast) with one worker slot, short leases and quick retries so the
failover and ordering scenarios finish in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.serve_support import Service
from tests.support.paths import AMI, JFK, SAMPLE_WAV
from tests.support.settings import TINY_ASR

APP = "aisubs"


def app_settings(tmp: Path, port: int) -> dict[str, Any]:
    return {
        "store": {"backend": "sqlite", "sqlite_path": str(tmp / "queue.sqlite3")},
        "media": {"storage_url": str(tmp / "media"), "results_url": str(tmp / "results")},
        "asr": dict(TINY_ASR),
        "queue": {
            "lease_seconds": 8,
            "heartbeat_seconds": 1,
            "retry_min_seconds": 1,
            "retry_max_seconds": 2,
            "max_running_per_owner": 2,
        },
        "serve": {
            "host": "127.0.0.1",
            "port": port,
            "min_replicas": 1,
            "max_replicas": 1,
            "jobs_per_replica": 1,
            "transcriber_cpus": 0.25,
            "diarizer_cpus": 0.25,
            "stage_timeout_base_s": 20,
            "stage_timeout_per_audio_s": 1,
            "dispatch_interval_s": 0.2,
            "backlog_poll_s": 0.5,
            "downscale_delay_s": 2,
            "cancel_check_s": 0.5,
        },
    }


@pytest.fixture(scope="session")
def ray_cluster(local_ray: Any) -> Path:
    """Scratch space on the session's shared Ray cluster (tests/conftest.py)."""
    return Path(local_ray.tmp)


def _deploy(tmp: Path, name: str, prefix: str, slots: int) -> Iterator[Service]:
    """Deploy one copy of the application with its own queue and ``slots`` worker slots."""
    from ray import serve
    from ray.serve.context import _get_global_client

    from aisubs.queue import open_store
    from aisubs.settings import Settings
    from serve_app.app import build_app

    port = int(_get_global_client().http_config.port)
    folder = tmp / name
    folder.mkdir()
    settings = app_settings(folder, port)
    settings["serve"]["jobs_per_replica"] = slots
    serve.run(build_app({"settings": settings}), name=name, route_prefix=prefix, blocking=False)
    with open_store(Settings(**settings)) as store:
        _, key = store.create_api_key("alice", 9)
        _, other = store.create_api_key("bob", 9)
    svc = Service(f"http://127.0.0.1:{port}{prefix.rstrip('/')}", settings, key, other)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if svc.client.get("/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    yield svc
    serve.delete(name)


@pytest.fixture(scope="session")
def service(ray_cluster: Path) -> Iterator[Service]:
    """The app with two worker slots (one Transcriber replica taking two jobs)."""
    yield from _deploy(ray_cluster, APP, "/", slots=2)


@pytest.fixture(scope="session")
def single_slot_service(ray_cluster: Path) -> Iterator[Service]:
    """A second copy with exactly one worker slot, for strict ordering checks."""
    yield from _deploy(ray_cluster, "aisubs-one", "/one", slots=1)


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 100 s of real speech (English clips back to back) as a 16 kHz WAV."""
    from aisubs.media.decode import decode_audio
    from aisubs.media.wav import write_wav
    from aisubs.settings import MediaSettings

    clips = [
        JFK,
        SAMPLE_WAV,
        AMI / "dev00.wav",
        AMI / "dev01.wav",
    ]
    path = tmp_path_factory.mktemp("clips") / "long.wav"
    write_wav(path, (decode_audio(c, MediaSettings()) for c in clips))
    return path
