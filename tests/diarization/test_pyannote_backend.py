"""pyannote.audio wiring, offline: a random-weight pipeline saved to disk and loaded back."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from aisubs.diarization import Diarizer, load_diarizer
from aisubs.diarization.torchaudio_compat import import_torchaudio
from aisubs.errors import InvalidRequest, ModelNotFound
from aisubs.settings import DiarizationSettings


def test_torchaudio_imports_on_cpu_torch() -> None:
    torchaudio = import_torchaudio()
    import torchaudio.compliance.kaldi as kaldi  # what pyannote's embeddings use

    assert torchaudio.__version__
    tone = torch.from_numpy(np.sin(np.arange(16000, dtype=np.float32) / 7))[None, :]
    features = kaldi.fbank(tone, num_mel_bins=20, sample_frequency=16000)
    assert features.shape == (98, 20)
    assert torch.isfinite(features).all()


def test_missing_pipeline_is_model_not_found(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelNotFound):
        load_diarizer(DiarizationSettings(backend="pyannote"))  # hub id, but no token
    with pytest.raises(ModelNotFound):
        load_diarizer(DiarizationSettings(pyannote_pipeline=str(tmp_path)))  # no config.yaml


@pytest.mark.slow
def test_random_pipeline_round_trip(random_pyannote_dir, sample_audio) -> None:  # type: ignore[no-untyped-def]
    settings = DiarizationSettings(backend="pyannote", pyannote_pipeline=str(random_pyannote_dir))
    diarizer = load_diarizer(settings)
    assert isinstance(diarizer, Diarizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights make pyannote warn about counts
        turns = diarizer.diarize(sample_audio, num_speakers=2)
    assert turns, "the loaded pipeline must run end to end and return turns"
    assert {t.speaker for t in turns} <= {"SPEAKER_00", "SPEAKER_01"}
    assert turns[0].speaker == "SPEAKER_00"
    assert [t.start for t in turns] == sorted(t.start for t in turns)
    assert all(0 <= t.start < t.end <= 30.0 + 1e-3 for t in turns)
    with pytest.raises(InvalidRequest):
        diarizer.diarize(sample_audio, min_speakers=2, max_speakers=1)
