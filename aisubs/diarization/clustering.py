"""Group window embeddings into speakers, choosing how many unless told.

Two levels, the way long-form diarizers (pyannote 3 among them) work:

1. **Local**: the windows of each ``chunk_s`` stretch of the recording are clustered alone
   with Ward on L2-normalised embeddings. Ward's merge cost grows with the square root of
   the cluster sizes, so merge heights are divided by ``sqrt(n_windows)``: the cut then
   compares centroid distances weighted by the *share* of speech each side holds. That
   cut was tuned on 30 s excerpts, and it only works at that scale: over a long recording
   with many voices each voice holds a small share, every weighted distance falls under
   the threshold, and a 30-minute compilation of 28 voices came out as ONE speaker. So it
   is only ever applied to chunks of about the length it was tuned on.
2. **Global**: the local clusters (each a few seconds of one voice, summarised by its
   centroid) are linked across chunks by average-linkage on centroid distance, a
   size-free measure of how different two voices sound: the same voice in different
   30 s excerpts measured 0.35-0.40 apart, different voices 0.61 and more. Local clusters
   with less than ``min_speaker_s`` of speech are too noisy to found a speaker; they join
   the nearest linked one.

A split must also beat chance. Ward always finds *some* best split, and with few windows a
single voice's scatter alone makes it look convincing: consecutive windows overlap and are
averaged with their neighbours, so an 11 s clip holds only about four independent looks at
the voice, and jfk.flac (one speaker) came out as two. For one voice whose independent
observations scatter by ``s^2`` around its centroid, splitting it costs Ward about
``c * s^2`` (``c`` windows per independent observation), whatever the window count; so the
local cut height is never below the height of that chance split, ``sqrt(2 c s^2 / n)``.
From about 10 s of speech on it is below ``threshold`` and changes nothing.

Recordings no longer than one chunk take only the local step, exactly as before. Memory
and time stay bounded for any duration: the local step is O(chunk^2), the global one
works on a few centroids per chunk (at most ``max_windows`` of them are linked; the rest
join the nearest result).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from aisubs.diarization.base import SpeakerBounds


@dataclass(frozen=True, slots=True)
class ClusteringOptions:
    # Cut height for size-normalised Ward merges inside one chunk. On the AMI train
    # excerpts pooled DER is flat (29.7 %) for 0.30-0.34 and worse below; the two voices of
    # the phone-call sample merge from 0.32 on, so the low end of that plateau is used.
    threshold: float = 0.30
    # At most this many points enter one hierarchical clustering (memory is O(n^2)).
    max_windows: int = 3000
    # Length of the stretches clustered locally: the excerpt length ``threshold`` was
    # tuned on. 25-30 s gave the same result on a 30-minute compilation, 40 s was worse.
    chunk_s: float = 30.0
    # Centroid distance (unit vectors) under which local clusters are the same voice.
    # Between the same voice across excerpts (0.35-0.40) and distinct voices (>= 0.61).
    link_threshold: float = 0.5
    # Local clusters with less speech than this are attached, never a speaker of their own.
    min_speaker_s: float = 2.0
    # Mean squared distance of one voice's (unit, neighbour-smoothed) window embeddings to
    # its centroid: median 0.176 over the reference single-speaker windows of the AMI
    # excerpts and the phone-call sample. Sets the chance level a split must beat.
    voice_scatter: float = 0.18
    # Seconds of audio behind one embedding (window plus the neighbours it is averaged
    # with): windows closer than this are not independent evidence about the voice.
    embedding_span_s: float = 2.5


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-8)


def _centroids(
    x: np.ndarray, labels: np.ndarray, k: int, weights: np.ndarray | None = None
) -> np.ndarray:
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, x if weights is None else x * weights[:, None])
    return _normalise(sums)


def _spread(n: int, limit: int) -> np.ndarray:
    """At most ``limit`` indices evenly spread over ``range(n)``."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def _compact(labels: np.ndarray) -> np.ndarray:
    _, out = np.unique(labels, return_inverse=True)
    return out.astype(np.int64)


def _cut(tree: np.ndarray, height: float, bounds: SpeakerBounds, n: int) -> np.ndarray:
    """Flat labels ``0..k-1``: cut at ``height``, or at the nearest count ``bounds`` allow."""
    labels = fcluster(tree, height, criterion="distance")
    k = len(np.unique(labels))
    wanted = min(max(k, bounds.min_speakers), bounds.max_speakers, n)
    if wanted != k:
        labels = fcluster(tree, wanted, criterion="maxclust")
    return _compact(labels)


