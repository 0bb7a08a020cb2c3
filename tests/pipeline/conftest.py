"""Shared, session-scoped models for the pipeline and runner tests."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.pipeline.pipeline_support import pipeline_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from aisubs.asr import load_asr_engine

    return load_asr_engine(pipeline_settings(tmp_path_factory.mktemp("m")).asr)
