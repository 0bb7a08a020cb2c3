from __future__ import annotations

import math

import pytest

from aisubs.settings import SubtitleSettings
from aisubs.subtitles import RULES, Cue, build_cues, check_cues
from aisubs.transcript import Segment, Transcript, Word
from tests.subtitles.subtitle_factory import cue_words, spoken, transcript

GAP = 2 / 24


def _clean(counts: dict[str, int]) -> bool:
    return all(counts[k] == 0 for k in ("line_length", "line_count", "max_duration", "gap"))


def test_short_sentence_is_one_line_kept_up_for_the_minimum(rules) -> None:
    words = spoken("Hello world.", start=1.0, word_s=0.2, gap_s=0.0)
    cues = build_cues(transcript(words), rules)
    assert len(cues) == 1
    cue = cues[0]
    assert cue.lines == ["Hello world."]
    assert cue.start == 1.0
    assert cue.end == pytest.approx(1.0 + 0.834)  # 5/6 s rounded up to whole ms
    assert cue.speaker is None and cue.label is None
    assert check_cues(cues, rules) == dict.fromkeys(RULES, 0)


def test_long_text_is_two_balanced_lines_broken_at_the_comma(rules) -> None:
    text = "When the rain finally stopped last night, we walked down to the river together."
    cues = build_cues(transcript(spoken(text, word_s=0.25)), rules)
    assert len(cues) == 1
    assert cues[0].lines == [
        "When the rain finally stopped last night,",
        "we walked down to the river together.",
    ]


def test_line_breaks_avoid_splitting_article_from_noun(rules) -> None:
    text = "I would really like to go and see the great big mountains of the north"
    (cue,) = build_cues(transcript(spoken(text, word_s=0.2)), rules)
    assert len(cue.lines) == 2
    first_last = cue.lines[0].split()[-1].lower()
    assert first_last not in {"the", "a", "an"}
    assert all(len(line) <= 42 for line in cue.lines)


def test_cues_end_at_sentence_ends_when_text_needs_several_cues(rules) -> None:
    text = (
        "The committee met on Tuesday to discuss the budget for next year. "
        "Everyone agreed that the new library should be finished before winter. "
        "The mayor thanked the volunteers who organised the summer festival."
    )
    # 150 words a minute: each sentence alone can be read at under 17 characters a second.
    cues = build_cues(transcript(spoken(text, word_s=0.32, gap_s=0.08)), rules)
    assert [c.text for c in cues] == [s.strip() + "." for s in text.split(".") if s.strip()]
    assert _clean(check_cues(cues, rules))


def test_a_cue_never_spans_two_speakers_and_labels_mark_changes(rules) -> None:
    words = (
        spoken("Are you coming tonight?", 0.0, speaker="SPEAKER_00")
        + spoken("Yes.", 1.5, speaker="SPEAKER_01")
        + spoken(
            "Great, see you there. I will bring the food and drinks.", 2.2, speaker="SPEAKER_00"
        )
    )
    cues = build_cues(transcript(words), rules)
    assert [c.speaker for c in cues][:2] == ["SPEAKER_00", "SPEAKER_01"]
    assert cues[0].label == "SPEAKER_00:" and cues[1].label == "SPEAKER_01:"
    assert cues[1].display_lines() == ["SPEAKER_01: Yes."]
    assert cues[2].label == "SPEAKER_00:"
    assert all(c.label is None for c in cues[3:])  # same speaker continues: no label
    assert cue_words(cues) == [w.word.strip() for w in words]
    assert _clean(check_cues(cues, rules))
    plain = build_cues(transcript(words), rules, speaker_labels=False)
    assert all(c.label is None for c in plain)
    assert [c.speaker for c in plain][:2] == ["SPEAKER_00", "SPEAKER_01"]
    unlabelled_rules = SubtitleSettings(speaker_labels=False)
    assert all(c.label is None for c in build_cues(transcript(words), unlabelled_rules))
    forced = build_cues(transcript(words), unlabelled_rules, speaker_labels=True)
    assert forced[1].label == "SPEAKER_01:"


def test_no_labels_when_only_one_speaker(rules) -> None:
    cues = build_cues(transcript(spoken("Just me talking here.", speaker="A")), rules)
    assert cues[0].speaker == "A" and cues[0].label is None


def test_label_counts_toward_the_line_limit(rules) -> None:
    name = "Dr. Evelyn Rosalind Montgomery"  # 30 chars: longer than half a line
    words = spoken("Hi.", 0, speaker="B") + spoken(
        "This sentence is just long enough to need the room.", 1.0, speaker=name
    )
    cues = build_cues(transcript(words), rules)
    labelled = next(c for c in cues if c.speaker == name)
    assert labelled.label is not None and labelled.label.endswith("…:")
    assert all(len(line) <= 42 for c in cues for line in c.display_lines())


def test_words_longer_than_a_line_are_hard_wrapped(rules) -> None:
    giant = "x" * 100
    words = [Word(0.0, 1.0, " See"), Word(1.0, 2.0, " " + giant), Word(2.0, 2.5, " now.")]
    cues = build_cues(transcript(words), rules)
    assert check_cues(cues, rules)["line_length"] == 0
    assert "".join("".join(c.lines) for c in cues).replace(" ", "") == "See" + giant + "now."


