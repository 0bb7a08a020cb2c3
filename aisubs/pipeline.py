"""The transcription pipeline as plain stages, shared by the CLI and the Ray job runner.

decode -> [ASR || diarization] -> speaker attribution -> optional translation -> cues ->
artifacts. ASR and diarization only need the decoded audio, so they run concurrently: in
threads here (:class:`LocalPipeline`), in separate warm-model deployments under Ray (the
runner calls :func:`asr_options`, :func:`diarization_hints` and :func:`assemble` around its
remote calls). Nothing in this module imports Ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from aisubs.asr.base import ASREngine, ASROptions
from aisubs.diarization.base import Diarizer
from aisubs.errors import AisubsError, PipelineError
from aisubs.media.decode import SAMPLE_RATE, decode_audio
from aisubs.queue.models import JobOptions
from aisubs.settings import Settings, SubtitleSettings
from aisubs.subtitles.attribution import assign_speakers
from aisubs.subtitles.cues import Cue, build_cues
from aisubs.subtitles.writers import render
from aisubs.transcript import SpeakerTurn, Transcript
from aisubs.translation import Translator, WhisperTranslator, check_target, overlay_translation

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float], None]
CancelCheck = Callable[[], bool]

# Share of the whole job each stage stands for in the progress fraction.
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "fetch": (0.0, 0.05),
    "decode": (0.05, 0.1),
    "asr": (0.1, 0.85),
    "translate": (0.85, 0.95),
    "subtitles": (0.95, 1.0),
}


def stage_fraction(stage: str, within: float) -> float:
    """Overall progress when ``stage`` is ``within`` (0..1) done."""
    lo, hi = STAGE_SPANS[stage]
    return lo + (hi - lo) * min(1.0, max(0.0, within))


@dataclass(slots=True)
class PipelineResult:
    transcript: Transcript
    cues: list[Cue]
    # Output format ("srt", "vtt", "json", "txt") -> file contents.
    outputs: dict[str, str]
    audio_duration_s: float
    timings: dict[str, float] = field(default_factory=dict)


def translation_target(options: JobOptions) -> str | None:
    """The language subtitles should be translated to, or None to keep the spoken one."""
    if options.translate_to is not None:
        return options.translate_to.lower()
    return "en" if options.task == "translate" else None


def validate_options(options: JobOptions) -> None:
    """Refuse options the pipeline cannot honour, at submit time rather than mid-job."""
    check_target(translation_target(options))


def asr_options(options: JobOptions, base: ASROptions) -> ASROptions:
    """The source-language transcription request for a job.

    Translation is a separate pass (:class:`WhisperTranslator`) so that speaker attribution
    and cue timing always come from the source-language words.
    """
    return replace(
        base, language=options.language, task="transcribe", initial_prompt=options.prompt
    )


def transcription_stage(request: ASROptions) -> str:
    """The progress stage an ASR request belongs to: the source pass or the translation."""
    return "translate" if request.task == "translate" else "asr"


def diarization_hints(options: JobOptions) -> dict[str, int | None]:
    return {
        "num_speakers": options.num_speakers,
        "min_speakers": options.min_speakers,
        "max_speakers": options.max_speakers,
    }


def assemble(
    transcript: Transcript,
    turns: list[SpeakerTurn] | None,
    options: JobOptions,
    rules: SubtitleSettings,
    translated: Transcript | None = None,
) -> PipelineResult:
    """Join ASR and diarization output and render every requested format."""
    started = time.perf_counter()
    attributed = assign_speakers(transcript, turns) if turns else transcript
    final = attributed
    if translated is not None:
        target = translation_target(options) or "en"
        final = overlay_translation(attributed, translated, target)
    cues = build_cues(final, rules, speaker_labels=bool(turns))
    outputs: dict[str, str] = {fmt: render(final, cues, fmt) for fmt in options.formats}
    return PipelineResult(
        transcript=final,
        cues=cues,
        outputs=outputs,
        audio_duration_s=transcript.duration,
        timings={"subtitles": time.perf_counter() - started},
    )


class LocalPipeline:
    """The whole pipeline in one process: the CLI, evaluation and benchmarks use it."""

    def __init__(
        self,
        settings: Settings,
        asr: ASREngine,
        diarizer: Diarizer | None,
        translator: Translator | None = None,
    ):
        self.settings = settings
        self.asr = asr
        self.diarizer = diarizer
        self.base_asr_options = ASROptions.from_settings(settings.asr)
        self.translator = translator or WhisperTranslator(asr, self.base_asr_options)

    def run(
        self,
        source: str | Path,
        options: JobOptions,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> PipelineResult:
        validate_options(options)
        report = progress or (lambda stage, fraction: None)
        timings: dict[str, float] = {}

        t0 = time.perf_counter()
        report("decode", stage_fraction("decode", 0.0))
        audio = decode_audio(source, self.settings.media)
        timings["decode"] = time.perf_counter() - t0
        report("decode", stage_fraction("decode", 1.0))
        return self.run_audio(audio, options, report, should_cancel, timings)

    def run_audio(
        self,
        audio: np.ndarray,
        options: JobOptions,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        timings: dict[str, float] | None = None,
    ) -> PipelineResult:
        report = progress or (lambda stage, fraction: None)
        timings = dict(timings or {})
        request = asr_options(options, self.base_asr_options)
        want_turns = options.diarize and self.diarizer is not None

        def run_asr() -> Transcript:
            t = time.perf_counter()
            result = self.asr.transcribe(
                audio,
                request,
                progress=lambda f: report("asr", stage_fraction("asr", f)),
                should_cancel=should_cancel,
            )
            timings["asr"] = time.perf_counter() - t
            return result

        def run_diarization() -> list[SpeakerTurn]:
            assert self.diarizer is not None
            t = time.perf_counter()
            turns = self.diarizer.diarize(
                audio, should_cancel=should_cancel, **diarization_hints(options)
            )
            timings["diarization"] = time.perf_counter() - t
            return turns

        report("asr", stage_fraction("asr", 0.0))
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="aisubs-stage") as pool:
            asr_future = pool.submit(_staged, "asr", run_asr)
            turns_future = (
                pool.submit(_staged, "diarization", run_diarization) if want_turns else None
            )
            transcript = asr_future.result()
            turns = turns_future.result() if turns_future is not None else None
        if transcript.duration <= 0:
            transcript.duration = len(audio) / SAMPLE_RATE

        translated = None
        target = translation_target(options)
        if target is not None:
            report("translate", stage_fraction("translate", 0.0))
            t = time.perf_counter()
            translated = _staged(
                "translate",
                lambda: self.translator.translate(audio, transcript, target, should_cancel),
            )
            timings["translate"] = time.perf_counter() - t
        report("subtitles", stage_fraction("subtitles", 0.0))
        result = _staged(
            "subtitles",
            lambda: assemble(transcript, turns, options, self.settings.subtitles, translated),
        )
        result.timings = {**timings, **result.timings}
        report("subtitles", 1.0)
        return result


def _staged(stage: str, fn: Callable[[], Any]) -> Any:
    """Run one stage, tagging unexpected failures with the stage name for error reports."""
    try:
        return fn()
    except AisubsError:
        raise
    except Exception as exc:  # a bug or a library failure: worth a retry, say where
        log.exception("stage %s failed", stage)
        raise PipelineError(f"{stage} failed: {type(exc).__name__}: {exc}", stage=stage) from exc
