"""Many users at once against the running service; prints one JSON object.

    python scripts/loadtest.py --users 50 --jobs-per-user 2 --model tiny.en --json
    python scripts/loadtest.py --url http://127.0.0.1:8000 --key KEY [--key KEY2 ...] --json

Every simulated user (an asyncio task with its own httpx client and, when this script
starts the service, its own API key) uploads real clips from ``../shared/data`` one after
the other, then polls each job until it ends and downloads its SRT. Without ``--url`` the
service is started with ``scripts/serve.py`` on a fresh data directory (default caps) and
stopped at the end.

Counts: ``submitted`` upload attempts; ``accepted`` answered 202; ``rejected`` refused
(429 or any other 4xx/5xx); ``completed`` succeeded with a non-empty SRT downloaded;
``failed`` ended failed/cancelled; ``dropped`` accepted but not finished by ``--timeout``
(or vanished). ``api_latency_ms`` covers every call (by kind: submit, read, download);
``queue_wait_s``: created_at to started_at of each job;
``audio_s_per_wall_s``: audio seconds of completed jobs per second of the whole run.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from scripts.harness import CLIPS, Client, create_keys, pct, start_service, summary


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class Tally:
    def __init__(self) -> None:
        self.submitted = self.accepted = self.rejected = 0
        self.completed = self.failed = self.dropped = 0
        self.reject_codes: dict[str, int] = {}
        self.fail_codes: dict[str, int] = {}
        self.latencies: list[float] = []
        self.by_kind: dict[str, list[float]] = {}
        self.waits: list[float] = []
        self.audio_s = 0.0


async def user(
    base_url: str,
    key: str,
    index: int,
    jobs: int,
    diarize: bool,
    deadline: float,
    poll_s: float,
    t: Tally,
) -> None:
    async with Client(base_url, key, t.latencies, t.by_kind) as c:
        ids: list[str] = []
        for j in range(jobs):
            clip = CLIPS[(index + j) % len(CLIPS)]
            t.submitted += 1
            try:
                r = await c.submit(clip, diarize=str(diarize).lower())
            except Exception as exc:  # a refused connection is a rejection
                t.rejected += 1
                t.reject_codes[type(exc).__name__] = t.reject_codes.get(type(exc).__name__, 0) + 1
                continue
            if r.status_code == 202:
                t.accepted += 1
                ids.append(r.json()["id"])
            else:
                t.rejected += 1
                code = f"{r.status_code}:{_error_code(r)}"
                t.reject_codes[code] = t.reject_codes.get(code, 0) + 1
        for job_id in ids:
            job = await c.wait(job_id, deadline, poll_s)
            state = job["state"]
            created, started = _ts(job.get("timings", {}).get("created_at")), None
            if job.get("timings", {}).get("started_at"):
                started = _ts(job["timings"]["started_at"])
            if created and started:
                t.waits.append((started - created).total_seconds())
            if state == "succeeded":
                srt = await c.request("GET", f"/v1/jobs/{job_id}/subtitles.srt")
                if srt.status_code == 200 and srt.text.strip():
                    t.completed += 1
                    t.audio_s += float(job["timings"].get("audio_duration_s") or 0.0)
                else:
                    t.dropped += 1
            elif state in ("failed", "cancelled"):
                t.failed += 1
                code = (job.get("error") or {}).get("code", state)
                t.fail_codes[code] = t.fail_codes.get(code, 0) + 1
            else:
                t.dropped += 1


def _error_code(r: Any) -> str:
    try:
        return str(r.json()["error"]["code"])
    except Exception:  # not our envelope
        return "?"


async def run_load(
    base_url: str,
    keys: list[str],
    users: int,
    jobs: int,
    diarize: bool,
    timeout: float,
    poll_s: float = 2.0,
) -> dict[str, Any]:
    t = Tally()
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    await asyncio.gather(
        *(
            user(base_url, keys[i % len(keys)], i, jobs, diarize, deadline, poll_s, t)
            for i in range(users)
        )
    )
    wall = time.perf_counter() - started
    return {
        "users": users,
        "jobs_per_user": jobs,
        "submitted": t.submitted,
        "accepted": t.accepted,
        "rejected": t.rejected,
        "completed": t.completed,
        "failed": t.failed,
        "dropped": t.dropped,
        "reject_codes": t.reject_codes,
        "fail_codes": t.fail_codes,
        "api_calls": len(t.latencies),
        "api_latency_ms": {
            "p50": round(pct(t.latencies, 0.5) or 0.0, 1),
            "p99": round(pct(t.latencies, 0.99) or 0.0, 1),
        },
        "api_latency_ms_by_kind": {
            kind: {
                "n": len(v),
                "p50": round(pct(v, 0.5) or 0.0, 1),
                "p99": round(pct(v, 0.99) or 0.0, 1),
            }
            for kind, v in sorted(t.by_kind.items())
        },
        "queue_wait_s": summary(t.waits),
        "audio_s": round(t.audio_s, 1),
        "wall_s": round(wall, 1),
        "audio_s_per_wall_s": round(t.audio_s / wall, 3) if wall else None,
    }


def main(
    users: int = typer.Option(50),
    jobs_per_user: int = typer.Option(2),
    model: str = typer.Option("tiny.en", help="Whisper model of the service this starts."),
    url: str = typer.Option("", help="A running service; empty: start one."),
    key: list[str] = typer.Option([], help="API key(s) for --url, shared round-robin by users."),
    diarize: bool = typer.Option(True),
    timeout: float = typer.Option(1800, help="Seconds before unfinished jobs count as dropped."),
    poll_s: float = typer.Option(2.0, help="Seconds between a user's status polls."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    svc = None
    report: dict[str, Any] = {}
    try:
        if url:
            if not key:
                raise typer.BadParameter("--url needs at least one --key")
            base_url, keys = url.rstrip("/"), list(key)
        else:
            data_dir = Path(tempfile.mkdtemp(prefix="aisubs-load-"))
            svc = start_service(data_dir, model)
            report["model"] = model
            report["cold_start_s"] = round(svc.last_start_s, 1)
            base_url = svc.base_url
            keys = create_keys(svc.env, [f"user{i:03d}" for i in range(users)])
        report.update(
            asyncio.run(run_load(base_url, keys, users, jobs_per_user, diarize, timeout, poll_s))
        )
    finally:
        if svc is not None:
            report["stopped_cleanly"] = svc.stop()
    print(json.dumps(report) if json_out else json.dumps(report, indent=2))


if __name__ == "__main__":
    typer.run(main)
