"""Run the real application once on a private local Ray cluster and write what it exports.

Run as its own process (``python obs_live_service.py OUT.json``) by the observability
tests: the cluster needs Ray's metrics agent on a known port, which only the first
``ray.init`` of a process decides, and a process of its own keeps it clear of the
session cluster of ``tests/serve``. It deploys the app with tiny.en, runs one job that
succeeds (ASR + diarization), one whose URL cannot be fetched (retried once, then
failed) and one cancelled while it runs, then records: the series names scraped from
Ray's metrics agent and from the ingress's ``/metrics``, the job timelines as owner and as
another key, and the JSON log lines of the good job.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.client import TERMINAL
from tests.support.paths import JFK, REPO
from tests.support.settings import TINY_ASR

# Recorded by the replicas during the two jobs; the scrape waits until all are there.
EXPECTED_RAY = (
    "ray_aisubs_jobs_claimed_total",
    "ray_aisubs_job_wait_seconds_bucket",
    "ray_aisubs_jobs_completed_total",
    "ray_aisubs_jobs_failed_total",
    "ray_aisubs_job_processing_seconds_bucket",
    "ray_aisubs_audio_seconds_processed_total",
    "ray_aisubs_stage_seconds_bucket",
    "ray_aisubs_stage_rtf_bucket",
    "ray_aisubs_model_load_seconds",
    "ray_aisubs_stage_requests_in_flight",
    "ray_aisubs_jobs_stopped_total",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def names(text: str) -> list[str]:
    """Series names in a Prometheus text exposition."""
    found = {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    return sorted(found)


def settings_for(tmp: Path, port: int) -> dict[str, Any]:
    return {
        "store": {"backend": "sqlite", "sqlite_path": str(tmp / "queue.sqlite3")},
        "media": {
            "storage_url": str(tmp / "media"),
            "results_url": str(tmp / "results"),
            # The failing job fetches from a closed local port (connection refused).
            "allow_networks": ["127.0.0.1/32"],
            "fetch_timeout_s": 60,
        },
        "asr": dict(TINY_ASR),
        "queue": {
            "lease_seconds": 30,
            "heartbeat_seconds": 2,
            "max_attempts": 2,
            "retry_min_seconds": 0.5,
            "retry_max_seconds": 1,
        },
        "serve": {
            "host": "127.0.0.1",
            "port": port,
            "min_replicas": 1,
            "max_replicas": 1,
            "jobs_per_replica": 2,
            "transcriber_cpus": 0.25,
            "diarizer_cpus": 0.25,
            "dispatch_interval_s": 0.2,
            "backlog_poll_s": 0.5,
        },
        "observability": {"log_format": "json", "gpu_sample_s": 1},
    }


class _Hang(http.server.BaseHTTPRequestHandler):
    """A media server that never answers in time: the job sits in ``fetch``."""

    def do_GET(self) -> None:
        time.sleep(30)

    def log_message(self, *args: Any) -> None:
        pass


def hanging_server() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_state(client: httpx.Client, job_id: str, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/v1/jobs/{job_id}").json()["state"] != state:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} never reached {state}")
        time.sleep(0.2)


def wait_final(client: httpx.Client, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in TERMINAL:
            return dict(job)
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def job_log_lines(log_dir: Path, job_id: str) -> list[dict[str, Any]]:
    """JSON log lines mentioning the job anywhere in the session's log files."""
    lines = []
    for path in log_dir.rglob("*"):
        if not path.is_file() or path.suffix not in (".err", ".out", ".log"):
            continue
        for raw in path.read_text(errors="replace").splitlines():
            if job_id not in raw:
                continue
            start = raw.find("{")
            try:
                entry = json.loads(raw[start:]) if start >= 0 else None
            except ValueError:
                entry = None
            lines.append({"file": path.name, "raw": raw[:500], "json": entry})
    return lines


