"""Fast checks of the pieces that need no model: hints, labels, clustering, turns, scoring."""

from __future__ import annotations

import numpy as np
import pytest
from pyannote.core import Annotation, Segment

from aisubs.diarization.base import (
    SpeakerBounds,
    canonical_turns,
    resolve_speaker_bounds,
    validate_audio,
)
from aisubs.diarization.clustering import ClusteringOptions, cluster_embeddings
from aisubs.diarization.embedding import WindowEmbeddings, WindowOptions, window_bounds
from aisubs.diarization.scoring import der, der_components, pooled_der
from aisubs.diarization.turns import frame_labels, labels_to_turns, smooth_labels
from aisubs.errors import InvalidRequest
from aisubs.transcript import SpeakerTurn
from aisubs.vad import loudness_gain


# ---------------------------------------------------------------- hints
@pytest.mark.parametrize(
    ("num", "low", "high", "expected"),
    [
        (None, None, None, SpeakerBounds(1, 8)),
        (2, None, None, SpeakerBounds(2, 2)),
        (None, 2, None, SpeakerBounds(2, 8)),
        (None, None, 1, SpeakerBounds(1, 1)),
        (None, 10, None, SpeakerBounds(10, 10)),
        (3, 2, 4, SpeakerBounds(3, 3)),
    ],
)
def test_speaker_bounds(num, low, high, expected) -> None:  # type: ignore[no-untyped-def]
    assert resolve_speaker_bounds(num, low, high, default_max=8) == expected


@pytest.mark.parametrize(
    ("num", "low", "high"),
    [
        (0, None, None),
        (None, 3, 2),
        (None, 0, None),
        (None, None, 0),
        (5, 1, 3),
        (1, 2, None),
        (1.5, None, None),
        (True, None, None),
    ],
)
def test_invalid_hints_rejected(num, low, high) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest):
        resolve_speaker_bounds(num, low, high, default_max=8)


def test_validate_audio() -> None:
    assert validate_audio(np.zeros((1, 10), dtype=np.float64)).dtype == np.float32
    with pytest.raises(InvalidRequest):
        validate_audio(np.zeros((2, 10), dtype=np.float32))
    with pytest.raises(InvalidRequest):
        validate_audio(np.zeros(10, dtype=np.int16))
    with pytest.raises(InvalidRequest):
        validate_audio(np.array([0.0, np.nan], dtype=np.float32))


def test_canonical_turns_orders_and_renames() -> None:
    turns = canonical_turns([(5.0, 6.0, "b"), (1.0, 2.0, "z"), (3.0, 4.0, "b"), (7.0, 7.0, "q")])
    assert [t.speaker for t in turns] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_01"]
    assert [t.start for t in turns] == [1.0, 3.0, 5.0]


# ---------------------------------------------------------------- clustering
def _blobs(
    centres: int, per: int, seed: int = 0, spread: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, 32))
    truth = np.repeat(np.arange(centres), per)
    return means[truth] + spread * rng.standard_normal((len(truth), 32)), truth


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        len(set(zip(a.tolist(), b.tolist(), strict=True)))
        == len(set(a.tolist()))
        == len(set(b.tolist()))
    )


def test_clustering_finds_the_number_of_voices() -> None:
    x, truth = _blobs(3, 20)
    labels = cluster_embeddings(x, SpeakerBounds(1, 8))
    assert _same_partition(labels, truth)


def test_clustering_one_voice_stays_one() -> None:
    x, _ = _blobs(1, 40)
    assert set(cluster_embeddings(x, SpeakerBounds(1, 8)).tolist()) == {0}


def test_clustering_honours_bounds() -> None:
    x, _ = _blobs(3, 20)
    assert len(set(cluster_embeddings(x, SpeakerBounds(1, 2)).tolist())) == 2
    assert len(set(cluster_embeddings(x, SpeakerBounds(5, 5)).tolist())) == 5
    assert len(set(cluster_embeddings(x[:2], SpeakerBounds(4, 4)).tolist())) == 2
    assert cluster_embeddings(x[:1], SpeakerBounds(1, 8)).tolist() == [0]
    assert cluster_embeddings(x[:0], SpeakerBounds(1, 8)).tolist() == []


