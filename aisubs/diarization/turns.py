"""From clustered windows back to speaker turns on the speech timeline.

Windows overlap (hop < window), so each short frame of speech is covered by one to three
windows that may disagree. Every window votes for its speaker with a Hann weight peaking at
its centre, the frame takes the strongest vote, and a median-style filter then removes
flickers shorter than ``min_turn_s`` (a speaker change every 100 ms is a clustering
artefact, not a conversation). Only frames inside VAD speech get a speaker.
"""

from __future__ import annotations

import numpy as np

from aisubs.diarization.embedding import WindowEmbeddings

FRAME_S = 0.02


def frame_labels(
    windows: WindowEmbeddings,
    labels: np.ndarray,
    regions: list[tuple[float, float]],
    duration: float,
    *,
    frame_s: float = FRAME_S,
) -> np.ndarray:
    """Speaker index per frame (``-1`` for non-speech or frames no window covers)."""
    n_frames = int(np.ceil(duration / frame_s))
    n_speakers = int(labels.max()) + 1 if len(labels) else 0
    votes = np.zeros((n_frames, max(n_speakers, 1)), dtype=np.float32)
    for start, end, label in zip(windows.starts, windows.ends, labels, strict=True):
        a = int(start / frame_s)
        b = min(int(np.ceil(end / frame_s)), n_frames)
        if b <= a:
            continue
        # +2 keeps the window's first and last frame from getting zero weight.
        votes[a:b, label] += np.hanning(b - a + 2)[1:-1]
    speech = np.zeros(n_frames, dtype=bool)
    for start, end in regions:
        speech[int(start / frame_s) : int(np.ceil(end / frame_s))] = True
    result = np.where(votes.max(axis=1) > 0, votes.argmax(axis=1), -1)
    # Speech no window covers (regions too short to embed, window edges) takes the label
    # of the nearest covered frame, so short back-channels are not silently dropped.
    covered = np.flatnonzero(result >= 0)
    if len(covered):
        idx = np.searchsorted(covered, np.arange(n_frames))
        left = covered[np.clip(idx - 1, 0, len(covered) - 1)]
        right = covered[np.clip(idx, 0, len(covered) - 1)]
        nearest = np.where(
            np.abs(left - np.arange(n_frames)) <= np.abs(right - np.arange(n_frames)), left, right
        )
        result = result[nearest]
    result[~speech] = -1
    return result


def smooth_labels(labels: np.ndarray, *, min_turn_frames: int) -> np.ndarray:
    """Absorb runs of one speaker shorter than ``min_turn_frames`` into their neighbours.

    Non-speech (-1) runs are kept as they are: gaps come from the VAD, which knows better.
    Short speaker runs bordered by speech take the longer neighbouring speaker run.
    """
    if min_turn_frames <= 1 or len(labels) == 0:
        return labels
    out = labels.copy()
    for _ in range(3):  # a few passes settle cascades of tiny runs
        starts = np.flatnonzero(np.r_[True, out[1:] != out[:-1]])
        ends = np.r_[starts[1:], len(out)]
        changed = False
        for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
            if out[s] < 0 or e - s >= min_turn_frames:
                continue
            left = (out[starts[i - 1]], ends[i - 1] - starts[i - 1]) if i > 0 else (-1, 0)
            right = (
                (out[starts[i + 1]], ends[i + 1] - starts[i + 1])
                if i + 1 < len(starts)
                else (-1, 0)
            )
            candidates = [c for c in (left, right) if c[0] >= 0]
            if not candidates:
                continue
            out[s:e] = max(candidates, key=lambda c: c[1])[0]
            changed = True
        if not changed:
            break
    return out


def labels_to_turns(
    labels: np.ndarray, *, frame_s: float = FRAME_S
) -> list[tuple[float, float, int]]:
    """Contiguous runs of one speaker as ``(start_s, end_s, speaker_index)``."""
    if len(labels) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:], len(labels)]
    return [
        (float(s * frame_s), float(e * frame_s), int(labels[s]))
        for s, e in zip(starts, ends, strict=True)
        if labels[s] >= 0
    ]
