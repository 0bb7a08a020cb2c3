"""Long English test audio built from real clips with references (kept aligned)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aisubs.media import SAMPLE_RATE, decode_audio
from aisubs.settings import MediaSettings
from tests.support.paths import ASR, SAMPLE_STM, SAMPLE_WAV


def _stm_text(path: Path) -> str:
    return " ".join(line.split(maxsplit=5)[5] for line in path.read_text().splitlines() if line)


def english_clips() -> list[tuple[Path, str]]:
    """(audio, reference) pairs of every English recording with a full transcript."""
    return [
        (ASR / "jfk.flac", (ASR / "jfk.txt").read_text()),
        (ASR / "picovoice.wav", (ASR / "picovoice.txt").read_text()),
        (
            ASR / "librispeech-61-70968-0000.flac",
            (ASR / "librispeech-61-70968-0000.txt").read_text(),
        ),
        (SAMPLE_WAV, _stm_text(SAMPLE_STM)),
    ]


def build_long_audio(
    rounds: int = 3, gap_s: float = 2.0
) -> tuple[np.ndarray, str, list[tuple[float, float]]]:
    """Concatenate the English clips ``rounds`` times (rotating the order) with silent gaps.

    Returns the audio, the concatenated reference and the (start, end) of each silent gap,
    where no word may appear.
    """
    clips = [(decode_audio(path, MediaSettings()), ref.strip()) for path, ref in english_clips()]
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    refs: list[str] = []
    gaps: list[tuple[float, float]] = []
    pos = 0
    for r in range(rounds):
        order = clips[r % len(clips) :] + clips[: r % len(clips)]
        for audio, ref in order:
            parts.append(audio)
            refs.append(ref)
            pos += audio.size
            gaps.append((pos / SAMPLE_RATE, (pos + gap.size) / SAMPLE_RATE))
            parts.append(gap)
            pos += gap.size
    return np.concatenate(parts), " ".join(refs), gaps