def test_clustering_subsamples_long_inputs() -> None:
    x, truth = _blobs(2, 500)
    labels = cluster_embeddings(x, SpeakerBounds(1, 8), ClusteringOptions(max_windows=60))
    assert _same_partition(labels, truth)


def test_clustering_is_independent_of_window_density() -> None:
    # The same two voices, sampled 10 or 200 times each, must give the same answer.
    for per in (10, 200):
        x, truth = _blobs(2, per, spread=0.3)
        assert _same_partition(cluster_embeddings(x, SpeakerBounds(1, 8)), truth)


def _voices_in_chunks(n_voices: int, per: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Voice ``v`` speaks ``per`` windows (hop 0.5 s) in the v-th 30 s chunk; voice 0 again last."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((n_voices, 32))
    order = [*range(n_voices), 0]
    truth = np.repeat(order, per)
    starts = np.concatenate([c * 30.0 + 0.5 * np.arange(per) for c in range(len(order))])
    x = means[truth] + 0.1 * rng.standard_normal((len(truth), 32))
    return x, truth, starts


def test_clustering_many_voices_with_small_shares() -> None:
    # The regression: 20 voices, each a twentieth of a long recording. Clustered in one
    # pass with share-weighted Ward heights they all fell under the cut (one speaker).
    x, truth, starts = _voices_in_chunks(20, 12)
    labels = cluster_embeddings(x, SpeakerBounds(1, 32), starts=starts)
    assert _same_partition(labels, truth)
    # A voice that comes back after many others keeps its label.
    assert labels[0] == labels[-1]


def test_clustering_long_input_honours_bounds_and_short_input_is_unchanged() -> None:
    x, _, starts = _voices_in_chunks(6, 12)
    assert len(set(cluster_embeddings(x, SpeakerBounds(1, 3), starts=starts).tolist())) == 3
    assert len(set(cluster_embeddings(x, SpeakerBounds(8, 8), starts=starts).tolist())) == 8
    # Everything inside one chunk: the same answer as the single-pass clustering.
    short, _ = _blobs(3, 20)
    times = 0.5 * np.arange(len(short)) / 2
    assert np.array_equal(
        cluster_embeddings(short, SpeakerBounds(1, 8), starts=times),
        cluster_embeddings(short, SpeakerBounds(1, 8)),
    )


def test_clustering_long_input_keeps_tiny_clusters_off_the_speaker_list() -> None:
    # A lone 1-window outlier in some chunk is not a new speaker on long input.
    x, _, starts = _voices_in_chunks(3, 12)
    rng = np.random.default_rng(5)
    x = np.vstack([x, rng.standard_normal((1, 32))])
    starts = np.append(starts, starts.max() + 40.0)
    labels = cluster_embeddings(x, SpeakerBounds(1, 32), starts=starts)
    assert len(set(labels.tolist())) == 3
    with pytest.raises(ValueError):
        cluster_embeddings(x, SpeakerBounds(1, 8), starts=starts[:-1])


# ---------------------------------------------------------------- windows and turns
def test_window_bounds_cover_regions() -> None:
    opts = WindowOptions(window_s=1.5, hop_s=0.5, min_window_s=0.4)
    bounds = window_bounds([(0.0, 0.3), (1.0, 2.0), (3.0, 6.2)], opts)
    assert (1.0, 2.0) in bounds
    assert all(s >= 3.0 and e <= 6.2 + 1e-9 for s, e in bounds[1:])
    assert bounds[-1][1] == pytest.approx(6.2)


def test_frames_smoothing_and_turns() -> None:
    starts = np.arange(0.0, 9.0, 0.5)
    windows = WindowEmbeddings(starts=starts, ends=starts + 1.5, vectors=np.zeros((len(starts), 4)))
    labels = np.array([0] * 8 + [1] * 10)
    labels[3] = 1  # an isolated flicker inside speaker 0
    regions = [(0.0, 5.0), (5.5, 10.5)]
    frames = frame_labels(windows, labels, regions, duration=12.0)
    assert (frames[int(5.2 / 0.02)] == -1) and (frames[int(11.0 / 0.02)] == -1)
    assert [t[2] for t in labels_to_turns(frames)] == [0, 1, 0, 1, 1]  # the flicker shows
    turns = labels_to_turns(smooth_labels(frames, min_turn_frames=50))
    # The flicker and the 0.5 s stub of speaker 1 before the pause are absorbed; the VAD
    # pause itself (5.0-5.5 s) is kept.
    assert [t[2] for t in turns] == [0, 1]
    assert turns[0][0] == pytest.approx(0.0) and turns[0][1] == pytest.approx(5.0)
    assert turns[1][0] == pytest.approx(5.5) and turns[1][1] == pytest.approx(10.5)


def test_loudness_gain() -> None:
    assert loudness_gain(np.zeros(16000, np.float32), target_dbfs=-20, noise_floor_dbfs=-70) == 0.0
    tone = 0.001 * np.sin(np.arange(16000) / 5).astype(np.float32)  # about -63 dBFS
    gain = loudness_gain(tone, target_dbfs=-20, noise_floor_dbfs=-70)
    assert 50 < gain < 200
    loud = np.clip(tone * 900, -1, 1)
    assert (
        float(np.max(np.abs(loud * loudness_gain(loud, target_dbfs=0, noise_floor_dbfs=-70)))) < 1
    )


# ---------------------------------------------------------------- scoring
def _reference() -> Annotation:
    ref = Annotation(uri="x")
    ref[Segment(0, 10)] = "a"
    ref[Segment(10, 20)] = "b"
    return ref


def test_der_perfect_empty_and_swapped() -> None:
    perfect = [SpeakerTurn(0, 10, "S0"), SpeakerTurn(10, 20, "S1")]
    assert der(_reference(), perfect) == pytest.approx(0.0)
    assert der(_reference(), []) == pytest.approx(1.0)
    one = [SpeakerTurn(0, 20, "S0")]
    assert der(_reference(), one, uem=(0, 20)) == pytest.approx(9.75 / 19.5, abs=1e-3)
    parts = der_components(_reference(), one, uem=(0, 20))
    assert parts["confusion"] == pytest.approx(9.75, abs=1e-3)
    pooled, per_file = pooled_der([(_reference(), perfect, None), (_reference(), [], None)])
    assert per_file == [pytest.approx(0.0), pytest.approx(1.0)]
    assert pooled == pytest.approx(0.5, abs=0.01)


def test_rttm_loader_and_self_score(data) -> None:  # type: ignore[no-untyped-def]
    from aisubs.diarization.scoring import load_rttm, load_uem

    refs = load_rttm(data.ami / "train.rttm")
    assert "MÉO069" in refs["trn00"].labels()
    uem = load_uem(data.ami / "train.uem")["trn00"]
    as_turns = [
        SpeakerTurn(s.start, s.end, str(label))
        for s, _, label in refs["trn00"].itertracks(yield_label=True)
    ]
    assert der(data.ami / "train.rttm", as_turns, uem=uem, uri="trn00") == pytest.approx(0.0)
    assert der(data.sample_rttm, []) == pytest.approx(1.0)


def _two_halves(per_half: int, separation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One drift of the voice: ``per_half`` windows (hop 0.5 s) on each side of a direction."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(32)
    base /= np.linalg.norm(base)
    shift = rng.standard_normal(32)
    shift -= (shift @ base) * base
    shift *= separation / (2 * np.linalg.norm(shift))
    x = np.vstack([np.tile(base + shift, (per_half, 1)), np.tile(base - shift, (per_half, 1))])
    x += 0.01 * rng.standard_normal(x.shape)
    return x, 0.5 * np.arange(len(x))


def test_clustering_split_must_beat_one_voices_chance_scatter() -> None:
    # The regression: jfk.flac (11 s, one speaker) came out as two. A difference between
    # two 2.5 s stretches is what one voice's scatter gives by chance...
    x, starts = _two_halves(5, 0.55)
    assert set(cluster_embeddings(x, SpeakerBounds(1, 8), starts=starts).tolist()) == {0}
    # ...the same difference held for 20 s on each side is two voices,
    x, starts = _two_halves(40, 0.55)
    assert len(set(cluster_embeddings(x, SpeakerBounds(1, 8), starts=starts).tolist())) == 2
    # and so it is when every row is independent evidence, or when the caller says so.
    x, starts = _two_halves(5, 0.55)
    assert len(set(cluster_embeddings(x, SpeakerBounds(1, 8)).tolist())) == 2
    two = SpeakerBounds(2, 2)
    assert len(set(cluster_embeddings(x, two, starts=starts).tolist())) == 2
