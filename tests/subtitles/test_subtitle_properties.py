"""Property tests: whatever the words, timings and speakers, cues keep the hard rules."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from aisubs.settings import SubtitleSettings
from aisubs.subtitles import Cue, build_cues, check_cues
from aisubs.transcript import Segment, Transcript, Word

HARD_RULES = ("line_length", "line_count", "max_duration", "gap", "overlap")
SPEAKERS = [None, "A", "B", "SPEAKER_00", "a speaker with a very long name indeed ok"]

letters = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABC'é日"), min_size=1, max_size=12
)
punct = st.sampled_from(["", "", "", ",", ".", "?", "!", ";", "...", '."'])
word_text = st.one_of(
    st.builds(lambda w, p: w + p, letters, punct),
    st.text(alphabet="xyz", min_size=40, max_size=130),  # longer than any line
)
timed_word = st.tuples(
    word_text,
    st.floats(0, 3, allow_nan=False),  # duration
    st.floats(-0.5, 4, allow_nan=False),  # pause before the next word (may overlap)
    st.sampled_from(SPEAKERS),
)
rule_sets = st.one_of(
    st.just(SubtitleSettings()),
    st.builds(
        SubtitleSettings,
        max_line_chars=st.integers(10, 60),
        max_lines=st.integers(1, 3),
        min_duration_s=st.floats(0.2, 2),
        max_duration_s=st.floats(2, 10),
        target_cps=st.floats(10, 20),
        max_cps=st.floats(20, 30),
        fps=st.sampled_from([23.976, 24.0, 25.0, 29.97, 60.0]),
        min_gap_frames=st.integers(0, 4),
    ),
)


def _words(raw: list[tuple[str, float, float, str | None]], start: float) -> list[Word]:
    words, t = [], start
    for text, duration, pause, speaker in raw:
        words.append(Word(t, t + duration, " " + text, speaker=speaker))
        t = max(0.0, t + duration + pause)
    return words


def _transcript(words: list[Word], per_segment: int) -> Transcript:
    segs = [
        Segment(c[0].start, c[-1].end, "".join(w.word for w in c), tuple(c))
        for c in (words[k : k + per_segment] for k in range(0, len(words), per_segment))
    ]
    return Transcript("en", max(w.end for w in words), segs)


def _assert_hard_rules(cues: list[Cue], rules: SubtitleSettings) -> None:
    counts = check_cues(cues, rules)
    assert {k: counts[k] for k in HARD_RULES} == dict.fromkeys(HARD_RULES, 0), counts
    for a, b in itertools.pairwise(cues):
        assert a.start <= b.start
    for c in cues:
        assert c.end > c.start and c.lines and all(c.lines)


def _assert_words_in_order_once(cues: list[Cue], words: list[Word]) -> None:
    """Each word exactly once, in order, in a cue of its own speaker."""
    shown = [(ch, c.speaker) for c in cues for line in c.lines for ch in line if ch != " "]
    spoken = [(ch, w.speaker) for w in words for ch in w.word if ch != " "]
    assert shown == spoken
    if all(len(w.word.strip()) <= 10 for w in words):  # no hard wraps: compare whole words
        assert [x for c in cues for line in c.lines for x in line.split()] == [
            w.word.strip() for w in words
        ]


@settings(max_examples=150, deadline=None)
@given(
    raw=st.lists(timed_word, min_size=1, max_size=60),
    start=st.floats(0, 100, allow_nan=False),
    per_segment=st.integers(1, 20),
    rules=rule_sets,
    labels=st.booleans(),
)
def test_cues_from_random_word_streams_keep_the_rules(raw, start, per_segment, rules, labels):
    words = _words(raw, start)
    cues = build_cues(_transcript(words, per_segment), rules, speaker_labels=labels)
    _assert_hard_rules(cues, rules)
    _assert_words_in_order_once(cues, words)
    several = len({w.speaker for w in words} - {None}) > 1
    previous: str | None = None
    for k, c in enumerate(cues):
        if c.label is not None:
            assert labels and several and c.speaker is not None
            assert k == 0 or cues[k - 1].speaker != c.speaker
        elif labels and several and c.speaker is not None and c.speaker != previous:
            # A label is only left out when it cannot share the line with the first word.
            assert len(c.lines[0].split(" ")[0]) > rules.max_line_chars // 2
        previous = c.speaker


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(
        st.tuples(
            st.lists(word_text, min_size=0, max_size=25).map(" ".join),
            st.floats(0, 15, allow_nan=False),
            st.sampled_from(SPEAKERS),
        ),
        min_size=1,
        max_size=8,
    ),
    rules=rule_sets,
)
def test_cues_from_segment_text_without_word_timings_keep_the_rules(texts, rules):
    segs, t = [], 0.0
    for text, duration, speaker in texts:
        segs.append(Segment(t, t + duration, text, speaker=speaker))
        t += duration + 0.3
    cues = build_cues(Transcript(None, t, segs), rules)
    _assert_hard_rules(cues, rules)
    shown = "".join(ch for c in cues for line in c.lines for ch in line if ch != " ")
    assert shown == "".join(ch for s in segs for ch in s.text if not ch.isspace())
