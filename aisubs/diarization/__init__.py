"""Speaker diarization: who spoke when.

``load_diarizer(settings.diarization)`` builds the configured backend once (models loaded,
ready for many calls); everything else codes against :class:`Diarizer`. Heavy imports
(torch models, pyannote) happen inside the backends, not at package import.
"""

from __future__ import annotations

from aisubs.diarization.base import Diarizer, resolve_speaker_bounds
from aisubs.settings import DiarizationSettings

__all__ = ["Diarizer", "load_diarizer", "resolve_speaker_bounds"]


def load_diarizer(settings: DiarizationSettings | None = None) -> Diarizer:
    """Build the diarizer the settings ask for.

    ``backend="pyannote"``, or a configured ``pyannote_pipeline``, selects pyannote.audio;
    otherwise the offline embedded backend (Silero VAD + Resemblyzer) is used.
    """
    settings = settings or DiarizationSettings()
    if settings.backend == "pyannote" or settings.pyannote_pipeline:
        from aisubs.diarization.pyannote_backend import PyannoteDiarizer

        return PyannoteDiarizer(settings)
    from aisubs.diarization.embedded import EmbeddedDiarizer

    return EmbeddedDiarizer(settings)
