"""Replicas release their job-store connections when Serve shuts them down.

A private PgBouncer stands between the application and its own fresh database, so every
client connection it logs belongs to the app's replicas. A store closed on shutdown says
goodbye ("client close request"); a process that just dies leaves PgBouncer with
"client unexpected eof" for each of its connections (and a real database with idle
server sessions until they time out).
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.paths import MODELS
from tests.support.pgbouncer import pgbouncer_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.postgres]

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# What the queue's migrations create; the Serve controller's backlog policy opens the store
# of its own environment (the default DSN), so the test database gets them too.
QUEUE_OBJECTS = ("aisubs_schema_migrations", "api_keys", "fair_clock", "job_events", "jobs",
                 "owner_load", "queue_metrics")  # fmt: skip


def test_replicas_close_their_store_connections_on_shutdown(
    local_ray: Any, pg_dsn: str, tmp_path: Path
) -> None:
    from ray import serve

    from serve_app.app import build_app

    db = f"aisubs_shutdown_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    with psycopg.connect(pg_dsn) as conn:
        public_queue = conn.execute("SELECT to_regclass('public.jobs')").fetchone()[0]
    bouncer = pgbouncer_or_skip(tmp_path / "bouncer", dbname=db)
    app = f"shutdown-{uuid.uuid4().hex[:6]}"
    settings = {
        "store": {"backend": "postgres", "postgres_dsn": bouncer.dsn, "pooled": True},
        "media": {"storage_url": str(tmp_path / "media"), "results_url": str(tmp_path / "r")},
        "asr": {"model": "tiny.en", "cache_dir": str(MODELS)},
        "serve": {"min_replicas": 0, "max_replicas": 1, "transcriber_cpus": 0.1,
                  "diarizer_cpus": 0.1},
    }  # fmt: skip
    try:
        serve.run(build_app({"settings": settings}), name=app, route_prefix=f"/{app}")
        base = f"http://127.0.0.1:{local_ray.port}/{app}"
        deadline = time.monotonic() + 120
        while True:  # the ingress answers from its store: every replica is up
            try:
                if httpx.get(f"{base}/readyz", timeout=5).json()["store"]["ok"]:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            assert time.monotonic() < deadline, "the app never became ready"
            time.sleep(0.5)
        logins = len(re.findall(r"login attempt", bouncer.log_text()))
        assert logins >= 3  # ingress, dispatcher and runner hold connections
        serve.delete(app)
        time.sleep(2)
        log = bouncer.log_text()
        closed = len(re.findall(r"closing because: client close request", log))
        dropped = re.findall(r".*closing because: client unexpected eof.*", log)
        assert not dropped, dropped
        assert closed >= logins, log[-3000:]
    finally:
        bouncer.stop()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if public_queue is None:  # leave the test database as it was
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                tables = ", ".join(f"public.{t}" for t in QUEUE_OBJECTS)
                conn.execute(f"DROP TABLE IF EXISTS {tables} CASCADE")
                conn.execute("DROP TYPE IF EXISTS public.job_state")
                conn.execute("DROP FUNCTION IF EXISTS public.jobs_track_owner_load()")
