"""Decode any common audio or video container to 16 kHz mono float32, streaming.

Why streaming: uploads may be hours long and workers share memory with models, so packets
are demuxed, decoded and resampled (by PyAV's libswresample) one at a time and written
straight into the output array; nothing but that array grows with the input. The same
frame stream feeds :func:`iter_audio_chunks` for callers that never need the whole array.

Limits come from :class:`aisubs.settings.MediaSettings`: ``max_upload_bytes`` is checked on
the file size before anything is parsed, ``max_duration_s`` is checked twice, first against
the container's own duration (so a header claiming hours fails at once) and then against
the samples actually decoded (so a header that under-states the length cannot sneak a long
file past the limit).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import av
import av.audio.stream
import numpy as np

from aisubs.audio import SAMPLE_RATE
from aisubs.errors import (
    EmptyMedia,
    MediaTooLarge,
    MediaTooLong,
    NoAudioStream,
    UndecodableMedia,
)
from aisubs.settings import MediaSettings

log = logging.getLogger(__name__)

MediaSource = str | os.PathLike[str] | BinaryIO

# Packets that fail to decode are skipped (ffmpeg does the same): a few damaged packets in a
# long recording should not lose the whole job. Past this many, the input is garbage.
_MAX_BAD_PACKETS = 100


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What the container says about its first audio stream, before decoding."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None  # None when the container does not say


def _source_size(source: MediaSource) -> int | None:
    if isinstance(source, str | os.PathLike):
        return os.path.getsize(source)
    try:
        pos = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(pos)
        return end - pos
    except (OSError, AttributeError, ValueError):
        return None


def _check_size(source: MediaSource, limits: MediaSettings) -> None:
    try:
        size = _source_size(source)
    except FileNotFoundError as exc:
        raise UndecodableMedia(f"media file not found: {source}") from exc
    if size is None:
        return
    if size == 0:
        raise EmptyMedia("the media file is empty (0 bytes)")
    if size > limits.max_upload_bytes:
        limit = f"media is {size} bytes, above the limit of {limits.max_upload_bytes} bytes"
        raise MediaTooLarge(f"{limit} (AISUBS_MEDIA__MAX_UPLOAD_BYTES)", public=limit)


def _open(source: MediaSource) -> av.container.InputContainer:
    try:
        return av.open(source, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise UndecodableMedia(f"cannot read the media container: {exc}") from exc


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["no streams"]
        raise NoAudioStream(f"the media has no audio stream (found: {', '.join(kinds)})")
    return container.streams.audio[0]


def _declared_duration(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> float | None:
    """Longest duration the container or stream header declares, in seconds."""
    candidates: list[float] = []
    if stream.duration is not None and stream.time_base is not None:
        candidates.append(float(stream.duration * stream.time_base))
    if container.duration is not None:
        candidates.append(container.duration / av.time_base)
    return max(candidates) if candidates else None


def _info(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> MediaInfo:
    ctx = stream.codec_context
    return MediaInfo(
        container=container.format.name,
        codec=ctx.name,
        sample_rate=int(ctx.sample_rate or 0),
        channels=int(ctx.channels or 0),
        duration_s=_declared_duration(container, stream),
    )


def _check_declared_duration(info: MediaInfo, limits: MediaSettings) -> None:
    if info.duration_s is not None and info.duration_s > limits.max_duration_s:
        limit = (
            f"media lasts {info.duration_s:.0f} s according to its header, above the limit of "
            f"{limits.max_duration_s:.0f} s"
        )
        raise MediaTooLong(f"{limit} (AISUBS_MEDIA__MAX_DURATION_S)", public=limit)


def probe_media(source: MediaSource, limits: MediaSettings) -> MediaInfo:
    """Read the container header only: size, audio stream and declared duration checks.

    Raises the same typed errors as decoding would for problems visible without decoding.
    """
    _check_size(source, limits)
    with _open(source) as container:
        info = _info(container, _audio_stream(container))
    _check_declared_duration(info, limits)
    return info


def _iter_frames(source: MediaSource, limits: MediaSettings) -> Iterator[np.ndarray]:
    """Yield resampled 16 kHz mono float32 blocks, enforcing every limit as it goes."""
    _check_size(source, limits)
    max_samples = int(limits.max_duration_s * SAMPLE_RATE)
    produced = 0
    bad_packets = 0
    with _open(source) as container:
        stream = _audio_stream(container)
        info = _info(container, stream)
        _check_declared_duration(info, limits)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

        def emit(frames: list[av.AudioFrame]) -> Iterator[np.ndarray]:
            nonlocal produced
            for frame in frames:
                block = frame.to_ndarray().reshape(-1)
                if block.size == 0:
                    continue
                produced += block.size
                if produced > max_samples:
                    limit = f"media is longer than the limit of {limits.max_duration_s:.0f} s"
                    raise MediaTooLong(
                        f"{limit} (found while decoding; AISUBS_MEDIA__MAX_DURATION_S)",
                        public=limit,
                    )
                yield block

        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    bad_packets += 1
                    log.debug("skipping undecodable packet: %s", exc)
                    if bad_packets > _MAX_BAD_PACKETS:
                        raise UndecodableMedia(
                            f"too many undecodable packets ({bad_packets}): {exc}"
                        ) from exc
                    continue
                for frame in frames:
                    yield from emit(resampler.resample(frame))
            yield from emit(resampler.resample(None))
        except av.error.FFmpegError as exc:
            # Demuxing failed (e.g. truncated file). Keep what decoded if anything did.
            if produced == 0:
                raise UndecodableMedia(f"cannot decode the media: {exc}") from exc
            log.warning("media ends early after %.1f s: %s", produced / SAMPLE_RATE, exc)
    if bad_packets:
        log.warning("skipped %d undecodable packets", bad_packets)
    if produced == 0:
        if bad_packets:
            raise UndecodableMedia("no audio packet could be decoded")
        raise EmptyMedia("the audio stream holds no samples")


def decode_audio(source: MediaSource, limits: MediaSettings) -> np.ndarray:
    """Decode the first audio stream of ``source`` to a 16 kHz mono float32 array.

    Memory: the output buffer is sized from the declared duration and grown in place
    (``ndarray.resize`` reallocates without a second full copy), so the peak is about the
    output array plus one packet, whatever the container.
    """
    out = np.empty(max(_estimated_samples(source, limits), SAMPLE_RATE), dtype=np.float32)
    n = 0
    for block in _iter_frames(source, limits):
        if n + block.size > out.size:
            out.resize(max(int(out.size * 1.25), n + block.size), refcheck=False)
        out[n : n + block.size] = block
        n += block.size
    if n != out.size:
        out.resize(n, refcheck=False)
    return out


def _estimated_samples(source: MediaSource, limits: MediaSettings) -> int:
    """Sample count the header implies (0 when unknown); also fails fast on header limits."""
    if not isinstance(source, str | os.PathLike):
        return 0  # do not read a one-shot stream twice
    info = probe_media(source, limits)
    if info.duration_s is None:
        return 0
    # A little headroom for resampler delay and imprecise headers.
    return int(info.duration_s * SAMPLE_RATE) + SAMPLE_RATE // 10


def iter_audio_chunks(
    source: MediaSource, limits: MediaSettings, chunk_s: float | None = None
) -> Iterator[np.ndarray]:
    """Yield consecutive 16 kHz mono float32 chunks of ``chunk_s`` seconds (the last shorter).

    ``chunk_s`` defaults to ``limits.decode_chunk_s``. Each yielded array is a fresh array
    the caller may keep. Limits are enforced as decoding proceeds, so errors such as
    :class:`MediaTooLong` may be raised after some chunks were yielded.
    """
    size = round((chunk_s if chunk_s is not None else limits.decode_chunk_s) * SAMPLE_RATE)
    if size <= 0:
        raise ValueError("chunk_s must be positive")
    buf = np.empty(size, dtype=np.float32)
    fill = 0
    for block in _iter_frames(source, limits):
        pos = 0
        while pos < block.size:
            take = min(size - fill, block.size - pos)
            buf[fill : fill + take] = block[pos : pos + take]
            fill += take
            pos += take
            if fill == size:
                yield buf.copy()
                fill = 0
    if fill:
        yield buf[:fill].copy()
