"""Session fixtures for the verification tests: the app deployed on a real Ray cluster.

The cluster is the session's shared one (``local_ray`` in tests/conftest.py), where the
tests/serve apps may run too; our copies of the application have their own names and route
prefixes. Two copies are deployed:

* ``verify`` (``/verify``): tiny.en, one Transcriber and one Diarizer replica with two
  slots, short leases, a 100 MB upload limit, 10 min max duration, and 127.0.0.1/32 in
  ``allow_networks`` so jobs can fetch from a local server (which may redirect elsewhere);
* ``verify-strict`` (``/verify-strict``): default URL rules (no private network allowed),
  no model replicas (nothing it receives is ever queued).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.settings import TINY_ASR
from tests.verification.verify_support import MAX_UPLOAD, MediaServer, Service, broken_corpus


def app_settings(folder: Path, port: int, **serve: Any) -> dict[str, Any]:
    return {
        "store": {"backend": "sqlite", "sqlite_path": str(folder / "queue.sqlite3")},
        "media": {
            "storage_url": str(folder / "media"),
            "results_url": str(folder / "results"),
            "max_upload_bytes": MAX_UPLOAD,
            "max_duration_s": 600,
            "fetch_timeout_s": 10,
        },
        "asr": dict(TINY_ASR),
        "queue": {
            "lease_seconds": 8,
            "heartbeat_seconds": 1,
            "retry_min_seconds": 1,
            "retry_max_seconds": 2,
        },
        "serve": {
            "host": "127.0.0.1",
            "port": port,
            "min_replicas": 1,
            "max_replicas": 1,
            "jobs_per_replica": 2,
            "transcriber_cpus": 0.25,
            "diarizer_cpus": 0.25,
            "stage_timeout_base_s": 60,
            "stage_timeout_per_audio_s": 2,
            "dispatch_interval_s": 0.2,
            "backlog_poll_s": 0.5,
            "downscale_delay_s": 2,
            "cancel_check_s": 0.5,
            **serve,
        },
    }


@pytest.fixture(scope="session")
def verify_cluster(local_ray: Any) -> int:
    """The Serve HTTP port of the session's shared Ray cluster (tests/conftest.py)."""
    return int(local_ray.port)


def _deploy(port: int, folder: Path, name: str, settings: dict[str, Any]) -> Service:
    from ray import serve

    from aisubs.queue import open_store
    from aisubs.settings import Settings
    from serve_app.app import build_app

    folder.mkdir(parents=True, exist_ok=True)
    serve.run(build_app({"settings": settings}), name=name, route_prefix=f"/{name}",
              blocking=False)  # fmt: skip
    with open_store(Settings(**settings)) as store:
        keys = [store.create_api_key(owner, 9)[1] for owner in ("alice", "bob")]
        keys += [store.create_api_key(f"user{i:02d}", 9)[1] for i in range(10)]
    svc = Service(name, f"http://127.0.0.1:{port}/{name}", settings, keys)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if svc.client.get("/healthz").status_code == 200:
                return svc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{name} did not become healthy")


@pytest.fixture(scope="session")
def verify_app(verify_cluster: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from ray import serve

    folder = tmp_path_factory.mktemp("verify")
    settings = app_settings(folder, verify_cluster)
    settings["media"]["allow_networks"] = ["127.0.0.1/32"]
    svc = _deploy(verify_cluster, folder, "verify", settings)
    # Models warm: readyz answers 200 once the Transcriber and Diarizer replicas run.
    deadline = time.monotonic() + 240
    while svc.client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "verify app never became ready"
        time.sleep(0.5)
    yield svc
    serve.delete("verify")


@pytest.fixture(scope="session")
def strict_app(verify_cluster: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from ray import serve

    folder = tmp_path_factory.mktemp("verify-strict")
    settings = app_settings(folder, verify_cluster, min_replicas=0)
    svc = _deploy(verify_cluster, folder, "verify-strict", settings)
    yield svc
    serve.delete("verify-strict")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, bytes]]:
    return broken_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def media_server(corpus: dict[str, tuple[str, bytes]]) -> Iterator[MediaServer]:
    server = MediaServer({name: data for name, (_, data) in corpus.items()})
    yield server
    server.close()
