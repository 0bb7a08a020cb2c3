"""Writers, checked by parsing their output back with independent libraries."""

from __future__ import annotations

import html
import io
import json

import pysubs2
import pytest
import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from aisubs.errors import InvalidRequest
from aisubs.subtitles import Cue, build_cues, render, to_json, to_srt, to_txt, to_vtt
from aisubs.transcript import Segment, Transcript
from tests.subtitles.subtitle_factory import spoken, transcript


@pytest.fixture
def dialogue(rules):
    words = (
        spoken("Did you see the match last night?", 0.5, speaker="SPEAKER_00")
        + spoken(
            "I did, it was unbelievable. The last goal was something else.",
            3.4,
            speaker="SPEAKER_01",
        )
        + spoken("Absolutely.", 8.0, speaker="SPEAKER_00")
    )
    t = transcript(words, per_segment=7)
    return t, build_cues(t, rules)


def test_srt_round_trips_through_srt_and_pysubs2(dialogue) -> None:
    t, cues = dialogue
    text = render(t, cues, "srt")
    parsed = list(srt.parse(text))
    assert len(parsed) == len(cues)
    for k, (sub, cue) in enumerate(zip(parsed, cues, strict=True), start=1):
        assert sub.index == k
        assert sub.start.total_seconds() == pytest.approx(cue.start, abs=1e-9)
        assert sub.end.total_seconds() == pytest.approx(cue.end, abs=1e-9)
        assert sub.content == "\n".join(cue.display_lines())
    assert parsed[0].content.startswith("SPEAKER_00: Did you")
    events = pysubs2.SSAFile.from_string(text, format_="srt").events
    assert [(e.start, e.end) for e in events] == [
        (round(c.start * 1000), round(c.end * 1000)) for c in cues
    ]
    assert [e.plaintext for e in events] == ["\n".join(c.display_lines()) for c in cues]


def test_vtt_round_trips_through_webvtt_and_pysubs2(dialogue) -> None:
    t, cues = dialogue
    text = render(t, cues, "vtt")
    assert text.startswith("WEBVTT")
    captions = list(webvtt.from_buffer(io.StringIO(text)))
    assert len(captions) == len(cues)
    for cap, cue in zip(captions, cues, strict=True):
        assert cap.start_time.in_milliseconds() == round(cue.start * 1000)
        assert cap.end_time.in_milliseconds() == round(cue.end * 1000)
        assert cap.voice == cue.speaker
        assert cap.text == "\n".join(cue.lines)  # no label: the voice tag names the speaker
    events = pysubs2.SSAFile.from_string(text, format_="vtt").events
    assert [(e.start, e.end) for e in events] == [
        (round(c.start * 1000), round(c.end * 1000)) for c in cues
    ]
    assert [e.plaintext for e in events] == ["\n".join(c.lines) for c in cues]


def test_vtt_escapes_markup_and_arrows() -> None:
    cue = Cue(1.0, 2.5, ["a < b & c --> d", "<i>not italic</i>"], speaker="Dr. <X> & Co")
    text = to_vtt([cue])
    assert "-->" not in text.split("\n", 3)[3]  # only the timing line has an arrow
    (cap,) = webvtt.from_buffer(io.StringIO(text))
    assert html.unescape(cap.voice) == "Dr. <X> & Co"
    assert html.unescape(cap.text) == "a < b & c --> d\n<i>not italic</i>"


@settings(max_examples=80, deadline=None)
@given(
    lines=st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]),
            min_size=1,
            max_size=30,
        )
        .map(lambda s: " ".join(s.split()))
        .filter(bool),
        min_size=1,
        max_size=2,
    ),
    speaker=st.one_of(st.none(), st.text(min_size=1, max_size=15).filter(str.strip)),
    start_ms=st.integers(0, 10**8),
    length_ms=st.integers(1, 7000),
)
def test_any_text_round_trips_through_vtt_and_srt(lines, speaker, start_ms, length_ms) -> None:
    cue = Cue(start_ms / 1000, (start_ms + length_ms) / 1000, lines, speaker)
    (cap,) = webvtt.from_buffer(io.StringIO(to_vtt([cue])))
    assert html.unescape(cap.text) == "\n".join(lines)
    assert cap.start_time.in_milliseconds() == start_ms
    assert cap.end_time.in_milliseconds() == start_ms + length_ms
    if speaker is not None:
        assert html.unescape(cap.voice) == " ".join(speaker.split())
    (sub,) = srt.parse(to_srt([cue]))
    assert sub.content == "\n".join(lines)
    assert sub.start.total_seconds() * 1000 == pytest.approx(start_ms)


def test_json_is_the_transcript_contract_plus_cues(dialogue) -> None:
    t, cues = dialogue
    doc = json.loads(render(t, cues, "json"))
    assert Transcript.from_json_dict(doc).to_json_dict() == t.to_json_dict()
    assert doc["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert [c["lines"] for c in doc["cues"]] == [c.lines for c in cues]
    assert [c["speaker"] for c in doc["cues"]] == [c.speaker for c in cues]
    assert "cues" not in json.loads(to_json(t))


def test_txt_has_one_paragraph_per_speaker_turn(dialogue) -> None:
    t, cues = dialogue
    assert render(t, cues, "txt") == (
        "SPEAKER_00: Did you see the match last night?\n\n"
        "SPEAKER_01: I did, it was unbelievable. The last goal was something else.\n\n"
        "SPEAKER_00: Absolutely.\n"
    )


def test_txt_without_speakers_breaks_paragraphs_at_long_pauses() -> None:
    t = Transcript(
        "en",
        20,
        [
            Segment(0, 2, " First part."),
            Segment(2.5, 4, " Same paragraph."),
            Segment(9, 10, " After a pause."),
        ],
    )
    assert to_txt(t) == "First part. Same paragraph.\n\nAfter a pause.\n"


def test_unknown_format_is_an_invalid_request(dialogue) -> None:
    t, cues = dialogue
    with pytest.raises(InvalidRequest):
        render(t, cues, "ass")  # type: ignore[arg-type]


def test_empty_inputs_render_empty_documents() -> None:
    t = Transcript("en", 0.0, [])
    assert to_srt([]) == ""
    assert to_vtt([]).strip() == "WEBVTT"
    assert to_txt(t) == ""
    assert json.loads(to_json(t, []))["cues"] == []
