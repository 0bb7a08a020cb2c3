"""Hand-made transcripts for the subtitle tests (no models, no audio)."""

from __future__ import annotations

from collections.abc import Sequence

from aisubs.settings import SubtitleSettings
from aisubs.subtitles import Cue
from aisubs.transcript import Segment, Transcript, Word

RULES = SubtitleSettings()


def spoken(
    text: str,
    start: float = 0.0,
    *,
    word_s: float = 0.3,
    gap_s: float = 0.05,
    speaker: str | None = None,
) -> list[Word]:
    """Whisper-style words (leading spaces) for ``text``, one every ``word_s + gap_s``."""
    words = []
    t = start
    for w in text.split():
        words.append(Word(t, t + word_s, " " + w, speaker=speaker))
        t += word_s + gap_s
    return words


def transcript(
    words: Sequence[Word], *, per_segment: int = 12, language: str | None = "en"
) -> Transcript:
    """A transcript whose segments hold ``per_segment`` words each."""
    segments = []
    for k in range(0, len(words), per_segment):
        chunk = tuple(words[k : k + per_segment])
        segments.append(
            Segment(chunk[0].start, chunk[-1].end, "".join(w.word for w in chunk), chunk)
        )
    end = max((w.end for w in words), default=0.0)
    return Transcript(language=language, duration=end + 1.0, segments=segments)


def cue_words(cues: Sequence[Cue]) -> list[str]:
    """Words as shown across cues, labels left out."""
    return [w for c in cues for line in c.lines for w in line.split()]
