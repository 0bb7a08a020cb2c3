"""Build small media files with PyAV itself, so decoding tests need no fixtures on disk."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

# extension -> (muxer, audio codec, sample rate)
CONTAINERS: dict[str, tuple[str, str, int]] = {
    "mp4": ("mp4", "aac", 44100),
    "mkv": ("matroska", "libopus", 48000),
    "webm": ("webm", "libopus", 48000),
    "mov": ("mov", "aac", 44100),
    "mp3": ("mp3", "libmp3lame", 44100),
    "m4a": ("ipod", "aac", 44100),
    "aac": ("adts", "aac", 44100),
    "flac": ("flac", "flac", 44100),
    "wav": ("wav", "pcm_s16le", 44100),
    "ogg": ("ogg", "vorbis", 44100),
    "opus": ("opus", "libopus", 48000),
}


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _frame(samples: np.ndarray, fmt: str, layout: str, rate: int, pts: int) -> av.AudioFrame:
    channels = 2 if layout == "stereo" else 1
    if fmt.startswith("s16"):
        samples = (samples * 32767).astype(np.int16)
    elif fmt.startswith("s32"):
        samples = (samples * (2**31 - 1)).astype(np.int32)
    if fmt.endswith("p"):
        arr = np.tile(samples, (channels, 1))
    else:
        arr = np.repeat(samples, channels)[None, :]
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
    frame.sample_rate = rate
    frame.pts = pts
    return frame


def write_audio(
    path: Path,
    signal: np.ndarray,
    *,
    muxer: str,
    codec: str,
    rate: int,
    layout: str = "stereo",
    bit_rate: int | None = None,
) -> Path:
    """Encode a mono float signal (at ``rate``) into ``path`` with the given muxer/codec."""
    with av.open(str(path), "w", format=muxer) as container:
        options = {"strict": "experimental"} if codec == "vorbis" else {}
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.layout = layout
        if bit_rate:
            stream.bit_rate = bit_rate
        fmt = stream.codec_context.format.name
        step = stream.codec_context.frame_size or 1024
        for start in range(0, signal.size, step):
            frame = _frame(signal[start : start + step], fmt, layout, rate, start)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_video_only(path: Path, frames: int = 10) -> Path:
    """A tiny mp4 with one video stream and no audio."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            img = np.full((32, 32, 3), i * 20 % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