def _chance_height(m: int, per_observation: float, opts: ClusteringOptions) -> float:
    """Normalised Ward height of the best split of ONE voice seen through ``m`` windows.

    Ward's merge height is ``sqrt(2 * cost)``; splitting one voice's windows costs about
    ``c * voice_scatter``, with ``c`` windows per independent observation (at least one).
    """
    return float(np.sqrt(2.0 * max(per_observation, 1.0) * opts.voice_scatter / m))


def _cluster_local(
    x: np.ndarray, bounds: SpeakerBounds, opts: ClusteringOptions, per_observation: float = 1.0
) -> np.ndarray:
    """Size-normalised Ward on unit vectors ``x`` (the single-chunk clustering).

    ``per_observation``: how many consecutive rows of ``x`` share their audio (1 when rows
    are independent); it sets the chance level a split must beat.
    """
    n = len(x)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    chosen = _spread(n, opts.max_windows)
    sample = x[chosen]
    m = len(sample)
    tree = linkage(sample, method="ward", metric="euclidean")
    tree[:, 2] /= np.sqrt(m)
    # Subsampled rows lie further apart, so fewer of them share audio.
    height = max(opts.threshold, _chance_height(m, per_observation * m / n, opts))
    labels = _cut(tree, height, bounds, m)
    if m == n:
        return labels
    result = np.argmax(x @ _centroids(sample, labels, int(labels.max()) + 1).T, axis=1)
    result[chosen] = labels  # clustered windows keep their tree label
    return result.astype(np.int64)


def _typical_hop(starts: np.ndarray) -> float:
    steps = np.diff(np.sort(starts))
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else 1.0


def cluster_embeddings(
    vectors: np.ndarray,
    bounds: SpeakerBounds,
    options: ClusteringOptions | None = None,
    *,
    starts: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster index per embedding row, ``0..k-1``, with ``k`` inside ``bounds`` if possible.

    ``starts`` (seconds, one per row) lets long recordings be clustered chunk by chunk and
    linked, and tells how many rows share audio; without it every row is clustered in one
    pass and taken as independent evidence. ``k`` can fall short of
    ``bounds.min_speakers`` only when there are fewer windows (or, on long input, local
    clusters) than requested speakers.
    """
    opts = options or ClusteringOptions()
    n = len(vectors)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    x = _normalise(np.asarray(vectors, dtype=np.float64))
    if starts is None:
        return _cluster_local(x, bounds, opts)
    starts = np.asarray(starts, dtype=np.float64)
    if len(starts) != n:
        raise ValueError(f"{len(starts)} window starts for {n} embeddings")
    per_observation = opts.embedding_span_s / _typical_hop(starts)
    chunks = np.floor((starts - starts.min()) / opts.chunk_s).astype(np.int64)
    if chunks.max() == 0:
        return _cluster_local(x, bounds, opts, per_observation)

    # 1. Local clusters, chunk by chunk, each at most max_speakers voices.
    local_bounds = SpeakerBounds(1, bounds.max_speakers)
    local = np.zeros(n, dtype=np.int64)
    offset = 0
    for chunk in np.unique(chunks):
        rows = np.flatnonzero(chunks == chunk)
        labels = _cluster_local(x[rows], local_bounds, opts, per_observation)
        local[rows] = labels + offset
        offset += int(labels.max()) + 1
    if offset < bounds.min_speakers:
        # Fewer local voices than the caller insists on: only one tree over all windows
        # can be cut into that many.
        return _cluster_local(x, bounds, opts, per_observation)
    sizes = np.bincount(local, minlength=offset).astype(np.float64)
    centres = _centroids(x, local, offset)

    # 2. Link the local clusters with enough speech; the rest join the nearest voice.
    big = np.flatnonzero(sizes * _typical_hop(starts) >= opts.min_speaker_s)
    if len(big) < max(bounds.min_speakers, 1):
        big = np.arange(offset)
    linked = big[_spread(len(big), opts.max_windows)]
    if len(linked) == 1:
        linked_labels = np.zeros(1, dtype=np.int64)
    else:
        tree = linkage(centres[linked], method="average", metric="euclidean")
        linked_labels = _cut(tree, opts.link_threshold, bounds, len(linked))
    k = int(linked_labels.max()) + 1
    voices = _centroids(centres[linked], linked_labels, k, weights=sizes[linked])
    mapping = np.argmax(centres @ voices.T, axis=1).astype(np.int64)
    mapping[linked] = linked_labels
    return _compact(mapping[local])
