"""Paths and settings shared by the pipeline and runner tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aisubs.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"


def make_settings(tmp: Path, **sections: Any) -> Settings:
    base: dict[str, Any] = {
        "store": {"backend": "sqlite", "sqlite_path": str(tmp / "q.sqlite3")},
        "media": {"storage_url": str(tmp / "media"), "results_url": str(tmp / "results")},
        "asr": {"model": "tiny.en", "cache_dir": str(REPO / "var" / "models"), "beam_size": 1},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings(**base)
