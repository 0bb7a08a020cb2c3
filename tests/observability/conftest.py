"""Fixtures for the observability tests.

``live`` runs ``obs_live_service.py`` once per session, in its own process (its Ray
cluster needs the metrics agent on a port of its choosing and must not meet the session
cluster of ``tests/serve``), and hands over what it recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a real run of the app exported (see obs_live_service.py)."""
    out = tmp_path_factory.mktemp("obs-live") / "out.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(HERE / "obs_live_service.py"), str(out)],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.exists(), f"live service run wrote nothing:\n{proc.stderr[-5000:]}"
    result: dict[str, Any] = json.loads(out.read_text())
    assert proc.returncode == 0, f"live service run failed:\n{proc.stderr[-5000:]}"
    return result
