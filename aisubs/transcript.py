"""The transcript data model every pipeline stage speaks.

ASR produces :class:`Segment` lists with :class:`Word` timings, diarization produces
:class:`SpeakerTurn` lists, attribution joins them, and the subtitle writers read the
result. The JSON form (:meth:`Transcript.to_json_dict`) is the public contract:
``{"language", "duration", "speakers", "segments": [{"start", "end", "speaker", "text",
"words": [{"start", "end", "word", "speaker", "probability"}]}]}`` with seconds as numbers.
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


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class Transcript:
    language: str | None
    duration: float
    segments: list[Segment] = field(default_factory=list)
    language_probability: float | None = None

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
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = [
            Segment(
                start=float(s["start"]),
                end=float(s["end"]),
                text=str(s["text"]),
                speaker=s.get("speaker"),
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
        )
