"""Pick and load the configured ASR engine (once; the caller keeps and reuses it)."""

from __future__ import annotations

from aisubs.asr.base import ASREngine
from aisubs.errors import InvalidRequest
from aisubs.settings import ASRSettings


def load_asr_engine(settings: ASRSettings) -> ASREngine:
    """Load the engine named by ``settings.engine`` with ``settings.model``.

    Heavy imports happen here, not at module import, so importing :mod:`aisubs.asr` stays
    cheap for processes that never transcribe.
    """
    if settings.engine == "faster-whisper":
        from aisubs.asr.faster_whisper_engine import FasterWhisperEngine

        return FasterWhisperEngine(settings)
    if settings.engine == "openai-whisper":
        from aisubs.asr.openai_whisper_engine import OpenAIWhisperEngine

        return OpenAIWhisperEngine(settings)
    raise InvalidRequest(f"unknown ASR engine {settings.engine!r}")