def main(out: Path) -> None:
    # A short path: Ray's socket paths under it must stay within 107 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="aisubs-obs-"))
    (tmp / "home").mkdir()
    os.environ.update(
        {
            "RAY_AUTH_MODE": "disabled",
            "HOME": str(tmp / "home"),
            "RAY_TMPDIR": str(tmp),
            "RAY_USAGE_STATS_ENABLED": "0",
            "HF_HUB_OFFLINE": "1",
        }
    )
    import ray
    from ray import serve

    from aisubs.queue import open_store
    from aisubs.settings import Settings
    from serve_app.app import build_app

    metrics_port, http_port = free_port(), free_port()
    ray.init(
        num_cpus=4,
        num_gpus=2,
        include_dashboard=False,
        _temp_dir=str(tmp / "r"),
        _node_ip_address="127.0.0.1",
        _metrics_export_port=metrics_port,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
    )
    import torch

    result: dict[str, Any] = {
        "metrics_port": metrics_port,
        "gpu_visible": bool(torch.cuda.is_available()),
    }
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        settings = settings_for(tmp, http_port)
        serve.run(build_app({"settings": settings}), name="aisubs", route_prefix="/")
        with open_store(Settings(**settings)) as store:
            _, key = store.create_api_key("alice", 9)
            _, other = store.create_api_key("bob", 9)
        base = f"http://127.0.0.1:{http_port}"
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        ids = {}
        with JFK.open("rb") as f:
            r = client.post("/v1/jobs", files={"file": (JFK.name, f)})
        r.raise_for_status()
        ids["good"] = r.json()["id"]
        # Fails in fetch (retryable), is retried once, then fails for good.
        r = client.post("/v1/jobs", json={"url": f"http://127.0.0.1:{free_port()}/gone.wav"})
        r.raise_for_status()
        ids["bad"] = r.json()["id"]
        # Cancelled while it runs (stuck fetching): the runner stops it within a heartbeat.
        server = hanging_server()
        url = f"http://127.0.0.1:{server.server_address[1]}/slow.wav"
        r = client.post("/v1/jobs", json={"url": url})
        r.raise_for_status()
        ids["cancelled"] = r.json()["id"]
        wait_state(client, ids["cancelled"], "running")
        client.delete(f"/v1/jobs/{ids['cancelled']}").raise_for_status()
        result["jobs"] = {name: wait_final(client, job_id) for name, job_id in ids.items()}
        result["events"] = {
            name: client.get(f"/v1/jobs/{job_id}/events").json() for name, job_id in ids.items()
        }
        result["events_other_key_status"] = client.get(
            f"/v1/jobs/{ids['good']}/events", headers={"Authorization": f"Bearer {other}"}
        ).status_code
        result["events_no_key_status"] = httpx.get(
            f"{base}/v1/jobs/{ids['good']}/events"
        ).status_code

        jobs_done = time.monotonic()
        deadline = jobs_done + 120
        ray_text = ""
        while time.monotonic() < deadline:
            ray_text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            if all(name in ray_text for name in EXPECTED_RAY):
                break
            time.sleep(2)
        result["ray_metrics_visible_after_s"] = round(time.monotonic() - jobs_done, 1)
        scrape_ms = []
        for _ in range(5):
            started = time.perf_counter()
            ingress = httpx.get(f"{base}/metrics", timeout=10)
            scrape_ms.append((time.perf_counter() - started) * 1000)
        result["ingress_scrape_ms_median"] = round(sorted(scrape_ms)[2], 1)
        result["ingress_scrape_bytes"] = len(ingress.content)
        result["ray_names"] = names(ray_text)
        result["ingress_status"] = ingress.status_code
        result["ingress_content_type"] = ingress.headers.get("content-type")
        result["ingress_names"] = names(ingress.text)
        result["ingress_text"] = ingress.text
        result["ray_aisubs_lines"] = [
            line for line in ray_text.splitlines() if line.startswith("ray_aisubs_")
        ]
        session = Path(ray._private.worker._global_node.get_session_dir_path())
        result["job_log_lines"] = job_log_lines(session / "logs", ids["good"])
    finally:
        out.write_text(json.dumps(result, indent=1, default=str))
        try:
            serve.shutdown()
            ray.shutdown()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    summary = json.loads(Path(sys.argv[1]).read_text())
    print(
        json.dumps(
            {
                k: summary.get(k)
                for k in (
                    "ray_metrics_visible_after_s",
                    "ingress_scrape_ms_median",
                    "ingress_scrape_bytes",
                    "gpu_visible",
                )
            }
            | {
                "ray_aisubs_series": len(summary.get("ray_aisubs_lines", [])),
                "job_states": {k: v["state"] for k, v in summary.get("jobs", {}).items()},
                "good_job_log_lines": len(summary.get("job_log_lines", [])),
            }
        )
    )
