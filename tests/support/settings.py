"""The one settings factory of the tests: everything under a temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aisubs.settings import Settings
from tests.support.paths import MODELS

# tiny.en from the shared model cache, greedy: the fast model of the end-to-end tests.
TINY_ASR: dict[str, Any] = {"model": "tiny.en", "cache_dir": str(MODELS), "beam_size": 1}
# Heartbeats every 0.2 s and retries at once: executor tests finish in seconds.
QUICK_QUEUE: dict[str, Any] = {
    "heartbeat_seconds": 0.2,
    "retry_min_seconds": 0,
    "retry_max_seconds": 0,
}


def make_settings(tmp: Path, **sections: dict[str, Any]) -> Settings:
    """Settings over ``tmp``: a SQLite store ``tmp/"jobs.sqlite3"``, media under
    ``tmp/"media"`` and results under ``tmp/"results"``. Each keyword is a settings section
    whose fields are merged over these (``queue={"lease_seconds": 5}``)."""
    base: dict[str, dict[str, Any]] = {
        "store": {"backend": "sqlite", "sqlite_path": tmp / "jobs.sqlite3"},
        "media": {"storage_url": str(tmp / "media"), "results_url": str(tmp / "results")},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings(**base)  # type: ignore[arg-type]
