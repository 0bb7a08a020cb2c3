"""scripts/chaos.py, short: 3 minutes of users submitting real clips while a random fault
hits every minute (any replica SIGKILLed, the whole cluster killed and restarted; not the
PostgreSQL restart, which would touch the machine's server), on a service of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.postgres]


def test_three_minutes_of_chaos_lose_and_duplicate_nothing() -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = [sys.executable, str(REPO / "scripts" / "chaos.py"), "--minutes", "3",
            "--no-postgres", "--users", "3", "--drain-s", "600", "--seed", "3",
            "--json"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report))
    assert report["jobs"] >= 6, report
    assert report["lost"] == 0, report
    assert report["duplicated"] == 0, report
    assert report["completed"] + report["failed"] == report["jobs"]
    assert report["completed"] >= report["jobs"] - 1, report  # an unlucky job may run out of tries
    assert sum(report["faults"].values()) >= 2, report
    assert "postgres" not in report["faults"]
    assert all("error" not in fault for fault in report["fault_log"]), report["fault_log"]
