from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aisubs.subtitles import assign_speakers
from aisubs.transcript import Segment, SpeakerTurn, Transcript, Word
from tests.subtitles.subtitle_factory import spoken, transcript


def _one(words: list[Word]) -> Transcript:
    return Transcript("en", 10.0, [Segment(words[0].start, words[-1].end, "x", tuple(words))])


def test_word_takes_the_turn_overlapping_it_most() -> None:
    t = _one([Word(1.0, 2.0, " hello")])
    out = assign_speakers(t, [SpeakerTurn(0.0, 1.3, "A"), SpeakerTurn(1.3, 3.0, "B")])
    assert out.segments[0].words[0].speaker == "B"
    assert out.segments[0].speaker == "B"


def test_word_outside_every_turn_takes_the_nearest() -> None:
    t = _one([Word(5.0, 5.2, " hm")])
    out = assign_speakers(t, [SpeakerTurn(0.0, 4.0, "A"), SpeakerTurn(6.0, 8.0, "B")])
    assert out.segments[0].words[0].speaker == "B"  # 0.8 s away, A is 1.0 s away
    out = assign_speakers(t, [SpeakerTurn(0.0, 4.5, "A"), SpeakerTurn(6.0, 8.0, "B")])
    assert out.segments[0].words[0].speaker == "A"


def test_no_turns_means_no_speakers() -> None:
    t = transcript(spoken("one two three"))
    out = assign_speakers(t, [])
    assert all(w.speaker is None for s in out.segments for w in s.words)
    assert [s.text for s in out.segments] == [s.text for s in t.segments]
    assert out.speakers == []


def test_segments_split_at_every_speaker_change() -> None:
    words = spoken("Hello there. Hi you. Back again", word_s=0.4, gap_s=0.1)
    t = transcript(words)
    turns = [SpeakerTurn(0.0, 0.95, "A"), SpeakerTurn(1.0, 1.95, "B"), SpeakerTurn(2.0, 9, "A")]
    out = assign_speakers(t, turns)
    assert [(s.speaker, s.text) for s in out.segments] == [
        ("A", "Hello there."),
        ("B", "Hi you."),
        ("A", "Back again"),
    ]
    assert [w.word for s in out.segments for w in s.words] == [w.word for w in words]
    for seg in out.segments:
        assert seg.start == seg.words[0].start and seg.end == seg.words[-1].end
        assert all(w.speaker == seg.speaker for w in seg.words)
    assert out.speakers == ["A", "B"]


def test_bare_words_are_rejoined_with_spaces() -> None:
    words = [Word(0, 1, "Hi"), Word(1, 2, "there"), Word(2, 3, "friend")]
    out = assign_speakers(_one(words), [SpeakerTurn(0, 1.4, "A"), SpeakerTurn(1.4, 3, "B")])
    assert [s.text for s in out.segments] == ["Hi", "there friend"]


def test_segment_without_words_is_matched_as_a_whole() -> None:
    t = Transcript("en", 10, [Segment(2.0, 6.0, "no word timings")])
    out = assign_speakers(t, [SpeakerTurn(0, 3, "A"), SpeakerTurn(3, 10, "B")])
    assert out.segments[0].speaker == "B"
    assert out.segments[0].text == "no word timings"


def test_overlapping_turns_keep_the_previous_speaker_on_ties() -> None:
    words = [Word(0.0, 0.5, " a"), Word(1.0, 1.5, " b"), Word(1.6, 1.8, " c")]
    # b and c lie inside both turns: they stay with B, who said a.
    turns = [SpeakerTurn(0.0, 3.0, "B"), SpeakerTurn(0.9, 3.0, "A")]
    out = assign_speakers(_one(words), turns)
    assert [w.speaker for w in out.segments[0].words] == ["B", "B", "B"]


def test_turn_order_does_not_matter() -> None:
    words = spoken("one two three four five six", word_s=0.5, gap_s=0.5)
    turns = [SpeakerTurn(3.0, 6.0, "B"), SpeakerTurn(0.0, 3.0, "A")]
    out = assign_speakers(transcript(words), turns)
    assert [w.speaker for s in out.segments for w in s.words] == ["A"] * 3 + ["B"] * 3


def _best_key(start: float, end: float, turns: list[SpeakerTurn], speaker: str) -> tuple:
    def key(t: SpeakerTurn) -> tuple[float, float]:
        overlap = max(0.0, min(end, t.end) - max(start, t.start))
        return (round(overlap, 9), round(-max(0.0, t.start - end, start - t.end), 9))

    best = max(key(t) for t in turns)
    mine = max(key(t) for t in turns if t.speaker == speaker)
    return best, mine


interval = st.tuples(st.floats(0, 100, allow_nan=False), st.floats(0, 10, allow_nan=False)).map(
    lambda p: (p[0], p[0] + p[1])
)


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(interval, min_size=1, max_size=40),
    turns=st.lists(st.tuples(interval, st.sampled_from("ABCD")), min_size=1, max_size=25),
)
def test_sweep_agrees_with_brute_force(words, turns) -> None:
    """The sweep finds a turn as good as the best of all turns, for every word."""
    ws = [Word(s, e, f" w{k}") for k, (s, e) in enumerate(sorted(words))]
    ts = [SpeakerTurn(s, e, spk) for (s, e), spk in turns]
    out = assign_speakers(_one(ws), ts)
    got = [w for s in out.segments for w in s.words]
    assert [w.word for w in got] == [w.word for w in ws]
    for w in got:
        assert w.speaker is not None
        best, mine = _best_key(w.start, w.end, ts, w.speaker)
        assert mine == best
