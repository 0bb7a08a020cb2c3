"""What every test process needs before anything imports Ray, plus the shared Ray cluster.

Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it is imported: "0" keeps a local test
cluster on 127.0.0.1 instead of the machine's interface address. The Makefile exports the
same values; this covers a plain `pytest` run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalRay:
    tmp: Path  # scratch space of this cluster's tests
    port: int  # Serve's HTTP proxy


@pytest.fixture(scope="session")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRay]:
    """One real local Ray cluster (fake GPUs) with Serve's proxy, for the whole session.

    Starting it costs ~25 s, so every Ray test shares it: the tests/serve and
    tests/verification apps run side by side under their own names and route prefixes.
    Serve's HTTP options are fixed by the first serve.start(), which happens here.
    """
    tmp = tmp_path_factory.mktemp("ray")
    home = tmp / "home"
    home.mkdir()
    # Private HOME and RAY_TMPDIR: nothing leaks into (or from) another Ray on the machine.
    os.environ.update({"HOME": str(home), "RAY_TMPDIR": str(tmp)})
    import ray
    from ray import serve

    ray.init(
        num_cpus=4,
        num_gpus=2,
        include_dashboard=False,
        _temp_dir=str(tmp / "r"),
        _node_ip_address="127.0.0.1",
        _system_config={"worker_niceness": 0},  # as scripts/serve.py and cluster.yaml
    )
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield LocalRay(tmp, port)
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test PostgreSQL (127.0.0.1:5432); skipped without it, failing in CI."""
    from tests.queue.queue_pg import find_dsn

    dsn, why = find_dsn()
    if dsn is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {why}")
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({why})")
    return dsn


@pytest.fixture(scope="session")
def pgbouncer(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A PgBouncer in transaction mode in front of the test database, for the session."""
    from tests.support.pgbouncer import pgbouncer_or_skip

    bouncer = pgbouncer_or_skip(tmp_path_factory.mktemp("pgbouncer"))
    yield bouncer
    bouncer.stop()
