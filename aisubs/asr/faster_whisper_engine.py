"""faster-whisper (CTranslate2) engine: the default, 4x+ faster than PyTorch Whisper.

Settings that keep long audio honest (both failure modes were measured on a 138 s clip):

* sequential decoding uses ``condition_on_previous_text=False`` by default and the full
  temperature fallback, so one bad window cannot seed repeated text in the next ones;
* the batched pipeline decodes *with* timestamps (its default ``without_timestamps=True``
  turns each 30 s window into a single segment that often stops after its first sentence,
  silently dropping the rest of the window) and over VAD chunks of at most 15 s
  (``ASROptions.batch_chunk_s``): it never seeks inside a chunk, so an early end-of-text
  loses the remainder, which 30 s chunks still did on a phone call.

The model is loaded once in the constructor and reused; calls are sequential.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from aisubs.asr.base import (
    ASROptions,
    CancelCheck,
    FractionProgress,
    check_audio,
    raise_if_cancelled,
)
from aisubs.asr.bundled import resolve_model
from aisubs.asr.chunking import plan_cuts
from aisubs.errors import ModelError
from aisubs.media.decode import SAMPLE_RATE
from aisubs.settings import ASRSettings
from aisubs.transcript import Segment, Transcript, Word

log = logging.getLogger(__name__)


def pick_device(device: str) -> str:
    """Resolve "auto" to "cuda" when CTranslate2 sees a GPU, else "cpu"."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def pick_compute_type(compute_type: str, device: str) -> str:
    """int8 on CPU, float16 on GPU unless the settings name one explicitly."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def _to_segment(seg: Any, offset: float = 0.0) -> Segment:
    words = tuple(
        Word(
            start=float(w.start) + offset,
            end=float(w.end) + offset,
            word=w.word,
            probability=float(w.probability),
        )
        for w in (seg.words or ())
    )
    return Segment(
        start=float(seg.start) + offset, end=float(seg.end) + offset, text=seg.text, words=words
    )


# faster-whisper computes the log-mel features (and their STFT intermediates) of the whole
# input at once: about 35 MB per minute of audio at peak. Long recordings are therefore
# transcribed in pieces of at most this length, cut in silence, so memory stays bounded
# whatever the duration (peak RSS was 1.0 GB for 5 min and 1.9 GB for 30 min before).
PIECE_S = 300.0


class FasterWhisperEngine:
    """:class:`aisubs.asr.base.ASREngine` backed by ``faster_whisper.WhisperModel``."""

    name = "faster-whisper"

    def __init__(self, settings: ASRSettings):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.settings = settings
        self.model_name = settings.model
        self.model_path: Path = resolve_model(settings.model, settings)
        self.device = pick_device(settings.device)
        self.compute_type = pick_compute_type(settings.compute_type, self.device)
        try:
            self.model = WhisperModel(
                str(self.model_path),
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=settings.cpu_threads,
                num_workers=1,
                local_files_only=not settings.allow_download,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"cannot load Whisper from {self.model_path}: {exc}") from exc
        self._batched = BatchedInferencePipeline(self.model)
        log.info(
            "faster-whisper %r loaded from %s on %s (%s, %d CPU threads)",
            self.model_name,
            self.model_path,
            self.device,
            self.compute_type,
            settings.cpu_threads,
        )

    @property
    def is_multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def _common_kwargs(self, options: ASROptions) -> dict[str, Any]:
        language = options.language
        task = options.task
        if not self.is_multilingual:
            language, task = "en", "transcribe"  # English-only model: nothing else to do
        return {
            "language": language,
            "task": task,
            "beam_size": options.beam_size,
            "initial_prompt": options.initial_prompt,
            "hotwords": options.hotwords,
            "word_timestamps": options.word_timestamps,
            "condition_on_previous_text": options.condition_on_previous_text,
            "temperature": list(options.temperatures),
            "compression_ratio_threshold": options.compression_ratio_threshold,
            "log_prob_threshold": options.log_prob_threshold,
            "no_speech_threshold": options.no_speech_threshold,
            "vad_filter": options.vad_filter,
        }

    def _run(self, audio: np.ndarray, options: ASROptions) -> tuple[Iterable[Any], Any]:
        kwargs = self._common_kwargs(options)
        if options.batched:
            if not options.vad_filter:
                # Batched decoding needs clip boundaries; without VAD cut at quiet points.
                ends = plan_cuts(audio, options.batch_chunk_s)
                starts = [0, *ends[:-1]]
                kwargs["clip_timestamps"] = [
                    {"start": a / SAMPLE_RATE, "end": b / SAMPLE_RATE}
                    for a, b in zip(starts, ends, strict=True)
                ]
            return self._batched.transcribe(
                audio,
                batch_size=options.batch_size,
                chunk_length=options.batch_chunk_s,
                without_timestamps=False,
                **kwargs,
            )
        return self.model.transcribe(
            audio,
            hallucination_silence_threshold=options.hallucination_silence_threshold
            if options.word_timestamps
            else None,
            **kwargs,
        )

    def transcribe(
        self,
        audio: np.ndarray,
        options: ASROptions,
        progress: FractionProgress | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Transcript:
        audio = check_audio(audio)
        raise_if_cancelled(should_cancel)
        duration = audio.size / SAMPLE_RATE
        # Pieces are views (no copies). The language found in the first piece is kept for
        # the rest, so a long recording is not re-detected (or re-labelled) piece by piece.
        ends = plan_cuts(audio, PIECE_S) if duration > PIECE_S * 1.2 else [audio.size]
        segments: list[Segment] = []
        language, probability = options.language, None
        start = 0
        for end in ends:
            piece_options = options if language is None else replace(options, language=language)
            segments_iter, info = self._run(audio[start:end], piece_options)
            if language is None or probability is None:
                language = info.language
                probability = float(info.language_probability)
            offset = start / SAMPLE_RATE
            # faster-whisper decodes lazily: each iteration step is one decoded segment, so
            # checking here stops work within one window of a cancellation.
            for seg in segments_iter:
                raise_if_cancelled(should_cancel)
                segment = _to_segment(seg, offset)
                if segment.text.strip():
                    segments.append(segment)
                if progress is not None and duration > 0:
                    progress(min(1.0, segment.end / duration))
            start = end
        if progress is not None:
            progress(1.0)
        return Transcript(
            language=language,
            duration=duration,
            segments=segments,
            language_probability=probability,
        )
