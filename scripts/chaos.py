"""Chaos soak: users keep submitting real clips while a random fault hits every minute.

    python scripts/chaos.py --minutes 30 --json
    python scripts/chaos.py --minutes 3 --no-postgres --json   # what CI runs

The service (``scripts/serve.py`` through the harness) runs on a fresh PostgreSQL database
with short leases and quick retries. ``--users`` simulated users each keep up to two jobs
in flight, uploading clips from ``../shared/data`` with an Idempotency-Key per submission
(a submission that met an outage is sent again with the same key, so a retry never makes a
second job). Every ``--fault-every-s`` seconds one fault, chosen at random from
``--faults``, hits:

* ``transcriber`` / ``diarizer`` / ``runner`` / ``dispatcher`` / ``ingress``: SIGKILL of
  that deployment's replica process (Serve starts a new one);
* ``postgres``: ``pg_ctlcluster ... restart`` of the machine's PostgreSQL;
* ``cluster``: SIGKILL of the whole Ray cluster, then a fresh start on the same store.

After ``--minutes`` the users stop submitting and every accepted job is followed to its end
(``--drain-s`` at most). Printed (one JSON object with ``--json``): ``jobs`` (accepted),
``completed``, ``failed`` (ended failed or cancelled, with their codes), ``lost`` (accepted
but never ended, or vanished), ``duplicated`` (completed more than once, or results of more
than one attempt left behind), ``faults`` by kind, ``max_attempts``, ``queue_wait_s``
(submission to the start of the attempt that ran) p50/p99, and per-fault timings.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import typer

from scripts.harness import (
    CLIPS,
    TERMINAL,
    Client,
    ServiceProcess,
    create_keys,
    fast_recovery_env,
    fresh_pg_database,
    restart_postgres,
    result_sets,
    start_service,
    summary,
)

REPLICAS = {
    "transcriber": "Transcriber",
    "diarizer": "Diarizer",
    "runner": "JobRunner",
    "dispatcher": "Dispatcher",
    "ingress": "Ingress",
}
FAULTS = (*REPLICAS, "postgres", "cluster")
IN_FLIGHT_PER_USER = 2


@dataclass
class Soak:
    """What the users did and what the faults were."""

    svc: ServiceProcess
    accepted: list[tuple[Client, str]] = field(default_factory=list)
    submit_attempts: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    faults: list[dict[str, Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def submit_until_accepted(soak: Soak, client: Client, clip: Path) -> str | None:
    """Upload ``clip`` once, riding out outages with the same Idempotency-Key."""
    key = uuid.uuid4().hex
    while True:
        soak.submit_attempts += 1
        try:
            r = await client.request(
                "POST",
                "/v1/jobs",
                files={"file": (clip.name, clip.read_bytes())},
                data={"diarize": "true"},
                headers={"Idempotency-Key": key},
            )
        except httpx.HTTPError as exc:
            soak.refused[type(exc).__name__] += 1
        else:
            if r.status_code == 202:
                return str(r.json()["id"])
            soak.refused[str(r.status_code)] += 1
            if r.status_code < 500 and r.status_code != 429:
                return None  # refused for good (would be a bug with these clips)
        if soak.stop.is_set():
            return None
        await asyncio.sleep(1.0)


async def view(client: Client, job_id: str) -> dict[str, Any] | None:
    """The job (None while the service cannot answer); a vanished job reads as such."""
    try:
        return await client.job(job_id)
    except httpx.HTTPStatusError:
        return {"id": job_id, "state": "vanished"}


async def user(soak: Soak, client: Client, index: int) -> None:
    mine: list[str] = []
    n = 0
    while not soak.stop.is_set():
        views = [await view(client, j) for j in mine]
        mine = [
            j for j, v in zip(mine, views, strict=True) if v is None or v["state"] not in TERMINAL
        ]
        if len(mine) < IN_FLIGHT_PER_USER:
            job_id = await submit_until_accepted(soak, client, CLIPS[(index + n) % len(CLIPS)])
            n += 1
            if job_id is not None:
                mine.append(job_id)
                soak.accepted.append((client, job_id))
            continue
        await asyncio.sleep(2.0)


async def inject(svc: ServiceProcess, kind: str) -> dict[str, Any]:
    if kind in REPLICAS:
        pids = svc.replica_pids(REPLICAS[kind])
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return {"killed": REPLICAS[kind], "pids": pids}
    if kind == "postgres":
        return await asyncio.to_thread(restart_postgres)
    killed = len(svc.cluster_processes())
    await asyncio.to_thread(svc.kill)
    restart_s = await asyncio.to_thread(svc.start)
    return {"killed_processes": killed, "restart_s": round(restart_s, 1)}


async def chaos_monkey(soak: Soak, kinds: list[str], every_s: float, rng: random.Random) -> None:
    while True:
        try:
            await asyncio.wait_for(soak.stop.wait(), every_s)
            return
        except TimeoutError:
            pass
        kind = rng.choice(kinds)
        at = time.time()
        try:
            detail = await inject(soak.svc, kind)
        except Exception as exc:  # a fault that could not be injected is reported, not fatal
            detail = {"error": f"{type(exc).__name__}: {exc}"}
        soak.faults.append({"kind": kind, "at": round(at, 1), **detail})


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


async def final_view(client: Client, job_id: str, deadline: float) -> dict[str, Any]:
    """Poll until the job ended (or ``deadline``); a vanished job reads as such."""
    while True:
        current = await view(client, job_id)
        if current is not None and (
            current["state"] in (*TERMINAL, "vanished") or time.monotonic() > deadline
        ):
            return current
        if current is None and time.monotonic() > deadline:
            return {"id": job_id, "state": "unknown"}
        await asyncio.sleep(2.0)


async def tally(soak: Soak, drain_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + drain_s
    finals = await asyncio.gather(*(final_view(c, j, deadline) for c, j in soak.accepted))
    completed_events = await asyncio.gather(*(_completed_events(c, j) for c, j in soak.accepted))
    results = soak.svc.data_dir / "results"
    duplicated = sum(
        1
        for view, events in zip(finals, completed_events, strict=True)
        if events > 1 or result_sets(results, view["id"]) > 1
    )
    succeeded = [v for v in finals if v["state"] == "succeeded"]
    failed = [v for v in finals if v["state"] in ("failed", "cancelled")]
    waits = [
        s - c
        for v in succeeded
        if (c := _ts(v["timings"]["created_at"])) is not None
        and (s := _ts(v["timings"]["started_at"])) is not None
    ]
    return {
        "jobs": len(finals),
        "completed": len(succeeded),
        "failed": len(failed),
        "fail_codes": dict(Counter((v.get("error") or {}).get("code", v["state"]) for v in failed)),
        "lost": len(finals) - len(succeeded) - len(failed),
        "duplicated": duplicated,
        "max_attempts": max((int(v.get("attempts", 0)) for v in finals), default=0),
        "queue_wait_s": summary(waits),
    }


async def _completed_events(client: Client, job_id: str) -> int:
    for _ in range(30):  # the service may still be coming back from the last fault
        try:
            return await client.completed_events(job_id)
        except httpx.HTTPError:
            await asyncio.sleep(2.0)
    return -1


async def soak_run(
    svc: ServiceProcess, keys: list[str], minutes: float, kinds: list[str], every_s: float,
    drain_s: float, seed: int,
) -> dict[str, Any]:  # fmt: skip
    soak = Soak(svc)
    clients = [Client(svc.base_url, key) for key in keys]
    started = time.perf_counter()
    users = [asyncio.create_task(user(soak, c, i)) for i, c in enumerate(clients)]
    monkey = asyncio.create_task(chaos_monkey(soak, kinds, every_s, random.Random(seed)))
    await asyncio.sleep(minutes * 60)
    soak.stop.set()
    await monkey
    await asyncio.gather(*users)
    report = await tally(soak, drain_s)
    for c in clients:
        await c.__aexit__()
    report.update(
        {
            "minutes": minutes,
            "users": len(keys),
            "submit_attempts": soak.submit_attempts,
            "refused_then_retried": dict(soak.refused),
            "faults": dict(Counter(f["kind"] for f in soak.faults)),
            "fault_log": soak.faults,
            "wall_s": round(time.perf_counter() - started, 1),
        }
    )
    return report


def main(
    minutes: float = typer.Option(30.0, help="How long users submit while faults hit."),
    users: int = typer.Option(4, help="Simulated users (each its own owner)."),
    faults: str = typer.Option(",".join(FAULTS), help=f"Comma-separated kinds of {FAULTS}."),
    no_postgres: bool = typer.Option(
        False, "--no-postgres", help="Leave the machine's PostgreSQL alone (no restarts)."
    ),
    fault_every_s: float = typer.Option(60.0, help="Seconds between faults."),
    drain_s: float = typer.Option(900.0, help="Seconds the jobs may take to end afterwards."),
    model: str = typer.Option("tiny.en"),
    seed: int = typer.Option(1),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    kinds = [k.strip() for k in faults.split(",") if k.strip()]
    if no_postgres:
        kinds = [k for k in kinds if k != "postgres"]
    unknown = set(kinds) - set(FAULTS)
    if unknown or not kinds:
        raise typer.BadParameter(f"unknown faults {sorted(unknown)}; use some of {FAULTS}")
    root = Path(tempfile.mkdtemp(prefix="aisubs-chaos-"))
    with fresh_pg_database("aisubs_chaos") as dsn:
        env = {**fast_recovery_env(), "AISUBS_STORE__BACKEND": "postgres",
               "AISUBS_STORE__POSTGRES_DSN": dsn}  # fmt: skip
        svc = start_service(root, model, env)
        try:
            keys = create_keys(svc.env, [f"chaos{i:02d}" for i in range(users)])
            report = {"cold_start_s": round(svc.last_start_s, 1)}
            report.update(
                asyncio.run(soak_run(svc, keys, minutes, kinds, fault_every_s, drain_s, seed))
            )
        finally:
            report_stop = svc.stop()
    report["stopped_cleanly"] = report_stop
    print(json.dumps(report) if json_out else json.dumps(report, indent=2))


if __name__ == "__main__":
    typer.run(main)
