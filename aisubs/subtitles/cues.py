"""Readable subtitle cues from a speaker-attributed transcript.

Rules come from :class:`~aisubs.settings.SubtitleSettings` (Netflix timed-text guide
defaults): at most ``max_line_chars`` characters a line and ``max_lines`` lines a cue,
``min_duration_s`` to ``max_duration_s`` on screen, reading speed aimed at ``target_cps`` and
at most ``max_cps`` characters a second, ``min_gap_frames`` frames between cues, and a new
cue at every speaker change.

How cues are chosen. The transcript becomes one stream of timed tokens (words). Where the
cues end is decided by a dynamic programme over that stream: a candidate cue is any run of
tokens of one speaker that fits the line rules and whose speech lasts at most
``max_duration_s``; its cost adds a per-cue price, how bad its last break is (free after a
sentence end or a long pause, cheap after a comma, dear mid-phrase), how fast it must be
read given the time it can stay up (until the next cue starts, less the gap, and at most
``max_duration_s``), how short it is on screen and how long the pauses inside it are. The
cheapest sequence wins, so a reading speed that cannot be met in one cue is met by cutting
it into more. Because the next cue always starts at the token after the current one, the
time a candidate can stay on screen is known exactly inside the programme. Cost is linear
in the number of words (a cue holds a bounded number of tokens).

Timing. A cue starts with its first word and stays up until its last word ends, extended
into the following silence until it reaches the minimum duration and the target reading
speed, but never past ``max_duration_s`` nor closer than the gap to the next cue. All times
are whole milliseconds (what SRT and WebVTT can express), the gap is rounded up and the
maximum down, so checks on re-parsed files see the same numbers.

Speaker labels. SRT has no voice tag, so with ``speaker_labels`` (on by default) the first cue
of each speaker turn carries :attr:`Cue.label` (``"SPEAKER_00:"``), shown before its first
line by :meth:`Cue.display_lines`. Labels are only used when the transcript has two or
more speakers. The label counts toward the line length: the builder leaves room for it. WebVTT
writes the speaker as a ``<v>`` voice tag instead and ignores the label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from aisubs.settings import SubtitleSettings
from aisubs.subtitles.lines import LineFitter, layout, line_break_cost, two_line_cost
from aisubs.subtitles.text import is_english
from aisubs.subtitles.tokens import Token, transcript_tokens
from aisubs.transcript import Transcript

# Cost weights of the cue programme (dimensionless; a mid-phrase break costs BREAK_PHRASE).
CUE_COST = 4.0  # every extra cue: prefer fewer, fuller cues
FILL_WEIGHT = 3.0  # times (1 - fill)^2: prefer cues that use their room, and even splits
PAUSE_INSIDE_WEIGHT = 6.0  # per second of pause beyond PAUSE_OK_S inside one cue
PAUSE_OK_S = 0.5
PAUSE_BREAK_S = 1.0  # a pause this long makes any break free
SHORT_WEIGHT = 15.0  # times the missing fraction of the minimum duration
FAST_WEIGHT = 2.0  # reading speed between target and maximum, scaled to 0..1
TOO_FAST_COST = 40.0  # reading speed above the maximum ...
TOO_FAST_WEIGHT = 4.0  # ... plus this times the relative excess
# Ending a cue mid-phrase hurts more than ending a line there: cue breaks cost this many
# times the line-break cost of the same place.
CUE_BREAK_FACTOR = 2.0

RULES = ("line_length", "line_count", "max_duration", "min_duration", "cps", "gap", "overlap")
_EPS = 1e-6


@dataclass(slots=True)
class Cue:
    """One subtitle on screen: times in seconds (whole milliseconds), text lines, speaker."""

    start: float
    end: float
    lines: list[str]
    speaker: str | None = None
    # Shown before the first line in formats without voice tags (SRT, plain players).
    label: str | None = field(default=None)

    def display_lines(self) -> list[str]:
        """The lines as shown in formats without voice tags (label prefixed)."""
        if self.label and self.lines:
            return [f"{self.label} {self.lines[0]}", *self.lines[1:]]
        return list(self.lines)

    @property
    def text(self) -> str:
        """The spoken text of the cue on one line (no label; lines joined by a space)."""
        return " ".join(self.lines)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def chars(self) -> int:
        """Characters read on screen (label included, line breaks not counted)."""
        return sum(len(line) for line in self.display_lines())


def _label_for(speaker: str, width: int) -> str:
    """``SPEAKER_00:``; names too long for half a line are shortened with an ellipsis."""
    room = max(2, width // 2 - 2)
    name = speaker if len(speaker) <= room else speaker[: room - 1] + "…"
    return f"{name}:"


@dataclass(slots=True)
class _Plan:
    """The programme's inputs, precomputed once per transcript."""

    tokens: list[Token]
    rules: SubtitleSettings
    english: bool
    labels: list[str | None]  # label a cue starting at token i would carry
    end_limit: float  # nothing is shown after this (audio end, when known)
    gap_s: float

    def break_cost(self, j: int) -> float:
        """Cost of ending a cue before token ``j``."""
        toks = self.tokens
        if j >= len(toks) or toks[j].speaker != toks[j - 1].speaker:
            return 0.0
        base = CUE_BREAK_FACTOR * line_break_cost(toks[j - 1], toks[j], self.english)
        if toks[j].glue:
            return base
        pause = toks[j].start - toks[j - 1].end
        return base * max(0.0, 1.0 - pause / PAUSE_BREAK_S)

    def available(self, i: int, j: int) -> float:
        """How long a cue of tokens[i:j] can stay on screen."""
        start = self.tokens[i].start
        nxt = self.tokens[j].start - self.gap_s if j < len(self.tokens) else self.end_limit
        return max(min(nxt, start + self.rules.max_duration_s) - start, 1.0 / self.rules.fps)

    def cue_cost(self, i: int, j: int, chars: int, pauses: float) -> float:
        rules = self.rules
        shown = self.available(i, j)
        cost = CUE_COST + self.break_cost(j) + PAUSE_INSIDE_WEIGHT * pauses
        capacity = rules.max_lines * rules.max_line_chars
        cost += FILL_WEIGHT * (1.0 - min(1.0, chars / capacity)) ** 2
        if shown < rules.min_duration_s:
            cost += SHORT_WEIGHT * (rules.min_duration_s - shown) / rules.min_duration_s
        cps = chars / shown
        if cps > rules.max_cps:
            cost += TOO_FAST_COST + TOO_FAST_WEIGHT * (cps - rules.max_cps) / rules.max_cps
        elif cps > rules.target_cps:
            span = max(rules.max_cps - rules.target_cps, _EPS)
            cost += FAST_WEIGHT * (cps - rules.target_cps) / span
        return cost


