"""The one speech-recognition interface every engine implements.

The pipeline hands an engine a decoded array and gets a :class:`aisubs.transcript.Transcript`
back; which library runs underneath (faster-whisper, openai-whisper) is a settings choice.
Options are a plain dataclass whose defaults come from :class:`aisubs.settings.ASRSettings`,
so a request can override a few fields without knowing the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from aisubs.audio import CancelCheck, FractionProgress
from aisubs.audio import raise_if_cancelled as _raise_if_cancelled
from aisubs.errors import InvalidRequest
from aisubs.settings import ASRSettings
from aisubs.transcript import Transcript

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True, slots=True)
class ASROptions:
    """What to recognise and how; one object per request.

    language: ISO code such as "en"; None detects it (and reports its probability).
    language_per_window: with ``language`` None, detect per window instead of once.
    decoding: "windows" (VAD-first, checked and re-decoded) or "sequential" (long-form).
    window_s: the longest window of speech decoded in one pass.
    task: "transcribe" keeps the spoken language, "translate" outputs English.
    initial_prompt: text that primes vocabulary and style for the first window.
    hotwords: words or phrases to favour (names, jargon), comma or space separated.
    beam_size: beam search width at temperature 0.
    vad_filter: skip non-speech found by Silero VAD (saves time, avoids hallucinations).
    word_timestamps: per-word timing (needed for subtitles and speaker attribution).
    batched: faster-whisper's batched pipeline (faster on GPU, same output contract).
    batch_size: windows per batch when batched.
    batch_chunk_s: longest VAD chunk the batched pipeline decodes in one pass. Batched
        decoding never seeks inside a chunk, so when the model ends a chunk early the rest
        is lost: with 30 s chunks a 180 s test lost 13 words of a phone call; 15 s held.
    condition_on_previous_text: feed the previous window's text as a prompt (off by default:
        on long audio it lets one hallucination repeat for minutes).
    temperatures: fallback schedule when a window fails the compression/log-prob checks.
    hallucination_silence_threshold: skip silent stretches longer than this (seconds) around
        a suspected hallucination (needs word timestamps); None disables the check.
    """

    language: str | None = None
    # Detect the language of every window (a file that switches language mid-way); the
    # segments then carry their own language. Off: detect once from the first speech.
    language_per_window: bool = False
    task: Task = "transcribe"
    initial_prompt: str | None = None
    hotwords: str | None = None
    beam_size: int = 5
    decoding: Literal["windows", "sequential"] = "windows"
    window_s: float = 30.0
    vad_filter: bool = True
    word_timestamps: bool = True
    batched: bool = False
    batch_size: int = 8
    batch_chunk_s: int = 15
    condition_on_previous_text: bool = False
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    hallucination_silence_threshold: float | None = None
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6

    def __post_init__(self) -> None:
        if self.task not in ("transcribe", "translate"):
            raise InvalidRequest(f"unknown ASR task {self.task!r}")
        if self.beam_size < 1 or self.batch_size < 1:
            raise InvalidRequest("beam_size and batch_size must be at least 1")
        if not 1 <= self.batch_chunk_s <= 30:
            raise InvalidRequest("batch_chunk_s must be between 1 and 30 seconds")
        if not self.temperatures:
            raise InvalidRequest("temperatures must not be empty")

    @classmethod
    def from_settings(cls, settings: ASRSettings, **overrides: object) -> ASROptions:
        """Defaults from settings, then per-request overrides."""
        base = cls(
            beam_size=settings.beam_size,
            decoding=settings.decoding,
            window_s=settings.window_s,
            vad_filter=settings.vad_filter,
            word_timestamps=settings.word_timestamps,
            batched=settings.batched,
            batch_size=settings.batch_size,
            condition_on_previous_text=settings.condition_on_previous_text,
            temperatures=tuple(settings.temperatures),
            hallucination_silence_threshold=settings.hallucination_silence_threshold,
        )
        return replace(base, **overrides)  # type: ignore[arg-type]


@runtime_checkable
class ASREngine(Protocol):
    """A loaded speech recogniser, reused across many sequential calls."""

    name: str
    model_name: str

    def transcribe(
        self,
        audio: np.ndarray,
        options: ASROptions,
        progress: FractionProgress | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Transcript:
        """Recognise 16 kHz mono float32 ``audio``.

        Calls ``progress`` with the fraction of audio done (0..1) as segments complete and
        raises :class:`aisubs.errors.Cancelled` as soon as ``should_cancel()`` turns true
        between segments.
        """
        ...


def check_audio(audio: np.ndarray) -> np.ndarray:
    """Validate the array contract shared by every engine (16 kHz mono float32)."""
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        raise InvalidRequest("ASR input must be a 1-D array of 16 kHz mono samples")
    if audio.dtype != np.float32:
        audio = audio.astype(np.float32)
    return audio


def raise_if_cancelled(should_cancel: CancelCheck | None) -> None:
    _raise_if_cancelled(should_cancel, "transcription")
