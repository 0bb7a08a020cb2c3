"""Decoding: every common container to 16 kHz mono float32, typed errors for bad input."""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from aisubs.errors import (
    EmptyMedia,
    MediaError,
    MediaTooLarge,
    MediaTooLong,
    NoAudioStream,
    UndecodableMedia,
)
from aisubs.media import SAMPLE_RATE, decode_audio, iter_audio_chunks, probe_media
from aisubs.settings import MediaSettings
from tests.media.media_factory import CONTAINERS, tone, write_audio, write_video_only
from tests.support.paths import JFK

LIMITS = MediaSettings()
FREQ = 440.0


def _dominant_frequency(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)[np.argmax(spectrum)])


@pytest.mark.parametrize("ext", sorted(CONTAINERS))
def test_every_container_decodes_to_16k_mono_float32(tmp_path: Path, ext: str) -> None:
    muxer, codec, rate = CONTAINERS[ext]
    path = write_audio(
        tmp_path / f"tone.{ext}", tone(2.0, rate, FREQ), muxer=muxer, codec=codec, rate=rate
    )
    audio = decode_audio(path, LIMITS)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    # Codec priming/padding adds at most a few frames.
    assert abs(audio.size / SAMPLE_RATE - 2.0) < 0.1
    assert abs(_dominant_frequency(audio) - FREQ) < 5
    rms = float(np.sqrt(np.mean(audio[SAMPLE_RATE // 4 : -SAMPLE_RATE // 4] ** 2)))
    assert 0.1 < rms < 0.5  # the tone is there, neither silent nor clipped garbage
    info = probe_media(path, LIMITS)
    assert info.duration_s is not None and abs(info.duration_s - 2.0) < 0.1


def test_resamples_and_downmixes_real_recording() -> None:
    # jfk.flac is 44.1 kHz stereo: 11 s.
    audio = decode_audio(JFK, LIMITS)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size == 11 * SAMPLE_RATE


def test_file_object_source(tmp_path: Path) -> None:
    path = write_audio(
        tmp_path / "a.flac", tone(1.0, 16000), muxer="flac", codec="flac", rate=16000, layout="mono"
    )
    from_file = decode_audio(io.BytesIO(path.read_bytes()), LIMITS)
    np.testing.assert_array_equal(from_file, decode_audio(path, LIMITS))


def test_chunks_are_fixed_size_and_concatenate_to_the_whole(tmp_path: Path) -> None:
    path = write_audio(
        tmp_path / "a.wav",
        tone(3.3, 16000),
        muxer="wav",
        codec="pcm_s16le",
        rate=16000,
        layout="mono",
    )
    chunks = list(iter_audio_chunks(path, LIMITS, chunk_s=1.0))
    assert [c.size for c in chunks] == [16000, 16000, 16000, 4800]
    np.testing.assert_array_equal(np.concatenate(chunks), decode_audio(path, LIMITS))
    # default chunk length comes from settings
    default = list(iter_audio_chunks(path, MediaSettings(decode_chunk_s=2.0)))
    assert [c.size for c in default] == [32000, 20800]


def test_silence_decodes_fine(tmp_path: Path) -> None:
    path = write_audio(
        tmp_path / "silence.mp3",
        np.zeros(2 * 44100, dtype=np.float32),
        muxer="mp3",
        codec="libmp3lame",
        rate=44100,
    )
    audio = decode_audio(path, LIMITS)
    assert abs(audio.size / SAMPLE_RATE - 2.0) < 0.1
    assert float(np.abs(audio).max()) < 1e-3


def test_random_bytes_named_wav_is_undecodable(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(UndecodableMedia) as err:
        decode_audio(path, LIMITS)
    assert err.value.code == "undecodable_media" and not err.value.retryable


def test_truncated_mp4_is_undecodable(tmp_path: Path) -> None:
    full = write_audio(
        tmp_path / "full.mp4", tone(3.0, 44100), muxer="mp4", codec="aac", rate=44100
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(UndecodableMedia):
        decode_audio(cut, LIMITS)


def test_zero_length_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    with pytest.raises(EmptyMedia):
        decode_audio(path, LIMITS)
    with pytest.raises(EmptyMedia):
        list(iter_audio_chunks(path, LIMITS))


def test_missing_file_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        decode_audio(tmp_path / "nope.wav", LIMITS)


def test_video_without_audio_has_no_audio_stream(tmp_path: Path) -> None:
    path = write_video_only(tmp_path / "video.mp4")
    with pytest.raises(NoAudioStream) as err:
        decode_audio(path, LIMITS)
    assert "video" in str(err.value)


def test_too_large_is_rejected_before_parsing(tmp_path: Path) -> None:
    path = write_audio(
        tmp_path / "a.wav",
        tone(1.0, 16000),
        muxer="wav",
        codec="pcm_s16le",
        rate=16000,
        layout="mono",
    )
    with pytest.raises(MediaTooLarge):
        decode_audio(path, MediaSettings(max_upload_bytes=1000))


def test_too_long_by_honest_header(tmp_path: Path) -> None:
    path = write_audio(
        tmp_path / "a.flac", tone(3.0, 16000), muxer="flac", codec="flac", rate=16000, layout="mono"
    )
    with pytest.raises(MediaTooLong):
        probe_media(path, MediaSettings(max_duration_s=2.0))
    with pytest.raises(MediaTooLong):
        decode_audio(path, MediaSettings(max_duration_s=2.0))


def _mp3_with_frame_count(tmp_path: Path, name: str, frames: int, seconds: float) -> Path:
    """An mp3 whose Xing/Info header claims ``frames`` MPEG frames, whatever it holds."""
    path = write_audio(
        tmp_path / name,
        tone(seconds, 16000),
        muxer="mp3",
        codec="libmp3lame",
        rate=16000,
        layout="mono",
    )
    data = bytearray(path.read_bytes())
    pos = max(data.find(b"Xing"), data.find(b"Info"))
    assert pos > 0, "the mp3 muxer writes a Xing/Info header"
    flags = struct.unpack_from(">I", data, pos + 4)[0]
    assert flags & 1, "header carries a frame count"
    struct.pack_into(">I", data, pos + 8, frames)
    path.write_bytes(bytes(data))
    return path


def test_header_claiming_hours_fails_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = _mp3_with_frame_count(tmp_path, "hours.mp3", 10_000_000, seconds=2.0)
    decoded_blocks: list[int] = []
    import aisubs.media.decode as decode_mod

    real_emit = decode_mod._iter_frames

    def counting(*args, **kwargs):
        for block in real_emit(*args, **kwargs):
            decoded_blocks.append(block.size)
            yield block

    monkeypatch.setattr(decode_mod, "_iter_frames", counting)
    with pytest.raises(MediaTooLong, match="header"):
        decode_audio(path, MediaSettings(max_duration_s=3600))
    with pytest.raises(MediaTooLong, match="header"):
        next(iter_audio_chunks(path, MediaSettings(max_duration_s=3600)))
    assert decoded_blocks == []  # failed from metadata alone


def test_header_understating_length_is_enforced_while_decoding(tmp_path: Path) -> None:
    path = _mp3_with_frame_count(tmp_path, "short_header.mp3", 5, seconds=20.0)
    assert probe_media(path, LIMITS).duration_s < 1.0  # the lie
    with pytest.raises(MediaTooLong, match="while decoding"):
        decode_audio(path, MediaSettings(max_duration_s=10))
    chunks: list[np.ndarray] = []
    with pytest.raises(MediaTooLong):
        for chunk in iter_audio_chunks(path, MediaSettings(max_duration_s=10), chunk_s=1.0):
            chunks.append(chunk)
    assert len(chunks) <= 10  # stopped at the limit, not at the end of the file
    # Under a generous limit the whole truth decodes.
    assert abs(decode_audio(path, LIMITS).size / SAMPLE_RATE - 20.0) < 0.2


@pytest.mark.slow
def test_decode_memory_is_the_output_array_plus_small_overhead(tmp_path: Path) -> None:
    minutes = 20
    rate = 16000
    # Low-bitrate noise-modulated tone: cheap to encode, not trivially compressible.
    rng = np.random.default_rng(1)
    signal = tone(minutes * 60, rate) + 0.05 * rng.standard_normal(minutes * 60 * rate).astype(
        np.float32
    )
    path = write_audio(
        tmp_path / "long.mp3",
        signal,
        muxer="mp3",
        codec="libmp3lame",
        rate=rate,
        layout="mono",
        bit_rate=32000,
    )
    del signal
    tracemalloc.start()
    try:
        audio = decode_audio(path, LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(audio.size / SAMPLE_RATE - minutes * 60) < 1
    overhead = peak - audio.nbytes
    assert overhead < 0.1 * audio.nbytes + 4 * 1024**2, (
        f"peak {peak / 1e6:.1f} MB for a {audio.nbytes / 1e6:.1f} MB output"
    )

    # The chunk iterator holds one chunk at a time, whatever the length.
    tracemalloc.start()
    try:
        total = 0
        for chunk in iter_audio_chunks(path, LIMITS, chunk_s=30):
            total += chunk.size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == audio.size
    assert peak < 8 * 1024**2, f"chunked decoding peaked at {peak / 1e6:.1f} MB"