def _plan(transcript: Transcript, rules: SubtitleSettings, speaker_labels: bool) -> _Plan:
    tokens = transcript_tokens(transcript, rules.max_line_chars)
    distinct = {t.speaker for t in tokens if t.speaker is not None}
    labels: list[str | None] = [None] * len(tokens)
    if speaker_labels and len(distinct) > 1:
        for i, tok in enumerate(tokens):
            if tok.speaker is None or (i and tokens[i - 1].speaker == tok.speaker):
                continue
            label = _label_for(tok.speaker, rules.max_line_chars)
            if len(label) + 1 + len(tok.text) <= rules.max_line_chars:
                labels[i] = label
    last_end = max((t.end for t in tokens), default=0.0)
    end_limit = max(transcript.duration, last_end) if transcript.duration > 0 else math.inf
    gap_s = math.ceil(rules.min_gap_frames / rules.fps * 1000 - _EPS) / 1000
    return _Plan(tokens, rules, is_english(transcript.language), labels, end_limit, gap_s)


def _prefix_lengths(tokens: Sequence[Token]) -> tuple[list[int], list[int]]:
    """Prefix sums of token lengths and of spaces before tokens (see :func:`_length`)."""
    pre_len = [0] * (len(tokens) + 1)
    pre_sp = [0] * (len(tokens) + 1)
    for k, t in enumerate(tokens):
        pre_len[k + 1] = pre_len[k] + len(t.text)
        pre_sp[k + 1] = pre_sp[k] + (0 if t.glue else 1)
    return pre_len, pre_sp


