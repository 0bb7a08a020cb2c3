"""Shared, session-scoped models for the pipeline and runner tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from aisubs.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_settings(tmp: Path, **sections: Any) -> Settings:
    base: dict[str, Any] = {
        "store": {"backend": "sqlite", "sqlite_path": str(tmp / "q.sqlite3")},
        "media": {"storage_url": str(tmp / "media"), "results_url": str(tmp / "results")},
        "asr": {"model": "tiny.en", "cache_dir": str(REPO / "var" / "models"), "beam_size": 1},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings(**base)


@pytest.fixture(scope="session")
def tiny_engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from aisubs.asr import load_asr_engine

    return load_asr_engine(make_settings(tmp_path_factory.mktemp("m")).asr)
