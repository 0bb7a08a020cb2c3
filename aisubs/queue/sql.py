"""Named SQL queries kept in ``.sql`` files next to this package (procrastinate's layout).

A file holds several queries, each introduced by a ``-- name: <query_name>`` line; the text
up to the next such line is the query. ``sql/common/queries.sql`` holds the queries both
dialects run as written, with ``:name`` parameters; ``sql/<dialect>/queries.sql`` holds the
ones that really differ (locking clauses, JSON functions, time arithmetic). For PostgreSQL
(psycopg's ``%(name)s`` style) the ``:name`` parameters are rewritten when the files are read,
so a query that differs only in placeholders is written once.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Literal

Dialect = Literal["sqlite", "postgres"]
DIALECTS: tuple[Dialect, ...] = ("sqlite", "postgres")

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_COMMENT_LINE = re.compile(r"^\s*--.*$\n?", re.MULTILINE)
# ":name" but not the "::type" of a PostgreSQL cast nor a time literal such as '12:30'.
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def parse_named_queries(text: str) -> dict[str, str]:
    """Split a file into ``{name: sql}``; the text before the first name is a header.

    Whole-line comments are dropped from each query, so a parameter named in a comment
    never becomes a placeholder.
    """
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = _COMMENT_LINE.sub("", body).strip()
    return queries


def to_pyformat(query: str) -> str:
    """``:name`` parameters as psycopg's ``%(name)s`` (literal ``%`` doubled)."""
    return _PARAM.sub(r"%(\1)s", query.replace("%", "%%"))


def _read(folder: str) -> dict[str, str]:
    text = resources.files("aisubs.queue").joinpath("sql", folder, "queries.sql").read_text()
    return parse_named_queries(text)


@cache
def queries(dialect: Dialect) -> dict[str, str]:
    """All named queries of a dialect (read once), in the dialect's parameter style."""
    common = _read("common")
    own = _read(dialect)
    clash = sorted(set(common) & set(own))
    if clash:
        raise ValueError(f"queries {clash} are defined both in common and in {dialect}")
    merged = {**common, **own}
    if dialect == "postgres":
        merged = {name: to_pyformat(q) for name, q in merged.items()}
    return merged


def migrations(dialect: Dialect) -> list[tuple[str, str]]:
    """``(version, sql)`` of every migration of a dialect, in name order.

    The version is the file name without ``.sql`` (``0001_init``, ``20261128000000_job_queue``).
    """
    folder = resources.files("aisubs.queue").joinpath("sql", dialect, "migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]
