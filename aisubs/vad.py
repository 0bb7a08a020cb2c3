"""Speech regions from Silero VAD, made robust to quiet recordings.

Meeting recordings such as AMI far-field excerpts sit 30-50 dB below full scale; Silero's
probabilities drop on such input and whole utterances go missing. We therefore normalise
loudness (by the level of the loud frames, so a long silence does not inflate the gain)
before the VAD sees the audio, and run the model block by block so a cancelled job stops
within one block and memory stays bounded on hour-long files.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from aisubs.audio import SAMPLE_RATE, CancelCheck, raise_if_cancelled

VAD_FRAME = 512  # samples per Silero probability at 16 kHz
_VAD_BLOCK_FRAMES = 1875  # 60 s per model call


@dataclass(frozen=True, slots=True)
class VADOptions:
    threshold: float = 0.4
    min_speech_s: float = 0.2
    min_silence_s: float = 0.15
    pad_s: float = 0.1
    target_dbfs: float = -20.0
    # Audio whose loud frames stay below this level is treated as silence, not amplified.
    noise_floor_dbfs: float = -70.0


def loudness_gain(audio: np.ndarray, *, target_dbfs: float, noise_floor_dbfs: float) -> float:
    """Linear gain that brings the loud (95th percentile) 32 ms frames to ``target_dbfs``.

    Returns 0 when even the loud frames are below the noise floor: digital silence must stay
    silence rather than have its dither amplified into "speech". The gain is capped so that
    no sample clips.
    """
    n = len(audio) // VAD_FRAME
    if n == 0:
        return 1.0
    frames = audio[: n * VAD_FRAME].reshape(n, VAD_FRAME)  # a view: no copy of long audio
    rms = np.sqrt(np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / VAD_FRAME + 1e-20)
    loud = float(np.percentile(rms, 95))
    loud_db = 20 * np.log10(loud + 1e-20)
    if loud_db < noise_floor_dbfs:
        return 0.0
    gain = 10 ** ((target_dbfs - loud_db) / 20)
    # max/min, not abs(): abs would copy an hour of audio (230 MB) just to find the peak.
    peak = max(float(audio.max()), -float(audio.min())) or 1.0
    return float(min(gain, 0.99 / peak))


class SileroVAD:
    """Silero VAD (the JIT model shipped inside the ``silero-vad`` wheel)."""

    def __init__(self, options: VADOptions | None = None) -> None:
        threads = torch.get_num_threads()
        try:
            # silero_vad.model calls torch.set_num_threads(1) at import time; undo that so
            # the operator's choice (set by the backend) stays in force.
            from silero_vad import load_silero_vad
            from silero_vad.utils_vad import get_speech_timestamps_from_probs
        finally:
            torch.set_num_threads(threads)
        self.options = options or VADOptions()
        self._model = load_silero_vad(onnx=False)
        self._from_probs = get_speech_timestamps_from_probs
        self._lock = threading.Lock()  # the JIT model keeps recurrent state

    def speech_probabilities(
        self, audio: np.ndarray, should_cancel: CancelCheck | None = None, *, gain: float = 1.0
    ) -> np.ndarray:
        """One speech probability per 512-sample frame (32 ms) of ``audio * gain``.

        The gain is applied block by block so an hour of audio is never copied whole.
        """
        step = _VAD_BLOCK_FRAMES * VAD_FRAME
        probs: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            self._model.reset_states()
            for start in range(0, len(audio), step):
                raise_if_cancelled(should_cancel, "voice activity detection")
                chunk = audio[start : start + step] * np.float32(gain)
                if len(chunk) < VAD_FRAME:
                    # Silero rejects a final block shorter than one frame; pad it (its
                    # probability is cut off below with the rest of the padding).
                    chunk = np.pad(chunk, (0, VAD_FRAME - len(chunk)))
                block = torch.from_numpy(chunk)
                out = self._model.audio_forward(block, SAMPLE_RATE)
                probs.append(out.reshape(-1).numpy())
        if not probs:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(probs)[: -(-len(audio) // VAD_FRAME)]

    def speech_regions(
        self, audio: np.ndarray, should_cancel: CancelCheck | None = None
    ) -> list[tuple[float, float]]:
        """Speech regions in seconds, after loudness normalisation."""
        opts = self.options
        gain = loudness_gain(
            audio, target_dbfs=opts.target_dbfs, noise_floor_dbfs=opts.noise_floor_dbfs
        )
        if gain == 0.0 or len(audio) < VAD_FRAME:
            return []
        probs = self.speech_probabilities(audio, should_cancel, gain=gain)
        stamps = self._from_probs(
            probs.tolist(),
            sampling_rate=SAMPLE_RATE,
            threshold=opts.threshold,
            min_speech_duration_ms=int(opts.min_speech_s * 1000),
            min_silence_duration_ms=int(opts.min_silence_s * 1000),
            speech_pad_ms=int(opts.pad_s * 1000),
            audio_length_samples=len(audio),
        )
        return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]
