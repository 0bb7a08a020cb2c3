"""Turn a transcript into one stream of timed display tokens for the cue builder.

A token is what the line breaker may move as a unit: a word as shown on screen, with the
time it is spoken, its speaker and whether it is written right after the previous token
without a space. Word timings are used when a segment has words; otherwise the segment text
is split into words and the segment's time is shared out in proportion to their length.
Tokens longer than a subtitle line are cut into line-sized pieces so that no input can force
a line over the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from aisubs.subtitles.text import SpacingMode, glues_to_previous, normalise_word, spacing_mode
from aisubs.transcript import Segment, Transcript


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # no surrounding whitespace, never empty, at most one line long
    start: float
    end: float
    speaker: str | None
    glue: bool  # written right after the previous token, without a space


def _split_text(
    text: str, start: float, end: float, glued: bool
) -> list[tuple[str, float, float, bool]]:
    """Words of a segment text with time shared out by length (no word timings known)."""
    pieces: list[tuple[str, bool]] = []
    for chunk in text.split():
        if glued:  # a script without spaces: every character may start a line
            pieces.extend((ch, k > 0) for k, ch in enumerate(chunk))
        else:
            pieces.append((chunk, False))
    if not pieces:
        return []
    weights = [len(p) + 1 for p, _ in pieces]
    total = float(sum(weights))
    span = max(0.0, end - start)
    out: list[tuple[str, float, float, bool]] = []
    acc = 0.0
    for (piece, glue), weight in zip(pieces, weights, strict=True):
        s = start + span * acc / total
        acc += weight
        out.append((piece, s, start + span * acc / total, glue))
    return out


def _hard_wrap(
    text: str, start: float, end: float, glue: bool, width: int
) -> list[tuple[str, float, float, bool]]:
    """Cut a token longer than ``width`` into pieces of at most ``width`` characters."""
    if len(text) <= width:
        return [(text, start, end, glue)]
    span = max(0.0, end - start)
    out: list[tuple[str, float, float, bool]] = []
    for k in range(0, len(text), width):
        piece = text[k : k + width]
        s = start + span * k / len(text)
        e = start + span * min(len(text), k + width) / len(text)
        out.append((piece, s, e, glue if k == 0 else True))
    return out


def _segment_pieces(
    seg: Segment, mode: SpacingMode, glued_language: bool
) -> list[tuple[str, float, float, bool, str | None]]:
    if seg.words:
        out: list[tuple[str, float, float, bool, str | None]] = []
        for w in seg.words:
            text = normalise_word(w.word)
            if text:
                glue = glues_to_previous(w.word, mode)
                speaker = w.speaker if w.speaker is not None else seg.speaker
                out.append((text, w.start, w.end, glue, speaker))
        return out
    return [
        (text, s, e, glue, seg.speaker)
        for text, s, e, glue in _split_text(seg.text, seg.start, seg.end, glued_language)
    ]


def transcript_tokens(transcript: Transcript, max_line_chars: int) -> list[Token]:
    """All display tokens of ``transcript`` in reading order, with sane timings.

    Times are made monotonic (a token never starts before the one it follows and never
    ends before it starts) so that every later stage can rely on sorted starts.
    """
    word_strings = [w.word for seg in transcript.segments for w in seg.words]
    mode = spacing_mode(word_strings, transcript.language)
    glued_language = spacing_mode([], transcript.language) == "glued"
    tokens: list[Token] = []
    last_start = 0.0
    for seg in transcript.segments:
        for text, start, end, glue, speaker in _segment_pieces(seg, mode, glued_language):
            if start != start or end != end:  # NaN timings: place the word after the last one
                start, end = last_start, last_start
            start = max(float(start), last_start, 0.0)
            end = max(float(end), start)
            for piece, s, e, g in _hard_wrap(text, start, end, glue, max_line_chars):
                tokens.append(Token(piece, s, e, speaker, g and bool(tokens)))
                last_start = s
    return tokens
