"""Diarization fixtures: models load once per session; real speech from shared/data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aisubs.diarization.scoring import load_uem, references_for
from aisubs.settings import DiarizationSettings
from tests.support.paths import DATA, SAMPLE_WAV


def _data_dir() -> Path | None:
    """The shared data folder (tests.support.paths), if it has the diarization recordings."""
    return DATA if SAMPLE_WAV.is_file() else None


@dataclass
class DiarizationData:
    root: Path

    @property
    def sample_wav(self) -> Path:
        return self.root / "diarization" / "sample.wav"

    @property
    def sample_rttm(self) -> Path:
        return self.root / "diarization" / "sample.rttm"

    @property
    def ami(self) -> Path:
        return self.root / "diarization" / "ami"


def read_mono(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == 16_000
    return audio.mean(axis=1)


@pytest.fixture(scope="session")
def data() -> DiarizationData:
    root = _data_dir()
    if root is None:
        pytest.skip("shared/data with the diarization recordings is not available")
    return DiarizationData(root)


@pytest.fixture(scope="session")
def sample_audio(data: DiarizationData) -> np.ndarray:
    return read_mono(data.sample_wav)


@pytest.fixture(scope="session")
def ami_set(data: DiarizationData) -> dict[str, tuple[np.ndarray, object, object]]:
    """``{uri: (audio, reference Annotation, uem Timeline)}`` for the 12 AMI excerpts."""
    refs = references_for([data.ami / "train.rttm", data.ami / "development.rttm"])
    uems = {**load_uem(data.ami / "train.uem"), **load_uem(data.ami / "development.uem")}
    return {uri: (read_mono(data.ami / f"{uri}.wav"), refs[uri], uems[uri]) for uri in sorted(uems)}


@pytest.fixture(scope="session")
def embedded_diarizer():  # type: ignore[no-untyped-def]
    from aisubs.diarization import load_diarizer

    return load_diarizer(DiarizationSettings())


@pytest.fixture(scope="session")
def random_pyannote_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.diarization.random_pyannote_pipeline import build_random_pipeline

    return build_random_pipeline(tmp_path_factory.mktemp("pyannote-random"))
