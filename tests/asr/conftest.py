"""Shared ASR fixtures: each model is loaded once per session, weights assembled offline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aisubs.asr.base import ASREngine, ASROptions
from aisubs.media import decode_audio
from aisubs.settings import ASRSettings, MediaSettings
from tests.support.paths import JFK


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def _settings(cache: Path, model: str, engine: str = "faster-whisper") -> ASRSettings:
    return ASRSettings(model=model, cache_dir=cache, cpu_threads=2, engine=engine)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def base_settings(model_cache: Path) -> ASRSettings:
    return _settings(model_cache, "base")


@pytest.fixture(scope="session")
def tiny_settings(model_cache: Path) -> ASRSettings:
    return _settings(model_cache, "tiny.en")


@pytest.fixture(scope="session")
def fw_base(base_settings: ASRSettings) -> ASREngine:
    from aisubs.asr import load_asr_engine

    return load_asr_engine(base_settings)


@pytest.fixture(scope="session")
def fw_tiny(tiny_settings: ASRSettings) -> ASREngine:
    from aisubs.asr import load_asr_engine

    return load_asr_engine(tiny_settings)


@pytest.fixture(scope="session")
def ow_base(model_cache: Path) -> ASREngine:
    from aisubs.asr import load_asr_engine

    return load_asr_engine(_settings(model_cache, "base", engine="openai-whisper"))


@pytest.fixture(scope="session")
def jfk_audio() -> np.ndarray:
    return decode_audio(JFK, MediaSettings())


@pytest.fixture
def default_options(base_settings: ASRSettings) -> ASROptions:
    return ASROptions.from_settings(base_settings)
