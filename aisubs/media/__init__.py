"""Media handling: decoding uploads to 16 kHz mono audio (fetching and storage live beside)."""

from aisubs.media.decode import (
    SAMPLE_RATE,
    MediaInfo,
    decode_audio,
    iter_audio_chunks,
    probe_media,
)

__all__ = ["SAMPLE_RATE", "MediaInfo", "decode_audio", "iter_audio_chunks", "probe_media"]
