"""The default, fully offline diarizer: Silero VAD, Resemblyzer windows, Ward clustering.

Every model it needs ships inside a PyPI wheel (``silero-vad``, ``resemblyzer``), so it runs
on a machine with no model hub. Stages:

1. loudness-normalised Silero VAD -> speech regions (:mod:`.vad`);
2. 1.5 s windows every 0.5 s inside speech -> GE2E embeddings, each averaged with its
   adjacent windows (:mod:`.embedding`);
3. size-normalised Ward clustering of each 30 s chunk, local clusters linked across chunks
   by centroid distance; count chosen by thresholds or hints, and a split must beat what
   one voice's scatter alone produces, so a short clip of one speaker stays one speaker
   (:mod:`.clustering`);
4. per-frame votes, short-run smoothing, turns (:mod:`.turns`).

Measured with the defaults (collar 0.25 s, overlap scored, scripts/eval_diarization.py):
``diarization/sample.wav`` 8.8 % DER; AMI excerpts pooled 29.4 % (train 29.7 %,
development 28.1 %) where a one-speaker answer scores 44.5 % and a perfect single-label
system still 15.5 % (overlapped speech). Each of the ten single-speaker clips in ``asr/``
comes out as one speaker (eight of them, jfk.flac included, were split before the split
had to beat chance). Resemblyzer's embeddings separate voices weakly
on far-field audio, so the speaker-count threshold has a narrow good range; see
:class:`aisubs.diarization.clustering.ClusteringOptions`.

On long input (the shared clips concatenated and cycled to 30 minutes: 28 distinct voices,
each recurring every 7.4 minutes) it finds 19 speakers and keeps a recurring voice's label,
speaker confusion about 10 % of scored speech; one pass of share-weighted Ward over the
whole recording found ONE. Diarizing an hour adds about 100 MB to the process.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from aisubs.audio import SAMPLE_RATE, CancelCheck, raise_if_cancelled
from aisubs.diarization.base import canonical_turns, resolve_speaker_bounds, validate_audio
from aisubs.diarization.clustering import ClusteringOptions, cluster_embeddings
from aisubs.diarization.embedding import ResemblyzerEmbedder, WindowOptions, smooth_embeddings
from aisubs.diarization.turns import FRAME_S, frame_labels, labels_to_turns, smooth_labels
from aisubs.settings import DiarizationSettings
from aisubs.transcript import SpeakerTurn
from aisubs.vad import SileroVAD, VADOptions


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class EmbeddedDiarizer:
    """Loads its two small models once; :meth:`diarize` is safe to call from many threads."""

    def __init__(self, settings: DiarizationSettings | None = None) -> None:
        self.settings = settings = settings or DiarizationSettings()
        if settings.cpu_threads > 0:
            torch.set_num_threads(settings.cpu_threads)
        self.vad = SileroVAD(
            VADOptions(
                threshold=settings.vad_threshold,
                min_speech_s=settings.vad_min_speech_s,
                min_silence_s=settings.vad_min_silence_s,
                pad_s=settings.vad_pad_s,
            )
        )
        self.embedder = ResemblyzerEmbedder(
            WindowOptions(window_s=settings.window_s, hop_s=settings.hop_s),
            device=resolve_device(settings.device),
        )
        self.clustering = ClusteringOptions(
            threshold=settings.cluster_threshold,
            max_windows=settings.max_cluster_windows,
            chunk_s=settings.cluster_chunk_s,
            link_threshold=settings.cluster_link_threshold,
            min_speaker_s=settings.min_speaker_s,
            voice_scatter=settings.voice_scatter,
            # A window plus the neighbour on each side that smoothing averages in.
            embedding_span_s=settings.window_s + 2 * settings.hop_s,
        )
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads

    def diarize(
        self,
        audio: np.ndarray,
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> list[SpeakerTurn]:
        bounds = resolve_speaker_bounds(
            num_speakers, min_speakers, max_speakers, default_max=self.settings.max_speakers
        )
        samples = validate_audio(audio)
        duration = len(samples) / SAMPLE_RATE
        with self._lock:
            raise_if_cancelled(should_cancel, "diarization")
            regions = self.vad.speech_regions(samples, should_cancel)
            if not regions:
                return []
            windows = self.embedder.embed(samples, regions, should_cancel)
        raise_if_cancelled(should_cancel, "diarization")
        if len(windows) == 0:
            # Speech too short to embed: one voice is the only honest answer.
            return canonical_turns((s, e, 0) for s, e in regions)
        vectors = smooth_embeddings(windows, self.settings.hop_s)
        labels = cluster_embeddings(vectors, bounds, self.clustering, starts=windows.starts)
        per_frame = frame_labels(windows, labels, regions, duration)
        smoothed = smooth_labels(
            per_frame, min_turn_frames=round(self.settings.min_turn_s / FRAME_S)
        )
        # Smoothing must not erase a speaker the caller insisted on.
        if len(np.unique(smoothed[smoothed >= 0])) >= min(
            bounds.min_speakers, len(np.unique(per_frame[per_frame >= 0]))
        ):
            per_frame = smoothed
        return canonical_turns(labels_to_turns(per_frame))
