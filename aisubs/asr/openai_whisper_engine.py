"""openai-whisper (PyTorch) engine: the reference implementation, same output contract.

Weights, in order: a ``.pt`` checkpoint given as the model setting; a real checkpoint already
in whisper's download folder (its SHA-256 is checked by ``whisper.load_model``); a download
when ``allow_download`` is set; otherwise a checkpoint converted once from the same
CTranslate2 weights faster-whisper uses (:mod:`aisubs.asr.openai_checkpoint`).

openai-whisper has neither VAD nor hotwords nor a per-segment callback, so this engine:

* removes non-speech exactly as faster-whisper does (Silero VAD with faster-whisper's
  defaults, speech concatenated, timestamps mapped back), so both engines see the same audio;
* appends hotwords to the initial prompt (where faster-whisper puts them as well);
* runs ``whisper.transcribe`` over consecutive pieces of about two minutes cut at silences,
  checking cancellation and reporting progress between pieces.
"""

from __future__ import annotations

import logging
import os
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
from aisubs.asr.openai_checkpoint import build_model, cached_checkpoint, load_checkpoint
from aisubs.errors import ModelError, ModelNotFound
from aisubs.media.decode import SAMPLE_RATE
from aisubs.settings import ASRSettings
from aisubs.transcript import Segment, Transcript, Word

log = logging.getLogger(__name__)

PIECE_S = 120.0  # audio per whisper.transcribe call: the cancellation/progress granularity


def _whisper_download_root() -> Path:
    default = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.getenv("XDG_CACHE_HOME", default)) / "whisper"


class _SpeechOnly:
    """Speech regions of the audio, concatenated, with a map back to original times."""

    def __init__(self, audio: np.ndarray):
        from faster_whisper.vad import (
            SpeechTimestampsMap,
            VadOptions,
            collect_chunks,
            get_speech_timestamps,
        )

        self.chunks = get_speech_timestamps(audio, VadOptions())
        pieces, _ = collect_chunks(audio, self.chunks)
        self.audio = np.concatenate(pieces).astype(np.float32, copy=False)
        self.map = SpeechTimestampsMap(self.chunks, SAMPLE_RATE)
        lengths = np.cumsum([c["end"] - c["start"] for c in self.chunks])
        self.boundaries = [int(x) for x in lengths[:-1]]

    def restore(self, segment: Segment) -> Segment:
        """Same mapping as faster-whisper's ``restore_speech_timestamps``."""
        if segment.words:
            words = []
            for w in segment.words:
                idx = self.map.get_chunk_index((w.start + w.end) / 2)
                words.append(
                    Word(
                        start=self.map.get_original_time(w.start, idx),
                        end=self.map.get_original_time(w.end, idx),
                        word=w.word,
                        probability=w.probability,
                    )
                )
            return Segment(words[0].start, words[-1].end, segment.text, tuple(words))
        return Segment(
            self.map.get_original_time(segment.start),
            self.map.get_original_time(segment.end, is_end=True),
            segment.text,
        )


def _segment(raw: dict[str, Any], offset: float) -> Segment:
    words = tuple(
        Word(
            start=round(float(w["start"]) + offset, 3),
            end=round(float(w["end"]) + offset, 3),
            word=str(w["word"]),
            probability=float(w["probability"]),
        )
        for w in raw.get("words") or ()
    )
    return Segment(
        start=round(float(raw["start"]) + offset, 3),
        end=round(float(raw["end"]) + offset, 3),
        text=str(raw["text"]),
        words=words,
    )


