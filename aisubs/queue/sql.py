"""Named SQL queries kept in ``.sql`` files next to this package (procrastinate's layout).

A file holds several queries, each introduced by a ``-- name: <query_name>`` line; the text
up to the next such line is the query. Both dialects define the same names.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Literal

Dialect = Literal["sqlite", "postgres"]

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse_named_queries(text: str) -> dict[str, str]:
    """Split a file into ``{name: sql}``; the text before the first name is a header."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip()
    return queries


@cache
def queries(dialect: Dialect) -> dict[str, str]:
    """All named queries of a dialect (read once)."""
    text = resources.files("aisubs.queue").joinpath("sql", dialect, "queries.sql").read_text()
    return parse_named_queries(text)


def migrations(dialect: Dialect) -> list[tuple[str, str]]:
    """``(version, sql)`` of every migration of a dialect, in name order.

    The version is the file name without ``.sql`` (``0001_init``, ``20261128000000_job_queue``).
    """
    folder = resources.files("aisubs.queue").joinpath("sql", dialect, "migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]