def _partition(plan: _Plan) -> list[tuple[int, int]]:
    """Cheapest split of the token stream into cues, as (first, past-last) index pairs.

    For two-line candidates the price of their best line layout is included (all first-line
    ends are tried, as :func:`~aisubs.subtitles.lines.layout` would); layouts of three or
    more lines are only checked for fit.
    """
    toks = plan.tokens
    rules = plan.rules
    width = rules.max_line_chars
    n = len(toks)
    pre_len, pre_sp = _prefix_lengths(toks)

    def length(a: int, b: int) -> int:  # tokens[a:b] on one line
        return pre_len[b] - pre_len[a] + pre_sp[b] - pre_sp[a + 1]

    best = [math.inf] * (n + 1)
    back = [0] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] == math.inf:
            continue
        label = plan.labels[i]
        offset = len(label) + 1 if label else 0
        fitter = LineFitter(width, offset)
        speaker = toks[i].speaker
        pauses = 0.0
        last_end = toks[i].end
        # (first line length, first line's last token + 1, break cost) for 2-line layouts
        splits: list[tuple[int, int, float]] = []
        for j in range(i + 1, n + 1):
            tok = toks[j - 1]
            if j - 1 > i:
                if tok.speaker != speaker:
                    break
                pauses += max(0.0, tok.start - last_end - PAUSE_OK_S)
                last_end = max(last_end, tok.end)
                if last_end - toks[i].start > rules.max_duration_s + _EPS:
                    break
                first = offset + length(i, j - 1)
                if first <= width:
                    splits.append((first, j - 1, line_break_cost(toks[j - 2], tok, plan.english)))
            lines = fitter.add(tok)
            if lines > rules.max_lines:
                break
            chars = offset + length(i, j)
            cost = best[i] + plan.cue_cost(i, j, chars, pauses)
            if lines == 2:
                cost += min(
                    (
                        two_line_cost(first, second, brk)
                        for first, k, brk in splits
                        if (second := length(k, j)) <= width
                    ),
                    default=0.0,
                )
            if cost < best[j]:
                best[j] = cost
                back[j] = i
    spans: list[tuple[int, int]] = []
    j = n
    while j > 0:
        i = back[j]
        spans.append((i, j))
        j = i
    spans.reverse()
    return spans


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _timed(plan: _Plan, spans: Sequence[tuple[int, int]]) -> list[Cue]:
    """Give each cue its screen time (see the module docstring) and its lines."""
    toks = plan.tokens
    rules = plan.rules
    gap = _ms(plan.gap_s)
    min_ms = math.ceil(rules.min_duration_s * 1000 - _EPS)
    max_ms = math.floor(rules.max_duration_s * 1000 + _EPS)
    frame = min(math.ceil(1000 / rules.fps), max_ms)
    end_limit = _ms(plan.end_limit) if math.isfinite(plan.end_limit) else None
    cues: list[Cue] = []
    prev_end: int | None = None
    for i, j in spans:
        label = plan.labels[i]
        offset = len(label) + 1 if label else 0
        lines = layout(toks[i:j], rules.max_line_chars, rules.max_lines, offset, plan.english)
        chars = offset + sum(len(line) for line in lines)
        start = _ms(toks[i].start)
        if prev_end is not None:
            start = max(start, prev_end + gap)
        spoken_end = _ms(max(t.end for t in toks[i:j]))
        reading = math.ceil(chars / rules.target_cps * 1000)
        end = max(spoken_end, start + max(min_ms, reading))
        end = min(end, start + max_ms)
        if j < len(toks):
            end = min(end, _ms(toks[j].start) - gap)
        elif end_limit is not None and end_limit > spoken_end:
            end = min(end, end_limit)
        # Words overlapping the next cue leave no room: keep one frame and push the next cue.
        end = max(end, start + frame)
        cues.append(Cue(start / 1000, end / 1000, lines, toks[i].speaker, label))
        prev_end = end
    return cues


def build_cues(
    transcript: Transcript, rules: SubtitleSettings, *, speaker_labels: bool | None = None
) -> list[Cue]:
    """Subtitle cues for ``transcript`` following ``rules`` (see the module docstring).

    With speaker labels (``rules.speaker_labels`` unless ``speaker_labels`` overrides it)
    the first cue of each speaker turn carries a label for formats without voice tags; the
    line limit includes it. Cues never mix speakers.
    """
    labels = rules.speaker_labels if speaker_labels is None else speaker_labels
    plan = _plan(transcript, rules, labels)
    if not plan.tokens:
        return []
    return _timed(plan, _partition(plan))


def check_cues(cues: Sequence[Cue], rules: SubtitleSettings) -> dict[str, int]:
    """Count the cues that break each rule (keys in :data:`RULES`).

    Line length and count are measured on the displayed lines (label included). Gap and
    overlap are judged between each cue and the next one in time; a cue overlapping the next
    counts as ``overlap`` only. ``min_duration`` and ``cps`` can be unavoidable when speech is
    very dense; the others should always be zero for the builder's output.
    """
    counts = dict.fromkeys(RULES, 0)
    gap = rules.min_gap_frames / rules.fps
    ordered = sorted(cues, key=lambda c: (c.start, c.end))
    for k, cue in enumerate(ordered):
        lines = cue.display_lines()
        if any(len(line) > rules.max_line_chars for line in lines):
            counts["line_length"] += 1
        if len(lines) > rules.max_lines or not lines:
            counts["line_count"] += 1
        duration = cue.end - cue.start
        if duration > rules.max_duration_s + _EPS:
            counts["max_duration"] += 1
        if duration < rules.min_duration_s - _EPS:
            counts["min_duration"] += 1
        if duration <= 0 or cue.chars / duration > rules.max_cps + _EPS:
            counts["cps"] += 1
        if k + 1 < len(ordered):
            space = ordered[k + 1].start - cue.end
            if space < -_EPS:
                counts["overlap"] += 1
            elif space < gap - _EPS:
                counts["gap"] += 1
    return counts
