"""Real conversation: the pyannote sample call, its reference turns and transcript."""

from __future__ import annotations

import io
from collections import Counter

import pytest
import srt
import webvtt

from aisubs.subtitles import assign_speakers, build_cues, check_cues, render
from aisubs.transcript import Segment, SpeakerTurn, Transcript
from tests.support.paths import SAMPLE_RTTM, SAMPLE_STM

pytestmark = pytest.mark.skipif(not SAMPLE_STM.exists(), reason="no shared data")


def _stm() -> list[tuple[str, Segment]]:
    rows = []
    for line in SAMPLE_STM.read_text().splitlines():
        _, _, name, start, end, text = line.split(maxsplit=5)
        rows.append((name, Segment(float(start), float(end), text.strip())))
    return rows


def _rttm() -> list[SpeakerTurn]:
    turns = []
    for line in SAMPLE_RTTM.read_text().splitlines():
        f = line.split()
        turns.append(SpeakerTurn(float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return turns


def test_sample_call_is_attributed_and_subtitled_within_the_rules(rules) -> None:
    rows = _stm()
    t = Transcript("en", 30.0, [seg for _, seg in rows])
    attributed = assign_speakers(t, _rttm())
    # The reference transcript and the reference turns name speakers differently: map by
    # majority, then every segment must carry its true speaker.
    pairs = Counter(
        (name, seg.speaker) for (name, _), seg in zip(rows, attributed.segments, strict=True)
    )
    mapping = {}
    for (name, label), _ in pairs.most_common():
        mapping.setdefault(name, label)
    assert len(set(mapping.values())) == 2
    right = sum(n for (name, label), n in pairs.items() if mapping[name] == label)
    assert right == len(rows)

    cues = build_cues(attributed, rules)
    counts = check_cues(cues, rules)
    for rule in ("line_length", "line_count", "max_duration", "gap", "overlap"):
        assert counts[rule] == 0, counts
    assert " ".join(c.text for c in cues).split() == attributed.text.split()
    # Dense phone speech: some cues cannot reach the reading speed. Without labels (which
    # are read too) most do.
    plain = build_cues(attributed, rules, speaker_labels=False)
    plain_counts = check_cues(plain, rules)
    assert plain_counts["cps"] + plain_counts["min_duration"] <= len(plain) // 2
    assert plain_counts["cps"] <= counts["cps"]

    subs = list(srt.parse(render(attributed, cues, "srt")))
    assert [s.content.split(": ")[0] for s in subs if ": " in s.content][:2] == [
        mapping["Diane"],
        mapping["Sheila"],
    ]
    voices = [c.voice for c in webvtt.from_buffer(io.StringIO(render(attributed, cues, "vtt")))]
    assert voices == [c.speaker for c in cues]
    txt = render(attributed, cues, "txt")
    assert txt.startswith(f"{mapping['Diane']}: Hello?\n\n{mapping['Sheila']}: Hello?\n\n")
