"""Speaker embeddings of short sliding windows, from Resemblyzer's shipped GE2E encoder.

One embedding per VAD region mixes speakers whenever a region spans a turn change (common
in meetings); fixed windows (1.5 s, hop 0.75 s by default) keep each embedding mostly one
voice and give the clusterer many points. The encoder was trained on utterances normalised
to -30 dBFS and its input is a *linear* mel spectrogram, so each window is brought to that
level first: otherwise loudness, not voice, would drive the embedding. Work proceeds region
by region in bounded batches, so memory does not grow with the input beyond the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aisubs.audio import SAMPLE_RATE, CancelCheck, raise_if_cancelled

EMBEDDING_DIM = 256


@dataclass(frozen=True, slots=True)
class WindowOptions:
    window_s: float = 1.5
    hop_s: float = 0.75
    # Regions shorter than this are too short to say anything about the voice.
    min_window_s: float = 0.4
    target_dbfs: float = -30.0
    batch_size: int = 64


@dataclass(slots=True)
class WindowEmbeddings:
    """Embedding ``vectors[i]`` describes audio between ``starts[i]`` and ``ends[i]`` seconds."""

    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


def window_bounds(
    regions: list[tuple[float, float]], opts: WindowOptions
) -> list[tuple[float, float]]:
    """Sliding windows covering each region; the last window is aligned to the region end."""
    out: list[tuple[float, float]] = []
    for start, end in regions:
        length = end - start
        if length < opts.min_window_s:
            continue
        if length <= opts.window_s:
            out.append((start, end))
            continue
        n = int(np.ceil((length - opts.window_s) / opts.hop_s)) + 1
        for i in range(n):
            s = min(start + i * opts.hop_s, end - opts.window_s)
            out.append((s, s + opts.window_s))
    return out


class ResemblyzerEmbedder:
    """Resemblyzer's VoiceEncoder with the ``pretrained.pt`` its wheel ships."""

    # Resemblyzer's front end (resemblyzer.audio.wav_to_mel_spectrogram): 25 ms Hann
    # frames every 10 ms, 40 mel bands, linear power.
    N_FFT = 400
    HOP = 160
    N_MELS = 40
    # Mel spectrograms are computed for spans of at most this many seconds at a time and
    # shared by all windows inside the span (windows overlap, so this saves most of the work).
    SPAN_S = 30.0

    def __init__(
        self,
        options: WindowOptions | None = None,
        *,
        device: str = "cpu",
        weights: Path | None = None,
    ) -> None:
        import librosa
        from resemblyzer import VoiceEncoder

        self.options = options or WindowOptions()
        self._encoder = VoiceEncoder(device=device, verbose=False, weights_fpath=weights)
        self._encoder.eval()
        self._device = torch.device(device)
        self._stft = librosa.stft
        self._mel_basis = librosa.filters.mel(
            sr=SAMPLE_RATE, n_fft=self.N_FFT, n_mels=self.N_MELS
        ).astype(np.float32)

    def _mel(self, samples: np.ndarray) -> np.ndarray:
        """Linear mel power, frames x bands, exactly as Resemblyzer computes it."""
        spec = self._stft(samples, n_fft=self.N_FFT, hop_length=self.HOP, pad_mode="constant")
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        return np.dot(self._mel_basis, power).T

    def _encode(self, mels: list[np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            batch = torch.from_numpy(np.stack(mels)).to(self._device)
            return self._encoder(batch).cpu().numpy()

    def embed(
        self,
        audio: np.ndarray,
        regions: list[tuple[float, float]],
        should_cancel: CancelCheck | None = None,
    ) -> WindowEmbeddings:
        """Embed every sliding window inside ``regions`` (seconds) of ``audio``."""
        bounds = window_bounds(regions, self.options)
        vectors = np.zeros((len(bounds), EMBEDDING_DIM), dtype=np.float32)
        pending: dict[int, list[tuple[int, np.ndarray]]] = {}  # batched by frame count
        target_power = 10 ** (self.options.target_dbfs / 10)

        def flush(n_frames: int) -> None:
            items = pending.pop(n_frames)
            vectors[[i for i, _ in items]] = self._encode([m for _, m in items])

        span_start, span_mel = -1, np.zeros((0, self.N_MELS), dtype=np.float32)
        for index, (start, end) in enumerate(bounds):
            a = round(start * SAMPLE_RATE)
            b = round(end * SAMPLE_RATE)
            if span_start < 0 or b > span_start + len(span_mel) * self.HOP:
                raise_if_cancelled(should_cancel, "diarization")
                span_start = a
                span_end = max(b, min(len(audio), a + int(self.SPAN_S * SAMPLE_RATE)))
                span_mel = self._mel(audio[span_start:span_end])
            first = (a - span_start) // self.HOP
            mel = span_mel[first : first + 1 + (b - a) // self.HOP]
            # Bring the window to the encoder's training level: power scales with gain^2.
            power = float(np.mean(audio[a:b].astype(np.float64) ** 2))
            mel = mel * np.float32(target_power / max(power, 1e-16))
            pending.setdefault(mel.shape[0], []).append((index, mel))
            if len(pending[mel.shape[0]]) >= self.options.batch_size:
                raise_if_cancelled(should_cancel, "diarization")
                flush(mel.shape[0])
        for n_frames in list(pending):
            raise_if_cancelled(should_cancel, "diarization")
            flush(n_frames)
        starts = np.array([b[0] for b in bounds], dtype=np.float64)
        ends = np.array([b[1] for b in bounds], dtype=np.float64)
        return WindowEmbeddings(starts=starts, ends=ends, vectors=vectors)


def smooth_embeddings(windows: WindowEmbeddings, hop_s: float) -> np.ndarray:
    """Each window's unit embedding summed with its immediate neighbours in the same region.

    Consecutive windows overlap and mostly hear the same voice, so averaging three of them
    cuts the embedding noise of a 1.5 s window (large for this encoder) at little cost in
    time resolution; windows across a pause (not adjacent) are never mixed.
    """
    x = windows.vectors.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
    out = x.copy()
    if len(x) > 1:
        adjacent = np.diff(windows.starts) <= hop_s * 1.001
        out[1:][adjacent] += x[:-1][adjacent]
        out[:-1][adjacent] += x[1:][adjacent]
    return out
