"""The vocabulary every audio stage speaks: sample rate, cancellation, progress, stage names.

Decoding, ASR, diarization, translation and the orchestration all exchange 16 kHz mono
float32 arrays and poll the same kind of cancel check; defining those once keeps the stages
interchangeable and lets the pipeline import no queue or Ray code.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from aisubs.errors import Cancelled

SAMPLE_RATE = 16_000

# True once the work should stop (job cancelled, lease lost); polled between chunks of work.
CancelCheck = Callable[[], bool]
# Fraction (0..1) of one stage's work done.
FractionProgress = Callable[[float], None]
# (stage name, overall job fraction 0..1).
StageProgress = Callable[[str, float], None]


class Stage(enum.StrEnum):
    """The stages of a job, in the order they run (ASR and diarization side by side)."""

    FETCH = "fetch"
    DECODE = "decode"
    ASR = "asr"
    DIARIZATION = "diarization"
    TRANSLATE = "translate"
    SUBTITLES = "subtitles"


def raise_if_cancelled(should_cancel: CancelCheck | None, what: str = "work") -> None:
    """Raise :class:`aisubs.errors.Cancelled` when ``should_cancel()`` says so."""
    if should_cancel is not None and should_cancel():
        raise Cancelled(f"{what} cancelled")
