"""The in-process pipeline: decode, ASR, (diarization), attribution, cues, artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import srt

from aisubs.errors import InvalidRequest, UndecodableMedia
from aisubs.pipeline import LocalPipeline, translation_target, validate_options
from aisubs.queue.models import JobOptions
from aisubs.transcript import Segment, SpeakerTurn, Transcript, Word
from aisubs.translation import overlay_translation
from tests.pipeline.pipeline_support import pipeline_settings
from tests.support.paths import JFK

pytestmark = pytest.mark.slow


class TurnsFromFile:
    """A diarizer answering with fixed turns: lets attribution be checked exactly."""

    def __init__(self, turns: list[SpeakerTurn]):
        self.turns = turns

    def diarize(self, audio: Any, **_: Any) -> list[SpeakerTurn]:
        return self.turns


def test_jfk_to_every_format(tiny_engine: Any, tmp_path: Path) -> None:
    settings = pipeline_settings(tmp_path)
    stages: list[str] = []
    pipeline = LocalPipeline(settings, tiny_engine, None)
    result = pipeline.run(
        JFK,
        JobOptions(diarize=False),
        progress=lambda stage, f: stages.append(stage),
    )
    assert set(result.outputs) == {"srt", "vtt", "json", "txt"}
    text = " ".join(c.content for c in srt.parse(result.outputs["srt"])).lower()
    assert "what you can do for your country" in text
    doc = json.loads(result.outputs["json"])
    assert doc["language"] == "en" and doc["segments"][0]["words"]
    assert stages[0] == "decode" and "asr" in stages and stages[-1] == "subtitles"
    assert 10.5 < result.audio_duration_s < 11.5


def test_speakers_from_turns_reach_the_subtitles(tiny_engine: Any, tmp_path: Path) -> None:
    turns = [SpeakerTurn(0.0, 5.0, "SPEAKER_00"), SpeakerTurn(5.0, 11.0, "SPEAKER_01")]
    pipeline = LocalPipeline(pipeline_settings(tmp_path), tiny_engine, TurnsFromFile(turns))
    result = pipeline.run(JFK, JobOptions(formats=("vtt", "json")))
    assert result.transcript.speakers == ["SPEAKER_00", "SPEAKER_01"]
    assert "<v SPEAKER_01>" in result.outputs["vtt"]
    assert all(c.speaker in {"SPEAKER_00", "SPEAKER_01"} for c in result.cues)


def test_bad_media_is_a_typed_error(tiny_engine: Any, tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"\x13\x37" * 5000)
    with pytest.raises(UndecodableMedia):
        LocalPipeline(pipeline_settings(tmp_path), tiny_engine, None).run(junk, JobOptions())


def test_translation_targets() -> None:
    assert translation_target(JobOptions(task="translate")) == "en"
    assert translation_target(JobOptions(translate_to="EN")) == "en"
    assert translation_target(JobOptions()) is None
    with pytest.raises(InvalidRequest, match="English only"):
        validate_options(JobOptions(translate_to="de"))


def test_overlay_keeps_source_timing_and_speakers() -> None:
    source = Transcript(
        language="de",
        duration=10,
        segments=[
            Segment(0.0, 4.0, "Hallo zusammen.", speaker="SPEAKER_00"),
            Segment(4.5, 9.0, "Wie geht es euch?", speaker="SPEAKER_01"),
        ],
    )
    english = Transcript(
        language="en",
        duration=10,
        segments=[
            Segment(
                0.2,
                8.8,
                "Hello everyone. How are you?",
                words=(
                    Word(0.2, 0.9, " Hello"),
                    Word(0.9, 3.5, " everyone."),
                    Word(4.8, 5.5, " How"),
                    Word(5.5, 6.0, " are"),
                    Word(6.0, 8.8, " you?"),
                ),
            )
        ],
    )
    out = overlay_translation(source, english, "en")
    assert [(s.start, s.end, s.speaker, s.text) for s in out.segments] == [
        (0.0, 4.0, "SPEAKER_00", "Hello everyone."),
        (4.5, 9.0, "SPEAKER_01", "How are you?"),
    ]
