"""Measure the running service the way an operator would, and print one JSON object.

    python scripts/bench_service.py --json [--clients 50] [--model tiny.en]

Starts ``scripts/serve.py`` (what ``make serve`` runs) on a fresh data directory (through
``scripts/harness.py``, shared with the load and failover scripts), then
reports: cold start to first healthy answer; submit-to-SRT seconds for ``asr/jfk.flac``;
p50/p99 latency of ``POST /v1/jobs`` and ``GET /v1/jobs/{id}`` with N concurrent clients;
and how long the resulting backlog takes to produce an extra Transcriber replica (read from
the Ray dashboard's Serve API). Stops the service with SIGINT at the end.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import typer

from scripts.harness import DATA, create_keys, start_service, summary


def _transcriber_replicas(dashboard: str) -> int:
    try:
        data = httpx.get(f"{dashboard}/api/serve/applications/", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return 0
    app = data.get("applications", {}).get("aisubs", {})
    dep = app.get("deployments", {}).get("Transcriber", {})
    return sum(1 for r in dep.get("replicas", []) if r.get("state") == "RUNNING")


async def _load(base: str, keys: list[str], audio: bytes) -> dict[str, Any]:
    post_ms: list[float] = []
    get_ms: list[float] = []
    ids: list[tuple[str, str]] = []

    async def client(key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as c:
            t = time.perf_counter()
            r = await c.post(
                "/v1/jobs", files={"file": ("jfk.flac", audio)}, data={"diarize": "false"}
            )
            post_ms.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            job_id = r.json()["id"]
            ids.append((key, job_id))
            for _ in range(5):
                t = time.perf_counter()
                g = await c.get(f"/v1/jobs/{job_id}")
                get_ms.append((time.perf_counter() - t) * 1000)
                g.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in keys))
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "post_ms": summary(post_ms, 1),
        "get_ms": summary(get_ms, 1),
        "ids": ids,
    }


def main(
    clients: int = typer.Option(50),
    model: str = typer.Option("base", help="Whisper model the service loads."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="aisubs-bench-"))
    report: dict[str, Any] = {"model": model, "clients": clients}
    svc = start_service(tmp, model, {"AISUBS_SERVE__DOWNSCALE_DELAY_S": "30"})
    base = svc.base_url
    dashboard = f"http://127.0.0.1:{svc.dashboard_port}"
    try:
        report["cold_start_s"] = round(svc.last_start_s, 1)
        (key,) = create_keys(svc.env, ["bench"])
        headers = {"Authorization": f"Bearer {key}"}
        audio = (DATA / "asr" / "jfk.flac").read_bytes()
        # Cold: the GPU deployments idle at zero replicas, so this includes their start.
        # Warm: the same request once the replicas are up.
        for label in ("cold", "warm"):
            t = time.perf_counter()
            r = httpx.post(f"{base}/v1/jobs", headers=headers, files={"file": ("jfk.flac", audio)})
            r.raise_for_status()
            job_id = r.json()["id"]
            while True:
                state = httpx.get(f"{base}/v1/jobs/{job_id}", headers=headers).json()["state"]
                if state in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.1)
            srt = httpx.get(f"{base}/v1/jobs/{job_id}/subtitles.srt", headers=headers)
            report[f"jfk_submit_to_srt_{label}_s"] = round(time.perf_counter() - t, 2)
            report[f"jfk_{label}_ok"] = state == "succeeded" and "country" in srt.text

        # The first job left replicas running: measure the extra one the burst needs.
        before = _transcriber_replicas(dashboard)
        keys = create_keys(svc.env, [f"user{i:02d}" for i in range(clients)])
        burst_at = time.perf_counter()
        extra: list[float] = []

        def watch_replicas() -> None:
            while time.perf_counter() - burst_at < 300 and not extra:
                if _transcriber_replicas(dashboard) > before:
                    extra.append(round(time.perf_counter() - burst_at, 1))
                time.sleep(0.5)

        watcher = threading.Thread(target=watch_replicas, daemon=True)
        watcher.start()
        load = asyncio.run(_load(base, keys, audio))
        watcher.join(300)
        extra_s = extra[0] if extra else None
        report["post_latency_ms"] = load["post_ms"]
        report["get_latency_ms"] = load["get_ms"]
        report["burst_wall_s"] = load["wall_s"]
        report["replicas_before_burst"] = before
        report["extra_replica_after_s"] = extra_s
        for k, jid in load["ids"]:
            httpx.delete(f"{base}/v1/jobs/{jid}", headers={"Authorization": f"Bearer {k}"})
    finally:
        report["stopped_cleanly"] = svc.stop()
    print(json.dumps(report) if json_out else json.dumps(report, indent=2))


if __name__ == "__main__":
    typer.run(main)
