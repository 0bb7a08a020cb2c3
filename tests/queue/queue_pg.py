"""PostgreSQL helpers of the queue tests (finding the server, isolating schemas)."""

from __future__ import annotations

import os

import psycopg
from psycopg import sql

CANDIDATE_DSNS = [
    os.environ.get("AISUBS_TEST_PG_DSN", ""),
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
]
TABLES = ["job_events", "jobs", "owner_load", "fair_clock", "queue_metrics", "api_keys"]


def find_dsn() -> tuple[str | None, str]:
    errors = []
    for dsn in filter(None, CANDIDATE_DSNS):
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return dsn, ""
        except psycopg.Error as exc:
            errors.append(f"{dsn}: {exc}".strip())
    return None, "; ".join(errors)


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def truncate(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(schema, t) for t in TABLES)
            )
        )