class OpenAIWhisperEngine:
    """:class:`aisubs.asr.base.ASREngine` backed by ``whisper.transcribe``."""

    name = "openai-whisper"

    def __init__(self, settings: ASRSettings):
        import torch

        self.settings = settings
        self.model_name = settings.model
        want_cuda = settings.device in ("auto", "cuda")
        if settings.device == "cuda" and not torch.cuda.is_available():
            raise ModelError("AISUBS_ASR__DEVICE=cuda but torch sees no GPU")
        self.device = "cuda" if want_cuda and torch.cuda.is_available() else "cpu"
        if self.device == "cpu" and settings.cpu_threads > 0:
            torch.set_num_threads(settings.cpu_threads)
        self.model, self.source = self._load()
        self.model.eval()
        log.info(
            "openai-whisper %r loaded from %s on %s (fp%d)",
            self.model_name,
            self.source,
            self.device,
            16 if self.device == "cuda" else 32,
        )

    def _load(self) -> tuple[Any, str]:
        import whisper

        name = self.settings.model
        path = Path(name).expanduser()
        if path.suffix == ".pt":
            if not path.is_file():
                raise ModelNotFound(f"checkpoint {path} does not exist (AISUBS_ASR__MODEL)")
            return whisper.load_model(str(path), device=self.device), str(path)
        root = _whisper_download_root()
        if name in whisper.available_models() and (root / f"{name}.pt").is_file():
            return whisper.load_model(name, device=self.device, download_root=str(root)), str(
                root / f"{name}.pt"
            )
        if name in whisper.available_models() and self.settings.allow_download:
            target = self.settings.cache_dir / "openai-whisper"
            try:
                return whisper.load_model(name, device=self.device, download_root=str(target)), (
                    f"download into {target}"
                )
            except Exception as exc:  # urllib errors, checksum RuntimeError
                raise ModelNotFound(f"could not download openai-whisper {name!r}: {exc}") from exc
        model_dir = resolve_model(name, self.settings)
        ckpt = cached_checkpoint(model_dir, name, self.settings.cache_dir)
        return build_model(load_checkpoint(ckpt), self.device), f"{ckpt} (from {model_dir})"

    @property
    def is_multilingual(self) -> bool:
        return bool(self.model.is_multilingual)

    def _detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        import whisper

        mel = whisper.log_mel_spectrogram(
            whisper.pad_or_trim(audio), n_mels=self.model.dims.n_mels
        ).to(self.device)
        _, probs = self.model.detect_language(mel)
        language = max(probs, key=probs.get)
        return str(language), float(probs[language])

    def _prompt(self, options: ASROptions) -> str | None:
        parts = [p.strip() for p in (options.hotwords, options.initial_prompt) if p and p.strip()]
        return " ".join(parts) or None

    def transcribe(
        self,
        audio: np.ndarray,
        options: ASROptions,
        progress: FractionProgress | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Transcript:
        import torch
        import whisper

        audio = check_audio(audio)
        raise_if_cancelled(should_cancel)
        duration = audio.size / SAMPLE_RATE
        speech = _SpeechOnly(audio) if options.vad_filter else None
        work = speech.audio if speech is not None else audio
        task = options.task
        if not self.is_multilingual:
            language: str | None = "en"
            probability: float | None = 1.0
            task = "transcribe"
        elif options.language:
            language, probability = options.language, 1.0
        elif work.size:
            language, probability = self._detect_language(work)
        else:
            language, probability = None, None
        segments: list[Segment] = []
        if work.size == 0:
            if progress is not None:
                progress(1.0)
            return Transcript(language, duration, segments, probability)

        cuts = plan_cuts(work, PIECE_S, speech.boundaries if speech is not None else [])
        start = 0
        for i, end in enumerate(cuts):
            raise_if_cancelled(should_cancel)
            with torch.inference_mode():
                result = whisper.transcribe(
                    self.model,
                    work[start:end],
                    verbose=None,
                    language=language,
                    task=task,
                    temperature=options.temperatures,
                    compression_ratio_threshold=options.compression_ratio_threshold,
                    logprob_threshold=options.log_prob_threshold,
                    no_speech_threshold=options.no_speech_threshold,
                    condition_on_previous_text=options.condition_on_previous_text,
                    initial_prompt=self._prompt(options) if i == 0 else None,
                    word_timestamps=options.word_timestamps,
                    hallucination_silence_threshold=options.hallucination_silence_threshold
                    if options.word_timestamps
                    else None,
                    fp16=self.device == "cuda",
                    beam_size=options.beam_size,
                    best_of=5,
                )
            offset = start / SAMPLE_RATE
            for raw in result["segments"]:
                segment = _segment(raw, offset)
                if speech is not None:
                    segment = speech.restore(segment)
                if segment.text.strip():
                    segments.append(segment)
            start = end
            if progress is not None:
                progress(min(1.0, end / work.size))
        return Transcript(language, duration, segments, probability)
