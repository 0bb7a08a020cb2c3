"""Translation stage: text in another language laid onto the source timing.

Whisper's own ``translate`` task (to English) is the translator available offline today. It
re-listens to the audio and produces English segments whose times only roughly follow the
speech, so :func:`overlay_translation` maps its words back onto the *source* segments: a
translated cue keeps the source timing and speaker. Another translator (a text MT model)
plugs in by implementing :class:`Translator` and returning a transcript in the same shape.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import replace
from typing import Protocol

import numpy as np

from aisubs.asr.base import ASREngine, ASROptions
from aisubs.audio import CancelCheck
from aisubs.errors import InvalidRequest
from aisubs.subtitles.text import join_words
from aisubs.transcript import Segment, Transcript

WHISPER_TARGETS = frozenset({"en"})


class Translator(Protocol):
    """Produces a transcript in ``target`` for the same audio.

    Its timing may be approximate (Whisper's is): :func:`overlay_translation` lays it onto
    the source segments afterwards. A text translator returning one segment per source
    segment, with the source times, passes through that overlay unchanged.
    """

    def translate(
        self,
        audio: np.ndarray,
        source: Transcript,
        target: str,
        should_cancel: CancelCheck | None = None,
    ) -> Transcript: ...


def translate_request(base: ASROptions, language: str | None) -> ASROptions:
    """Whisper's translate pass over the same audio, from the spoken ``language``.

    Word timings are needed to lay the translation onto the source segments.
    """
    return replace(base, task="translate", word_timestamps=True, language=language or base.language)


def check_target(target: str | None) -> None:
    """Refuse targets no configured translator can produce, before any work is queued."""
    if target is not None and target.lower() not in WHISPER_TARGETS:
        raise InvalidRequest(
            f"translation to {target!r} is not available: Whisper translates to English "
            "only (use translate_to='en' or task='translate')"
        )


class WhisperTranslator:
    """Whisper's ``translate`` task run by the already-loaded ASR engine."""

    def __init__(self, engine: ASREngine, base_options: ASROptions):
        self._engine = engine
        self._options = base_options

    def translate(
        self,
        audio: np.ndarray,
        source: Transcript,
        target: str,
        should_cancel: CancelCheck | None = None,
    ) -> Transcript:
        check_target(target)
        options = translate_request(self._options, source.language)
        return self._engine.transcribe(audio, options, should_cancel=should_cancel)


def overlay_translation(source: Transcript, translated: Transcript, target: str) -> Transcript:
    """Put the translated words into the source segments they overlap most.

    Each translated word (or segment, when the engine gave no words) goes to the source
    segment with the largest time overlap, or the nearest one; a source segment's new text is
    its words joined in order. Source segments that receive nothing are dropped rather than
    shown untranslated. Words are not kept: their timing belongs to the other language.
    """
    src = [s for s in source.segments if s.text.strip()]
    if not src:
        return Transcript(language=target, duration=source.duration, segments=[])
    starts = [s.start for s in src]
    buckets: list[list[str]] = [[] for _ in src]
    for seg in translated.segments:
        items = [(w.start, w.end, w.word) for w in seg.words] or [(seg.start, seg.end, seg.text)]
        for start, end, text in items:
            buckets[_best_segment(src, starts, start, end)].append(text)
    segments = [
        Segment(start=s.start, end=s.end, text=join_words(b, target).strip(), speaker=s.speaker)
        for s, b in zip(src, buckets, strict=True)
        if "".join(b).strip()
    ]
    return Transcript(language=target, duration=source.duration, segments=segments)


def _best_segment(src: list[Segment], starts: list[float], start: float, end: float) -> int:
    """Index of the source segment overlapping [start, end] most (nearest if none)."""
    i = bisect_right(starts, end)
    best, best_overlap = -1, 0.0
    # Source segments are sorted and do not overlap each other, so only those starting
    # before ``end`` and ending after ``start`` can overlap: scan back until one ends first.
    j = i - 1
    while j >= 0 and src[j].end > start:
        overlap = min(end, src[j].end) - max(start, src[j].start)
        if overlap > best_overlap:
            best, best_overlap = j, overlap
        j -= 1
    if best >= 0:
        return best
    mid = (start + end) / 2
    candidates = [k for k in (i - 1, i) if 0 <= k < len(src)]
    return min(candidates, key=lambda k: min(abs(mid - src[k].start), abs(mid - src[k].end)))
