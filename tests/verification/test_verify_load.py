"""scripts/loadtest.py, small: 10 users (each its own owner) against the running app."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paths import REPO
from tests.verification.verify_support import Service

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_ten_users_no_job_dropped_or_rejected(verify_app: Service) -> None:
    users = verify_app.keys[2:12]
    assert len(users) == 10
    args = [sys.executable, str(REPO / "scripts" / "loadtest.py"), "--url", verify_app.base_url,
            "--users", "10", "--jobs-per-user", "1", "--timeout", "600", "--json"]  # fmt: skip
    for key in users:
        args += ["--key", key]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report))
    assert report["users"] == 10
    assert report["submitted"] == report["accepted"] == 10
    assert report["rejected"] == 0
    assert report["dropped"] == 0
    assert report["completed"] == 10, report
    assert report["failed"] == 0
    assert report["api_latency_ms"]["p50"] is not None
    assert report["queue_wait_s"]["max"] is not None
    assert report["audio_s"] > 0
