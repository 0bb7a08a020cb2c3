"""scripts/failover.py, small: scenarios a (Transcriber killed mid-job), b (dispatcher
killed) and c (whole Ray cluster killed and restarted on the same SQLite store), three real
jobs each, on a service of its own (scripts/serve.py with its own RAY_TMPDIR and ports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_failover_scenarios_lose_and_duplicate_nothing() -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # A killed stage is noticed by its timeout: keep it short for three short jobs.
    env["AISUBS_SERVE__STAGE_TIMEOUT_BASE_S"] = "20"
    args = [sys.executable, str(REPO / "scripts" / "failover.py"), "--scenarios", "a,b,c",
            "--jobs", "3", "--timeout", "600", "--json"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=1500, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report))
    for name in ("transcriber_killed", "dispatcher_killed", "cluster_restarted"):
        result = report[name]
        assert result["jobs"] == 3, (name, result)
        assert result["completed"] == 3, (name, result)
        assert result["lost"] == 0, (name, result)
        assert result["duplicated"] == 0, (name, result)
        assert result["running_at_fault"] >= 1, (name, result)
        assert result["recovery_s"] is not None, (name, result)
    # The job killed mid-ASR was retried (once or more); nothing else needs more than that.
    assert report["transcriber_killed"]["max_attempts"] >= 2
    assert report["dispatcher_killed"]["max_attempts"] >= 1
