"""Subtitle and transcript files: SRT, WebVTT, JSON and plain text.

SRT is composed by the ``srt`` library and WebVTT by ``webvtt-py``; what they do not do is
written here: WebVTT escaping and the ``<v Speaker>`` voice span (webvtt-py writes cue text
verbatim), SRT speaker labels (SRT has no voice tag, so the cue builder's label is put in
front of the first line, see :mod:`aisubs.subtitles.cues`), the JSON document (the
transcript contract plus cues) and the plain-text layout (one paragraph per speaker turn),
which no subtitle library covers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal, get_args

import srt
import webvtt

from aisubs.errors import InvalidRequest
from aisubs.subtitles.cues import Cue
from aisubs.subtitles.text import NO_SPACE_LANGUAGES, join_words
from aisubs.transcript import Transcript

Format = Literal["srt", "vtt", "json", "txt"]
FORMATS: tuple[str, ...] = get_args(Format)
MEDIA_TYPES: dict[str, str] = {
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
}
# Without speakers, plain text starts a new paragraph after a pause this long.
PARAGRAPH_PAUSE_S = 2.0


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text; the speaker label (when the cue has one) leads the first line."""
    subtitles = [
        srt.Subtitle(
            index=k,
            start=timedelta(milliseconds=_ms(c.start)),
            end=timedelta(milliseconds=_ms(c.end)),
            content="\n".join(c.display_lines()),
        )
        for k, c in enumerate(cues, start=1)
    ]
    return str(srt.compose(subtitles, reindex=True))


def escape_vtt(text: str) -> str:
    """Escape cue text for WebVTT: ``&``, ``<`` and ``>`` as character references.

    Escaping ``>`` also keeps a literal ``-->`` from ending the cue block.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt_timestamp(seconds: float) -> str:
    ms = _ms(seconds)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _vtt_lines(cue: Cue) -> list[str]:
    lines = [escape_vtt(line) for line in cue.lines] or [""]
    if cue.speaker is not None:
        name = escape_vtt(" ".join(cue.speaker.split())) or "?"
        lines[0] = f"<v {name}>{lines[0]}"
        lines[-1] = f"{lines[-1]}</v>"
    return lines


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text; each cue's speaker is a ``<v Name>`` voice span around its lines."""
    doc = webvtt.WebVTT(
        captions=[
            webvtt.Caption(
                start=_vtt_timestamp(c.start), end=_vtt_timestamp(c.end), text=_vtt_lines(c)
            )
            for c in cues
        ]
    )
    return str(doc.content)


def cue_dict(cue: Cue) -> dict[str, Any]:
    """A cue as JSON: times in seconds, speaker, lines as displayed and the spoken text."""
    return {
        "start": round(cue.start, 3),
        "end": round(cue.end, 3),
        "speaker": cue.speaker,
        "lines": list(cue.lines),
        "label": cue.label,
    }


def to_json(transcript: Transcript, cues: Sequence[Cue] | None = None) -> str:
    """The transcript JSON contract (:meth:`Transcript.to_json_dict`), plus ``cues`` if given."""
    doc = transcript.to_json_dict()
    if cues is not None:
        doc["cues"] = [cue_dict(c) for c in cues]
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def _paragraphs(transcript: Transcript) -> list[tuple[str | None, list[str]]]:
    """(speaker, text chunks) per speaker turn; pauses split turns when nobody is known."""
    paragraphs: list[tuple[str | None, list[str]]] = []
    last_end: float | None = None

    def add(speaker: str | None, text: str, start: float, end: float) -> None:
        nonlocal last_end
        if not text:
            return
        new_turn = not paragraphs or paragraphs[-1][0] != speaker
        if not new_turn and speaker is None and last_end is not None:
            new_turn = start - last_end >= PARAGRAPH_PAUSE_S
        if new_turn:
            paragraphs.append((speaker, []))
        paragraphs[-1][1].append(text)
        last_end = end

    for seg in transcript.segments:
        if not seg.words:
            add(seg.speaker, " ".join(seg.text.split()), seg.start, seg.end)
            continue
        run: list[str] = []
        run_speaker: str | None = None
        run_start = run_end = 0.0
        for w in seg.words:
            speaker = w.speaker if w.speaker is not None else seg.speaker
            if run and speaker != run_speaker:
                add(run_speaker, join_words(run, transcript.language), run_start, run_end)
                run = []
            if not run:
                run_speaker, run_start = speaker, w.start
            run.append(w.word)
            run_end = w.end
        add(run_speaker, join_words(run, transcript.language), run_start, run_end)
    return paragraphs


def to_txt(transcript: Transcript) -> str:
    """Plain text, one paragraph per speaker turn (``SPEAKER_00: text`` when known)."""
    language = (transcript.language or "").split("-")[0].lower()
    sep = "" if language in NO_SPACE_LANGUAGES else " "
    out = []
    for speaker, chunks in _paragraphs(transcript):
        text = sep.join(chunks)
        out.append(f"{speaker}: {text}" if speaker is not None else text)
    return "\n\n".join(out) + ("\n" if out else "")


def render(transcript: Transcript, cues: Sequence[Cue], fmt: Format) -> str:
    """The transcript or its cues as a file of format ``fmt``."""
    if fmt == "srt":
        return to_srt(cues)
    if fmt == "vtt":
        return to_vtt(cues)
    if fmt == "json":
        return to_json(transcript, cues)
    if fmt == "txt":
        return to_txt(transcript)
    raise InvalidRequest(f"unknown subtitle format {fmt!r}; choose one of {', '.join(FORMATS)}")
