"""pyannote.audio pipelines behind the :class:`~aisubs.diarization.base.Diarizer` contract.

Used when the operator supplies a pipeline: a local directory holding ``config.yaml`` and
its checkpoints (fully offline), or a hub id plus token. Audio is always handed over as an
in-memory waveform, so pyannote never decodes files itself (its file decoding needs
torchcodec/torchaudio extensions that CPU installs may lack; see
:mod:`aisubs.diarization.torchaudio_compat`).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from typing import Any

import numpy as np
import torch

from aisubs.audio import SAMPLE_RATE, CancelCheck, raise_if_cancelled
from aisubs.diarization.base import canonical_turns, resolve_speaker_bounds, validate_audio
from aisubs.diarization.torchaudio_compat import import_torchaudio
from aisubs.errors import Cancelled, ModelError, ModelNotFound
from aisubs.settings import DiarizationSettings
from aisubs.transcript import SpeakerTurn

log = logging.getLogger(__name__)

DEFAULT_HUB_PIPELINE = "pyannote/speaker-diarization-community-1"


def load_pyannote_pipeline(source: str | None, token: str | None, *, device: str = "cpu") -> Any:
    """Load a ``pyannote.audio.Pipeline`` from a local directory/config or the hub."""
    import_torchaudio()
    with warnings.catch_warnings():
        # pyannote warns at import that torchcodec cannot decode files; we never ask it to.
        warnings.filterwarnings("ignore", message=".*torchcodec.*", category=UserWarning)
        from pyannote.audio import Pipeline

    checkpoint = source or DEFAULT_HUB_PIPELINE
    is_local = os.path.exists(checkpoint)
    if not is_local and token is None:
        raise ModelNotFound(
            f"pyannote pipeline {checkpoint!r} is not a local path and no token was given"
        )
    try:
        pipeline = Pipeline.from_pretrained(checkpoint, token=token)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFound(f"cannot load pyannote pipeline {checkpoint!r}: {exc}") from exc
    if pipeline is None:  # from_pretrained's way of saying "could not download"
        raise ModelNotFound(f"pyannote pipeline {checkpoint!r} could not be fetched")
    pipeline.to(torch.device(device))
    return pipeline


def _annotation(output: Any) -> Any:
    """pyannote 4 returns ``DiarizeOutput``; older pipelines return an ``Annotation``."""
    return getattr(output, "speaker_diarization", output)


class PyannoteDiarizer:
    """Runs a loaded pyannote pipeline; one call at a time per instance."""

    def __init__(self, settings: DiarizationSettings, pipeline: Any | None = None) -> None:
        from aisubs.diarization.embedded import resolve_device

        self.settings = settings
        if settings.cpu_threads > 0:
            torch.set_num_threads(settings.cpu_threads)
        self.pipeline = pipeline or load_pyannote_pipeline(
            settings.pyannote_pipeline,
            settings.pyannote_token,
            device=resolve_device(settings.device),
        )
        self._lock = threading.Lock()

    def diarize(
        self,
        audio: np.ndarray,
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> list[SpeakerTurn]:
        bounds = resolve_speaker_bounds(
            num_speakers, min_speakers, max_speakers, default_max=self.settings.max_speakers
        )
        samples = validate_audio(audio)
        raise_if_cancelled(should_cancel, "diarization")
        if len(samples) == 0:
            return []
        waveform = {"waveform": torch.from_numpy(samples)[None, :], "sample_rate": SAMPLE_RATE}

        def hook(*_args: Any, **_kwargs: Any) -> None:
            # pyannote calls this between steps and batches
            raise_if_cancelled(should_cancel, "diarization")

        kwargs: dict[str, Any] = {"hook": hook}
        if bounds.fixed is not None:
            kwargs["num_speakers"] = bounds.fixed
        else:
            kwargs["min_speakers"] = bounds.min_speakers
            kwargs["max_speakers"] = bounds.max_speakers
        with self._lock:
            try:
                output = self.pipeline(waveform, **kwargs)
            except Cancelled:
                raise
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"pyannote pipeline failed: {exc}", retryable=True) from exc
        annotation = _annotation(output)
        return canonical_turns(
            (segment.start, segment.end, label)
            for segment, _, label in annotation.itertracks(yield_label=True)
        )
