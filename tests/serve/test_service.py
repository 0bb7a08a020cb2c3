"""End to end on a real local Ray cluster: HTTP in, subtitles out, through the queue."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import srt

from aisubs.pipeline import stage_fraction
from tests.serve.serve_support import Service
from tests.support.paths import JFK, LIBRISPEECH, REPO

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def started_at(job: dict[str, Any]) -> datetime:
    value = job.get("started_at") or job.get("timings", {}).get("started_at")
    assert value, job
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def drain(service: Service, ids: list[str], key: str | None = None) -> None:
    """Cancel leftovers so the next test starts with an empty queue."""
    headers = {"Authorization": f"Bearer {key}"} if key else None
    for job_id in ids:
        service.client.delete(f"/v1/jobs/{job_id}", headers=headers)


def test_upload_to_srt(service: Service) -> None:
    job = service.submit(JFK)
    assert job["state"] == "queued"
    done = service.wait(job["id"])
    assert done["state"] == "succeeded", done
    r = service.client.get(f"/v1/jobs/{job['id']}/subtitles.srt")
    assert r.status_code == 200
    cues = list(srt.parse(r.text))
    text = " ".join(c.content for c in cues).lower()
    spoken = " ".join(re.sub(r"speaker_\d+:", " ", text).split())
    assert "ask not what your country can do for you" in spoken
    assert all(len(line) <= 42 for c in cues for line in c.content.splitlines())


def test_ten_concurrent_jobs_all_complete(service: Service) -> None:
    with ThreadPoolExecutor(10) as pool:
        jobs = list(pool.map(lambda _: service.submit(JFK, diarize="false"), range(10)))
    ids = [j["id"] for j in jobs]
    assert len(set(ids)) == 10
    finals = [service.wait(i, timeout=300) for i in ids]
    assert [f["state"] for f in finals] == ["succeeded"] * 10


def test_priority_runs_first_with_one_slot(single_slot_service: Service, long_clip: Path) -> None:
    service = single_slot_service
    blocker = service.submit(long_clip, diarize="false")
    lows = [
        service.submit(JFK, key=service.other_key, priority=5, diarize="false") for _ in range(3)
    ]
    high = service.submit(JFK, key=service.other_key, priority=9, diarize="false")
    done_high = service.wait(high["id"], key=service.other_key)
    lows_done = [service.wait(j["id"], key=service.other_key) for j in lows]
    service.wait(blocker["id"])
    assert done_high["state"] == "succeeded"
    assert all(started_at(done_high) < started_at(low) for low in lows_done)


def _when(job: dict[str, Any], field: str) -> datetime | None:
    value = job["timings"].get(field)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def test_one_owner_does_not_starve_another(service: Service) -> None:
    flood = [service.submit(JFK, diarize="false")["id"] for _ in range(20)]
    single = service.submit(JFK, key=service.other_key, diarize="false")
    done = service.wait(single["id"], key=service.other_key, timeout=240)
    assert done["state"] == "succeeded"
    submitted, started = _when(done, "created_at"), _when(done, "started_at")
    assert submitted is not None and started is not None
    # Flood jobs that started while bob's single job was waiting: both slots were busy
    # when it arrived, so the next free slot is its: at most one flood job may slip in.
    overtaking = []
    for job_id in flood:
        began = _when(service.job(job_id), "started_at")
        if began is not None and submitted < began < started:
            overtaking.append(job_id)
    assert len(overtaking) <= 1, overtaking
    drain(service, flood)


def _transcriber_pids(app: str) -> list[int]:
    from ray import serve

    handle = serve.get_deployment_handle("Transcriber", app_name=app)
    return [int(handle.info.remote().result(timeout_s=30)["pid"])]


def test_killed_transcriber_mid_job_is_retried_once(service: Service, long_clip: Path) -> None:
    job = service.submit(long_clip)
    deadline = time.monotonic() + 120
    while True:
        current = service.job(job["id"])
        # Past the ASR stage's start: the Transcriber itself reported progress, so the
        # request is executing on the replica (a request not yet started there is simply
        # re-sent by Serve to the replacement, which is no failover at all).
        asr_started = stage_fraction("asr", 0.0)
        if current["state"] == "running" and (current.get("progress") or 0) > asr_started:
            break
        assert time.monotonic() < deadline, current
        time.sleep(0.1)
    pids = _transcriber_pids("aisubs")
    assert pids, "no Transcriber replica found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    done = service.wait(job["id"], timeout=240)
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 2
    results = Path(service.settings["media"]["results_url"]) / "results" / job["id"]
    names = sorted(p.name for p in results.rglob("*") if p.is_file()) if results.exists() else []
    if not names:  # results root may not nest a "results" folder
        results = Path(service.settings["media"]["results_url"]) / job["id"]
        names = sorted(p.name for p in results.rglob("*") if p.is_file())
    assert names == sorted({f"subtitles.{f}" for f in ("srt", "vtt", "json", "txt")}), names
    events = service.client.get(f"/v1/jobs/{job['id']}/events").json()
    kinds = [e["kind"] for e in (events["events"] if isinstance(events, dict) else events)]
    assert kinds.count("completed") == 1


def test_submit_batch_writes_subtitles_next_to_inputs(service: Service, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(JFK, folder / "one.flac")
    shutil.copy(LIBRISPEECH, folder / "two.flac")
    script = REPO / "scripts" / "submit_batch.py"
    run = subprocess.run(
        [
            sys.executable,
            str(script),
            str(folder),
            "--url",
            service.base_url,
            "--key",
            service.key,
            "--format",
            "vtt",
            "--no-diarize",
            "--timeout",
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stderr
    assert "country" in (folder / "one.vtt").read_text()
    assert (folder / "two.vtt").read_text().startswith("WEBVTT")


def test_model_replicas_yield_the_cpu_to_the_api(service: Service) -> None:
    """Inference may keep every core busy; the API, proxy, dispatcher and runner must not
    wait behind it, so the model replicas run at a higher OS niceness than they do."""
    from ray import serve

    from aisubs.settings import ServeSettings

    wanted = ServeSettings().model_niceness
    assert wanted > 0
    for name in ("Transcriber", "Diarizer"):
        handle = serve.get_deployment_handle(name, app_name="aisubs")
        info = handle.info.remote().result(timeout_s=60)
        assert info["niceness"] == wanted, (name, info)
        assert os.getpriority(os.PRIO_PROCESS, int(info["pid"])) == wanted
    for pid in _replica_pids("aisubs", ("Ingress", "Dispatcher", "JobRunner")):
        assert os.getpriority(os.PRIO_PROCESS, pid) == 0


def _replica_pids(app: str, deployments: tuple[str, ...]) -> list[int]:
    import psutil

    pids = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if any(f"ServeReplica:{app}:{name}" in cmd for name in deployments):
            pids.append(p.pid)
    assert len(pids) >= len(deployments), pids
    return pids