def test_segments_without_words_share_their_time_by_length(rules) -> None:
    t = Transcript("en", 20, [Segment(2.0, 6.0, "One short segment. And another sentence here.")])
    cues = build_cues(t, rules)
    assert cues[0].start == 2.0
    assert " ".join(cue_words(cues)) == "One short segment. And another sentence here."
    assert all(2.0 <= c.start < 6.0 for c in cues)


def test_no_space_languages_are_joined_without_spaces(rules) -> None:
    text = "こんにちは。元気ですか\uff1f"  # ends with a full-width question mark
    t = Transcript("ja", 10, [Segment(0.0, 3.0, text)])
    cues = build_cues(t, rules)
    assert "".join(cues[0].lines) == text
    assert " " not in "".join(cues[0].lines)


def test_fast_speech_is_extended_into_the_following_silence(rules) -> None:
    text = "So basically what I am trying to tell you is this."  # 50 chars in ~1.2 s
    words = spoken(text, 0.0, word_s=0.1, gap_s=0.02)
    (cue,) = build_cues(Transcript("en", 30.0, transcript(words).segments), rules)
    # Up long enough to be read at the target speed (line breaks are not read).
    assert cue.end == pytest.approx(math.ceil(cue.chars / 17 * 1000) / 1000)
    assert cue.chars / cue.duration <= 17.0 + 1e-9


def test_extension_stops_short_of_the_next_cue(rules) -> None:
    words = spoken("Quick words said fast.", 0.0, word_s=0.1, gap_s=0.0, speaker="A")
    words += spoken("Reply.", 0.6, word_s=0.3, speaker="B")
    cues = build_cues(transcript(words), rules)
    assert len(cues) == 2
    assert cues[1].start == 0.6
    assert cues[0].end == pytest.approx(0.6 - 0.084)  # two frames at 24 fps, rounded up
    counts = check_cues(cues, rules)
    assert counts["overlap"] == 0 and counts["gap"] == 0
    assert counts["min_duration"] == 1  # 0.516 s is too short, and honestly counted


def test_long_monologue_is_cut_into_cues_of_at_most_seven_seconds(rules) -> None:
    text = " ".join(["word"] * 80)  # 80 slow words, no punctuation, 40 s
    cues = build_cues(transcript(spoken(text, word_s=0.4, gap_s=0.1)), rules)
    assert len(cues) > 5
    assert all(c.duration <= 7.0 for c in cues)
    assert _clean(check_cues(cues, rules))
    assert cue_words(cues) == text.split()


def test_long_pause_inside_a_sentence_ends_the_cue(rules) -> None:
    words = spoken("I think", 0.0) + spoken("that is right.", 4.0)
    cues = build_cues(transcript(words), rules)
    assert [c.text for c in cues] == ["I think", "that is right."]


def test_overlapping_word_times_still_give_ordered_gapped_cues(rules) -> None:
    words = [
        Word(1.0, 3.0, " one.", speaker="A"),
        Word(0.5, 0.5, " two.", speaker="B"),  # starts before the word it follows
        Word(1.0, 1.0, " three.", speaker="A"),
    ]
    cues = build_cues(transcript(words), rules)
    assert cue_words(cues) == ["one.", "two.", "three."]
    counts = check_cues(cues, rules)
    assert counts["overlap"] == 0 and counts["gap"] == 0
    assert all(c.end > c.start for c in cues)


def test_custom_rules_are_honoured() -> None:
    rules = SubtitleSettings(max_line_chars=20, max_lines=3, max_duration_s=4.0)
    text = "Numbers and letters were everywhere on the wall, painted in bright red and blue."
    cues = build_cues(transcript(spoken(text, word_s=0.3)), rules)
    assert all(len(line) <= 20 for c in cues for line in c.lines)
    assert any(len(c.lines) == 3 for c in cues)
    assert all(c.duration <= 4.0 for c in cues)


def test_times_are_whole_milliseconds(rules) -> None:
    words = spoken("Some words. More of them, and then some.", 0.12345, word_s=0.3333)
    for c in build_cues(transcript(words), rules):
        assert round(c.start * 1000) == pytest.approx(c.start * 1000, abs=1e-6)
        assert round(c.end * 1000) == pytest.approx(c.end * 1000, abs=1e-6)


def test_empty_transcript_gives_no_cues(rules) -> None:
    assert build_cues(Transcript("en", 0.0, []), rules) == []
    assert build_cues(Transcript("en", 5.0, [Segment(0, 1, "   ")]), rules) == []


def test_check_cues_counts_each_broken_rule(rules) -> None:
    cues = [
        Cue(0.0, 8.0, ["x" * 43], "A"),  # line too long, on screen too long
        Cue(8.0, 8.5, ["a", "b", "c"], "A"),  # three lines, too short, gap 0 after cue 1
        Cue(8.52, 9.5, ["y" * 30], "A"),  # gap 20 ms, 30 chars in 0.98 s is too fast
        Cue(9.4, 11.0, ["fine"], "B"),  # overlaps the previous cue
    ]
    assert check_cues(cues, rules) == {
        "line_length": 1,
        "line_count": 1,
        "max_duration": 1,
        "min_duration": 1,
        "cps": 1,
        "gap": 2,
        "overlap": 1,
    }


def test_check_cues_counts_the_label_on_the_first_line(rules) -> None:
    cue = Cue(0.0, 3.0, ["x" * 40], "A", label="A:")
    assert cue.display_lines() == ["A: " + "x" * 40]
    assert check_cues([cue], rules)["line_length"] == 1
