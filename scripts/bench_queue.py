#!/usr/bin/env python
"""Benchmark the job store: submit N jobs, claim them from W processes, complete them.

Prints one JSON object (``--json``) or a readable summary. Phases:

1. submit ``--jobs`` jobs from ``--owners`` owners (random priority 1-10, random audio length);
2. ``position()`` of ``--position-samples`` random queued jobs on the full queue (latency);
3. W spawned worker processes claim ``--batch`` jobs per call until the queue is empty
   while the parent keeps timing ``position()`` of still-queued jobs (latency under load);
4. the same processes complete every job they claimed.

``lost`` = jobs not ``succeeded`` at the end; ``double_claimed`` = claims beyond one per job.
Per-owner running/queued caps are raised to the job count so the benchmark measures the
store, not the fairness caps. Runs against a fresh SQLite file or a fresh PostgreSQL schema
that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aisubs.queue.factory import open_store
from aisubs.queue.store import JobStore
from aisubs.settings import QueueSettings, Settings, StoreSettings


def _settings(args: argparse.Namespace) -> Settings:
    queue = QueueSettings(
        max_running_per_owner=args.jobs,
        max_queued_per_owner=args.jobs,
        max_queued_total=max(args.jobs, 10_000),
        lease_seconds=3600.0,
    )
    store = StoreSettings(
        backend=args.store,
        sqlite_path=Path(args.sqlite_path),
        postgres_dsn=args.dsn,
        pooled=args.pooled or None,
        pool_min_size=1,
        pool_max_size=2,
    )
    return Settings(store=store, queue=queue)


def _worker(args: argparse.Namespace, index: int, start: Any, middle: Any, out: Any) -> None:
    store = open_store(_settings(args), schema=args.schema)
    name = f"bench-{index}-{os.getpid()}"
    claimed: list[tuple[uuid.UUID, str]] = []
    start.wait()
    t0 = time.perf_counter()
    while True:
        jobs = store.claim(name, args.batch)
        if not jobs:
            break
        claimed.extend((j.id, j.lease_token or "") for j in jobs)
    t1 = time.perf_counter()
    middle.wait()
    t2 = time.perf_counter()
    completed = 0
    for job_id, token in claimed:
        store.complete(job_id, token, {"json": f"mem://{job_id}"}, compute_seconds=1.0)
        completed += 1
    t3 = time.perf_counter()
    store.close()
    out.put(
        {
            "ids": [str(i) for i, _ in claimed],
            "claim": (t0, t1),
            "complete": (t2, t3),
            "completed": completed,
        }
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _time_positions(store: JobStore, ids: list[uuid.UUID], workers: int) -> list[float]:
    times = []
    for job_id in ids:
        t = time.perf_counter()
        store.position(job_id, workers)
        times.append((time.perf_counter() - t) * 1000)
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    store = open_store(_settings(args), schema=args.schema)
    owners = [f"owner-{i:04d}" for i in range(args.owners)]
    t = time.perf_counter()
    ids = [
        store.submit(
            owners[i % args.owners],
            f"upload://bench/{i}",
            priority=rng.randint(1, 10),
            audio_duration_s=rng.uniform(10, 1800),
        ).id
        for i in range(args.jobs)
    ]
    submit_s = time.perf_counter() - t
    sample = rng.sample(ids, min(args.position_samples, len(ids)))
    pos_ms = _time_positions(store, sample, args.workers)

    ctx = mp.get_context("spawn")
    start, middle, out = ctx.Barrier(args.workers + 1), ctx.Barrier(args.workers), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(args, i, start, middle, out)) for i in range(args.workers)
    ]
    for p in procs:
        p.start()
    start.wait()
    # Latency while the workers claim: keep sampling jobs that may still be queued.
    load_ms: list[float] = []
    deadline = time.perf_counter() + 120
    while any(p.is_alive() for p in procs) and out.empty() and time.perf_counter() < deadline:
        load_ms.extend(_time_positions(store, rng.sample(ids, 5), args.workers))
        time.sleep(0.01)
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()

    claimed = [i for r in results for i in r["ids"]]
    claim_s = max(r["claim"][1] for r in results) - min(r["claim"][0] for r in results)
    complete_s = max(r["complete"][1] for r in results) - min(r["complete"][0] for r in results)
    stats = store.stats()
    succeeded = stats.completed_last_hour
    store.close()
    return {
        "store": args.store + (" (pooled)" if args.pooled else ""),
        "jobs": args.jobs,
        "owners": args.owners,
        "workers": args.workers,
        "batch": args.batch,
        "submits_per_s": round(args.jobs / submit_s, 1),
        "claims_per_s": round(len(claimed) / claim_s, 1),
        "completes_per_s": round(sum(r["completed"] for r in results) / complete_s, 1),
        "position_ms_p50": round(_percentile(pos_ms, 50), 3),
        "position_ms_p99": round(_percentile(pos_ms, 99), 3),
        "position_under_load_ms_p50": round(_percentile(load_ms, 50), 3),
        "position_under_load_ms_p99": round(_percentile(load_ms, 99), 3),
        "position_under_load_samples": len(load_ms),
        "lost": args.jobs - succeeded,
        "double_claimed": len(claimed) - len(set(claimed)),
        "left_queued_or_running": stats.queued + stats.running,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--owners", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50, help="jobs per claim call")
    parser.add_argument("--position-samples", type=int, default=500)
    parser.add_argument("--dsn", default=StoreSettings().postgres_dsn)
    parser.add_argument(
        "--pooled",
        action="store_true",
        help="the DSN is a transaction pooler (PgBouncer): prepared statements off",
    )
    parser.add_argument("--sqlite-path", default=None, help="default: a fresh temp file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.schema = None
    with tempfile.TemporaryDirectory(prefix="bench_queue_") as tmp:
        if args.store == "sqlite" and args.sqlite_path is None:
            args.sqlite_path = str(Path(tmp) / "bench.sqlite3")
        elif args.sqlite_path is None:
            args.sqlite_path = str(Path(tmp) / "unused.sqlite3")
        if args.store == "postgres":
            args.schema = f"bench_{uuid.uuid4().hex[:12]}"
        try:
            result = run(args)
        finally:
            if args.schema is not None:
                import psycopg
                from psycopg import sql

                with psycopg.connect(args.dsn, autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                            sql.Identifier(args.schema)
                        )
                    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    return 0 if result["lost"] == 0 and result["double_claimed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
