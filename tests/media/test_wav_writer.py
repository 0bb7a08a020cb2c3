"""write_wav: float chunks to 16-bit PCM that decodes back to the same samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aisubs.media.decode import SAMPLE_RATE, decode_audio
from aisubs.media.wav import write_wav
from aisubs.settings import MediaSettings


def test_chunks_round_trip_through_the_decoder(tmp_path: Path) -> None:
    t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "tone.wav"
    assert write_wav(path, (tone[:7000], tone[7000:], np.full(10, 3.0, np.float32))) == 16010
    back = decode_audio(path, MediaSettings())
    assert back.size == 16010
    assert np.max(np.abs(back[:SAMPLE_RATE] - tone)) < 1e-3
    assert np.allclose(back[SAMPLE_RATE:], 32767 / 32768, atol=1e-4)  # clipped, not wrapped


def test_one_array_is_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    assert write_wav(path, np.zeros(800, np.float32)) == 800
    assert decode_audio(path, MediaSettings()).size == 800
