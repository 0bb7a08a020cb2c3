"""The transcript data model every pipeline stage speaks.

ASR produces :class:`Segment` lists with :class:`Word` timings, diarization produces
:class:`SpeakerTurn` lists, attribution joins them, and the subtitle writers read the
result. The JSON form (:meth:`Transcript.to_json_dict`) is the public contract:
``{"language", "duration", "speakers", "segments": [{"start", "end", "speaker", "text",
["language", "language_probability",] "words": [{"start", "end", "word", "speaker",
"probability"}]}], "uncertain": [{"start", "end", "reason"}]}`` with seconds as numbers;
a segment carries its own language only when languages were detected per window.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Word:
    start: float
    end: float
    word: str  # as the model emitted it, usually with a leading space
    probability: float = 1.0
    speaker: str | None = None

    def with_speaker(self, speaker: str | None) -> Word:
        return replace(self, speaker=speaker)


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str | None = None
    # The language this segment was recognised in, when detected per window.
    language: str | None = None
    language_probability: float | None = None


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class UncertainRegion:
    """Speech the recogniser could not turn into words even after every fallback.

    Reported instead of silently dropped, so a reader (or a human editor) knows where the
    subtitles may have a hole. ``reason`` is a short code such as ``no_words``.
    """

    start: float
    end: float
    reason: str


@dataclass(slots=True)
class Transcript:
    language: str | None
    duration: float
    segments: list[Segment] = field(default_factory=list)
    language_probability: float | None = None
    uncertain: list[UncertainRegion] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        seen: dict[str, None] = {}
        for seg in self.segments:
            if seg.speaker is not None:
                seen.setdefault(seg.speaker, None)
            for w in seg.words:
                if w.speaker is not None:
                    seen.setdefault(w.speaker, None)
        return list(seen)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "language_probability": self.language_probability,
            "duration": round(self.duration, 3),
            "speakers": self.speakers,
            "segments": [
                {
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "speaker": s.speaker,
                    "text": s.text.strip(),
                    **(
                        {
                            "language": s.language,
                            "language_probability": _round(s.language_probability, 4),
                        }
                        if s.language is not None
                        else {}
                    ),
                    "words": [
                        {
                            "start": round(w.start, 3),
                            "end": round(w.end, 3),
                            "word": w.word,
                            "speaker": w.speaker,
                            "probability": round(w.probability, 4),
                        }
                        for w in s.words
                    ],
                }
                for s in self.segments
            ],
            "uncertain": [
                {"start": round(u.start, 3), "end": round(u.end, 3), "reason": u.reason}
                for u in self.uncertain
            ],
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = [
            Segment(
                start=float(s["start"]),
                end=float(s["end"]),
                text=str(s["text"]),
                speaker=s.get("speaker"),
                language=s.get("language"),
                language_probability=s.get("language_probability"),
                words=tuple(
                    Word(
                        start=float(w["start"]),
                        end=float(w["end"]),
                        word=str(w["word"]),
                        probability=float(w.get("probability", 1.0)),
                        speaker=w.get("speaker"),
                    )
                    for w in s.get("words", [])
                ),
            )
            for s in data.get("segments", [])
        ]
        return cls(
            language=data.get("language"),
            duration=float(data.get("duration", 0.0)),
            segments=segments,
            language_probability=data.get("language_probability"),
            uncertain=[
                UncertainRegion(float(u["start"]), float(u["end"]), str(u.get("reason", "")))
                for u in data.get("uncertain", [])
            ],
        )


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
