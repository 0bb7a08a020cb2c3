"""Speaker attribution and readable subtitles (plain Python, no Ray).

``assign_speakers`` joins ASR words with diarization turns, ``build_cues`` cuts the result
into cues that follow the subtitle rules, ``check_cues`` counts rule breaks, and ``render``
writes SRT, WebVTT, JSON or plain text.
"""

from aisubs.subtitles.attribution import assign_speakers
from aisubs.subtitles.cues import RULES, Cue, build_cues, check_cues
from aisubs.subtitles.writers import (
    FORMATS,
    MEDIA_TYPES,
    Format,
    render,
    to_json,
    to_srt,
    to_txt,
    to_vtt,
)

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "RULES",
    "Cue",
    "Format",
    "assign_speakers",
    "build_cues",
    "check_cues",
    "render",
    "to_json",
    "to_srt",
    "to_txt",
    "to_vtt",
]
