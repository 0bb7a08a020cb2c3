"""Writing decoded audio back to disk, for scripts and tests that build long inputs.

Decoding gives 16 kHz mono float32; benchmarks and failover runs concatenate real clips
into one longer recording and need it as a file the service accepts. The standard
library's ``wave`` writes it; this only converts float samples to 16-bit PCM.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from aisubs.media.decode import SAMPLE_RATE


def write_wav(
    path: Path, chunks: np.ndarray | Iterable[np.ndarray], sample_rate: int = SAMPLE_RATE
) -> int:
    """Write mono float audio (one array or consecutive chunks) as 16-bit PCM WAV.

    Returns the number of samples written. Chunks are converted one at a time, so a long
    recording never needs a second full-size copy.
    """
    if isinstance(chunks, np.ndarray):
        chunks = [chunks]
    written = 0
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        for chunk in chunks:
            w.writeframes((np.clip(chunk, -1, 1) * 32767).astype("<i2").tobytes())
            written += len(chunk)
    return written
