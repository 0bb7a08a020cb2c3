"""Join ASR words with diarization turns: who said each word.

Each word takes the speaker whose turn overlaps it most; a word that no turn touches takes
the nearest turn (diarization often trims turn edges a little tighter than Whisper's word
timings). Segments are then split wherever the speaker changes, so every segment that leaves
here has one speaker.

The matching is a sweep over words and turns sorted by start time. Turns that ended before
the current word are retired for good, so each word only looks at the turns active around it
plus the nearest finished and the nearest future turn: O((W + T) log(W + T)) overall instead
of O(W x T), which matters for multi-hour recordings with thousands of turns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from aisubs.subtitles.text import join_words
from aisubs.transcript import Segment, SpeakerTurn, Transcript, Word


def _score(start: float, end: float, turn: SpeakerTurn) -> tuple[float, float]:
    """(overlap, -gap): larger is better; overlap first, then closeness."""
    overlap = min(end, turn.end) - max(start, turn.start)
    gap = max(0.0, turn.start - end, start - turn.end)
    return (max(0.0, overlap), -gap)


def _match_intervals(
    intervals: Sequence[tuple[float, float]], turns: Sequence[SpeakerTurn]
) -> list[str | None]:
    """Speaker for every (start, end) interval, in the intervals' own order."""
    if not turns:
        return [None] * len(intervals)
    order = sorted(range(len(intervals)), key=lambda k: (intervals[k][0], intervals[k][1]))
    sorted_turns = sorted(turns, key=lambda t: (t.start, t.end))
    result: list[str | None] = [None] * len(intervals)
    active: list[SpeakerTurn] = []
    last_finished: SpeakerTurn | None = None  # the retired turn that ended latest
    nxt = 0  # next turn not yet made active
    previous: str | None = None
    for k in order:
        start, end = intervals[k]
        end = max(start, end)
        while nxt < len(sorted_turns) and sorted_turns[nxt].start < end:
            active.append(sorted_turns[nxt])
            nxt += 1
        # Word starts never decrease in this loop, so a turn over before this word is over
        # for every later word too: retire it, remembering only the latest one.
        still: list[SpeakerTurn] = []
        for t in active:
            if t.end <= start:
                if last_finished is None or t.end > last_finished.end:
                    last_finished = t
            else:
                still.append(t)
        active = still
        candidates = list(active)
        if last_finished is not None:
            candidates.append(last_finished)
        if nxt < len(sorted_turns):
            candidates.append(sorted_turns[nxt])
        best: SpeakerTurn | None = None
        best_key: tuple[float, float, int] = (-math.inf, -math.inf, 0)
        for t in candidates:
            overlap, neg_gap = _score(start, end, t)
            # Ties (a word inside two overlapping turns) keep the previous word's speaker,
            # so overlapped speech does not make the label flicker.
            key = (overlap, neg_gap, 1 if t.speaker == previous else 0)
            if key > best_key:
                best, best_key = t, key
        speaker = best.speaker if best is not None else None
        result[k] = speaker
        previous = speaker
    return result


def _split_segment(segment: Segment, language: str | None) -> list[Segment]:
    """One segment per run of consecutive same-speaker words."""
    runs: list[list[Word]] = []
    for w in segment.words:
        if runs and runs[-1][-1].speaker == w.speaker:
            runs[-1].append(w)
        else:
            runs.append([w])
    if len(runs) == 1:
        return [replace(segment, speaker=runs[0][0].speaker)]
    return [
        Segment(
            start=run[0].start,
            end=max(w.end for w in run),
            text=join_words([w.word for w in run], language),
            words=tuple(run),
            speaker=run[0].speaker,
        )
        for run in runs
    ]


def assign_speakers(transcript: Transcript, turns: list[SpeakerTurn]) -> Transcript:
    """Return a new transcript whose words and segments carry speakers from ``turns``.

    Words get the speaker of the turn overlapping them most (the nearest turn when none
    overlaps; ``None`` when ``turns`` is empty). Segments without words are matched as a
    whole. Segments with words are split at every speaker change, with text rebuilt from
    their words.
    """
    word_refs: list[tuple[int, int]] = []
    intervals: list[tuple[float, float]] = []
    seg_refs: list[int] = []
    for si, seg in enumerate(transcript.segments):
        if seg.words:
            for wi, w in enumerate(seg.words):
                word_refs.append((si, wi))
                intervals.append((w.start, w.end))
        else:
            seg_refs.append(si)
            word_refs.append((si, -1))
            intervals.append((seg.start, seg.end))
    speakers = _match_intervals(intervals, turns)

    new_words: dict[int, list[Word]] = {}
    seg_speaker: dict[int, str | None] = {}
    for (si, wi), speaker in zip(word_refs, speakers, strict=True):
        if wi < 0:
            seg_speaker[si] = speaker
        else:
            word = transcript.segments[si].words[wi]
            new_words.setdefault(si, []).append(word.with_speaker(speaker))

    segments: list[Segment] = []
    for si, seg in enumerate(transcript.segments):
        if si in seg_speaker:
            segments.append(replace(seg, speaker=seg_speaker[si]))
        else:
            updated = replace(seg, words=tuple(new_words[si]))
            segments.extend(_split_segment(updated, transcript.language))
    return Transcript(
        language=transcript.language,
        duration=transcript.duration,
        segments=segments,
        language_probability=transcript.language_probability,
    )
