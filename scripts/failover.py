"""Failover scenarios against a real service with real jobs in flight; prints one JSON object.

    python scripts/failover.py --json [--scenarios a,b,c,d] [--jobs 8] [--model tiny.en]

Scenarios (each: submit a batch of real clips, wait for the trigger, inject the fault, wait
until every job has ended):

* a ``transcriber_killed``: SIGKILL the Transcriber replica's process while a job is in
  its ASR stage (the stage times out, the attempt is retried, Serve replaces the replica);
* b ``dispatcher_killed``: SIGKILL the Dispatcher replica while jobs run and others wait;
* c ``cluster_restarted``: SIGKILL the whole Ray cluster (serve.py, GCS, raylet, replicas)
  with jobs queued and running, then start it again on the same store;
* d ``postgres_restarted``: ``pg_ctlcluster ... restart`` mid-run, the service running on
  its own fresh PostgreSQL database (dropped at the end).

a-c share one service on SQLite; d starts its own on PostgreSQL. Per scenario:
``jobs``; ``completed`` (succeeded); ``failed``; ``lost`` (jobs - completed: failed, stuck
or vanished); ``duplicated`` (jobs with more than one ``completed`` event or with result
files beyond one set); ``max_attempts``; ``recovery_s``: from the fault until the last job
that was running at that moment had succeeded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from aisubs.pipeline import stage_fraction
from scripts.harness import (
    CLIPS,
    DATA,
    Client,
    ServiceProcess,
    create_keys,
    fast_recovery_env,
    fresh_pg_database,
    restart_postgres,
    result_sets,
    start_service,
)

NAMES = {
    "a": "transcriber_killed",
    "b": "dispatcher_killed",
    "c": "cluster_restarted",
    "d": "postgres_restarted",
}
# Overall progress once the ASR stage has begun.
ASR_STARTED = stage_fraction("asr", 0.0)


def long_clip(folder: Path) -> Path:
    """About 100 s of real speech (JFK, the two-speaker call, two AMI excerpts), so a job
    is surely mid-ASR when the fault hits."""
    from aisubs.media.decode import decode_audio
    from aisubs.media.wav import write_wav
    from aisubs.settings import MediaSettings

    path = folder / "long.wav"
    if not path.exists():
        sources = [DATA / "asr" / "jfk.flac", DATA / "diarization" / "sample.wav",
                   DATA / "diarization" / "ami" / "dev00.wav",
                   DATA / "diarization" / "ami" / "dev01.wav"]  # fmt: skip
        write_wav(path, (decode_audio(p, MediaSettings()) for p in sources))
    return path


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


class Batch:
    """Jobs of one scenario, spread over a few owners (the per-owner running cap is 2)."""

    def __init__(self, svc: ServiceProcess, keys: list[str]):
        self.svc = svc
        self.clients = [Client(svc.base_url, k) for k in keys]
        self.jobs: list[tuple[Client, str]] = []

    async def submit(self, clips: list[Path]) -> None:
        for i, clip in enumerate(clips):
            client = self.clients[i % len(self.clients)]
            r = await client.submit(clip)
            if r.status_code != 202:
                raise RuntimeError(f"submit refused: {r.status_code} {r.text}")
            self.jobs.append((client, r.json()["id"]))

    async def states(self) -> list[dict[str, Any]]:
        views = await asyncio.gather(*(c.job(j) for c, j in self.jobs))
        return [v for v in views if v is not None]

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = await self.states()
            if len(views) == len(self.jobs) and predicate(views):
                return views
            await asyncio.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")

    async def finish(self, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        return list(await asyncio.gather(*(c.wait(j, deadline) for c, j in self.jobs)))

    async def close(self) -> None:
        for c in self.clients:
            await c.__aexit__()


def running(views: list[dict[str, Any]], stage: str | None = None) -> list[dict[str, Any]]:
    return [v for v in views if v["state"] == "running" and (stage is None or v["stage"] == stage)]


async def run_scenario(
    svc: ServiceProcess,
    keys: list[str],
    clips: list[Path],
    trigger: Callable[[list[dict[str, Any]]], bool],
    inject: Callable[[], Awaitable[dict[str, Any]]],
    timeout: float,
) -> dict[str, Any]:
    """Submit, wait for ``trigger``, ``inject`` the fault, wait for the end, count."""
    batch = Batch(svc, keys)
    started = time.perf_counter()
    try:
        await batch.submit(clips)
        views = await batch.wait_for(trigger, 300, "the scenario's trigger")
        in_flight = {v["id"] for v in running(views)}
        queued = sum(1 for v in views if v["state"] == "queued")
        fault_at = time.time()
        fault = await inject()
        finals = await batch.finish(timeout)
        completed_events = await asyncio.gather(*(c.completed_events(j) for c, j in batch.jobs))
    finally:
        await batch.close()
    results = svc.data_dir / "results"
    duplicated = sum(
        1
        for view, events in zip(finals, completed_events, strict=True)
        if events > 1 or result_sets(results, view["id"]) > 1
    )
    succeeded = [v for v in finals if v["state"] == "succeeded"]
    ends = [_ts(v["timings"]["finished_at"]) for v in succeeded if v["id"] in in_flight]
    if not ends:  # nothing was running at the fault: the first completion after it
        ends = [min((t for v in succeeded if (t := _ts(v["timings"]["finished_at"]))
                     and t > fault_at), default=None)]  # fmt: skip
    recovery = max((e for e in ends if e is not None), default=None)
    return {
        "jobs": len(finals),
        "completed": len(succeeded),
        "failed": sum(1 for v in finals if v["state"] == "failed"),
        "lost": len(finals) - len(succeeded),
        "duplicated": duplicated,
        "max_attempts": max((int(v.get("attempts", 0)) for v in finals), default=0),
        "recovery_s": round(recovery - fault_at, 1) if recovery is not None else None,
        "running_at_fault": len(in_flight),
        "queued_at_fault": queued,
        "errors": sorted({v["error"]["code"] for v in finals if v.get("error")}),
        "fault": fault,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _kill(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def _batch_clips(folder: Path, jobs: int) -> list[Path]:
    """A long clip first (surely mid-job at the fault), then short real clips."""
    return [long_clip(folder)] + [CLIPS[i % len(CLIPS)] for i in range(jobs - 1)]


async def scenario_a(svc: ServiceProcess, keys: list[str], jobs: int, timeout: float) -> Any:
    async def inject() -> dict[str, Any]:
        pids = svc.replica_pids("Transcriber")
        if not pids:
            raise RuntimeError("no Transcriber replica process found")
        _kill(pids)
        return {"killed": "Transcriber", "pids": pids, "at_progress": views_progress[-1]}

    views_progress: list[float] = [0.0]

    def trigger(views: list[dict[str, Any]]) -> bool:
        # Kill only once the Transcriber itself reported ASR progress: the request is then
        # executing on the replica. (A request Serve had not yet handed over is re-sent to
        # the replacement replica, which tests nothing.)
        progress = float(views[0].get("progress") or 0.0)
        views_progress.append(progress)
        return views[0]["state"] == "running" and progress > ASR_STARTED

    clips = _batch_clips(svc.data_dir, jobs)
    return await run_scenario(svc, keys, clips, trigger, inject, timeout)


async def scenario_b(svc: ServiceProcess, keys: list[str], jobs: int, timeout: float) -> Any:
    async def inject() -> dict[str, Any]:
        pids = svc.replica_pids("Dispatcher")
        if not pids:
            raise RuntimeError("no Dispatcher replica process found")
        _kill(pids)
        return {"killed": "Dispatcher", "pids": pids}

    def trigger(views: list[dict[str, Any]]) -> bool:
        return bool(running(views)) and any(v["state"] == "queued" for v in views)

    clips = _batch_clips(svc.data_dir, jobs)
    return await run_scenario(svc, keys, clips, trigger, inject, timeout)


async def scenario_c(svc: ServiceProcess, keys: list[str], jobs: int, timeout: float) -> Any:
    async def inject() -> dict[str, Any]:
        killed = len(svc.cluster_processes())
        await asyncio.to_thread(svc.kill)
        restart_s = await asyncio.to_thread(svc.start)
        return {"killed_processes": killed, "restart_s": round(restart_s, 1)}

    def trigger(views: list[dict[str, Any]]) -> bool:
        return bool(running(views, "asr")) and any(v["state"] == "queued" for v in views)

    clips = _batch_clips(svc.data_dir, jobs)
    return await run_scenario(svc, keys, clips, trigger, inject, timeout)


async def scenario_d(svc: ServiceProcess, keys: list[str], jobs: int, timeout: float) -> Any:
    async def inject() -> dict[str, Any]:
        return await asyncio.to_thread(restart_postgres)

    def trigger(views: list[dict[str, Any]]) -> bool:
        return bool(running(views, "asr")) and any(v["state"] == "queued" for v in views)

    clips = _batch_clips(svc.data_dir, jobs)
    return await run_scenario(svc, keys, clips, trigger, inject, timeout)


SCENARIOS = {"a": scenario_a, "b": scenario_b, "c": scenario_c}


def run(letters: list[str], jobs: int, model: str, timeout: float, root: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    sqlite_letters = [x for x in letters if x in SCENARIOS]
    if sqlite_letters:
        svc = start_service(root / "sqlite", model, fast_recovery_env())
        try:
            keys = create_keys(svc.env, ["ann", "ben", "cat"])
            report["cold_start_s"] = round(svc.last_start_s, 1)
            for x in sqlite_letters:
                result = asyncio.run(SCENARIOS[x](svc, keys, jobs, timeout))
                report[NAMES[x]] = {"scenario": x, **result}
        finally:
            svc.stop()
    if "d" in letters:
        with fresh_pg_database("aisubs_failover") as dsn:
            env = dict(fast_recovery_env())
            env["AISUBS_STORE__BACKEND"] = "postgres"
            env["AISUBS_STORE__POSTGRES_DSN"] = dsn
            pg_svc: ServiceProcess | None = None
            try:
                pg_svc = start_service(root / "postgres", model, env)
                keys = create_keys(pg_svc.env, ["ann", "ben", "cat"])
                result = asyncio.run(scenario_d(pg_svc, keys, jobs, timeout))
                report[NAMES["d"]] = {"scenario": "d", "database": dsn.rsplit("/", 1)[1], **result}
            finally:
                if pg_svc is not None:
                    pg_svc.stop()
    return report


def main(
    scenarios: str = typer.Option("a,b,c,d", help="Comma-separated letters."),
    jobs: int = typer.Option(8, help="Jobs in flight per scenario."),
    model: str = typer.Option("tiny.en"),
    timeout: float = typer.Option(900, help="Seconds a scenario may take to drain."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    letters = [x.strip() for x in scenarios.split(",") if x.strip()]
    unknown = set(letters) - set(NAMES)
    if unknown:
        raise typer.BadParameter(f"unknown scenarios {sorted(unknown)}; use {sorted(NAMES)}")
    root = Path(tempfile.mkdtemp(prefix="aisubs-failover-"))
    report = run(letters, jobs, model, timeout, root)
    print(json.dumps(report) if json_out else json.dumps(report, indent=2))


if __name__ == "__main__":
    typer.run(main)
