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
# What lives in the test database's public schema, by kind, in the order it can be dropped.
PUBLIC_OBJECTS = [
    ("TABLE", "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"),
    ("FUNCTION", "SELECT p.oid::regprocedure::text FROM pg_proc p"
                 " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"),
    ("TYPE", "SELECT quote_ident(t.typname) FROM pg_type t"
             " JOIN pg_namespace n ON n.oid = t.typnamespace"
             " WHERE n.nspname = 'public' AND t.typtype = 'e'"),
]  # fmt: skip


def public_objects(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return [(kind, row[0]) for kind, query in PUBLIC_OBJECTS for row in conn.execute(query)]


def test_replicas_close_their_store_connections_on_shutdown(
    local_ray: Any, pg_dsn: str, tmp_path: Path
) -> None:
    from ray import serve

    from serve_app.app import build_app

    db = f"aisubs_shutdown_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    # The Serve controller's backlog policy opens the store of its own environment (the
    # default DSN), so the queue's migrations land in the test database too: undone below.
    public_before = set(public_objects(pg_dsn))
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
        created = [o for o in public_objects(pg_dsn) if o not in public_before]
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for kind, name in created:  # leave the test database as it was
                qualified = name if kind == "FUNCTION" else f"public.{name}"
                conn.execute(f"DROP {kind} IF EXISTS {qualified} CASCADE")
