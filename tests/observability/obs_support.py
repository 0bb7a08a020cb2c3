"""Helpers of the observability tests: their settings, and a stage backend that is a fake
so the executor tests need no model: they exercise fetch, decode, subtitles and the store
for real.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from aisubs.asr.base import ASROptions
from aisubs.jobwatch import Lease
from aisubs.settings import Settings
from aisubs.transcript import Segment, SpeakerTurn, Transcript, Word
from tests.support.settings import QUICK_QUEUE, make_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def obs_settings(tmp: Path, **sections: dict[str, Any]) -> Settings:
    """tests.support.settings.make_settings with a quick queue (heartbeats every 0.2 s,
    retries at once) under the given ``queue`` fields."""
    return make_settings(tmp, **{**sections, "queue": QUICK_QUEUE | sections.get("queue", {})})


class FakeStages:
    """A StageBackend without models: fixed words, and a "library" log line per call made
    from a worker thread, as faster-whisper's would be."""

    def __init__(self, fail_asr: Exception | None = None):
        self.fail_asr = fail_asr

    def share(self, audio: np.ndarray) -> Any:
        return audio

    async def transcribe(self, shared: Any, options: ASROptions, lease: Lease) -> Transcript:
        def work() -> Transcript:
            logging.getLogger("faster_whisper").warning("fake model decoding %d samples", 1)
            if self.fail_asr is not None:
                raise self.fail_asr
            words = tuple(
                Word(i * 0.5, i * 0.5 + 0.4, f" word{i}", 0.9) for i in range(len(shared) // 8000)
            )
            text = "".join(w.word for w in words).strip()
            return Transcript("en", len(shared) / 16000, [Segment(0.0, words[-1].end, text, words)])

        return await asyncio.to_thread(work)

    async def diarize(
        self, shared: Any, hints: dict[str, int | None], lease: Lease
    ) -> list[SpeakerTurn]:
        return [SpeakerTurn(0.0, len(shared) / 16000, "SPEAKER_00")]
