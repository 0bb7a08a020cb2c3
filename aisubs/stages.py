"""Where a job's model stages run: warm Ray deployments in the service, or models loaded
in this process (tests, a single-node worker without Serve)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import numpy as np

from aisubs.asr.base import ASROptions
from aisubs.jobwatch import Lease, report_progress, watch_lease
from aisubs.pipeline import transcription_stage
from aisubs.queue.store import JobStore
from aisubs.transcript import SpeakerTurn, Transcript


class StageBackend(Protocol):
    """Where the model stages run (warm Ray deployments, or in-process models in tests)."""

    def share(self, audio: np.ndarray) -> Any:
        """Make ``audio`` available to the stages once (Ray: put it in the object store)."""

    async def transcribe(self, shared: Any, options: ASROptions, lease: Lease) -> Transcript: ...

    async def diarize(
        self, shared: Any, hints: dict[str, int | None], lease: Lease
    ) -> list[SpeakerTurn]: ...


class InProcessStages:
    """:class:`StageBackend` over models loaded in this process (no Ray).

    Used where one process does everything (tests, a single-node worker without Serve);
    stages run in worker threads and stop at the next chunk once the job is not ours.
    """

    def __init__(
        self,
        asr: Any,
        diarizer: Any,
        store: JobStore | None = None,
        cancel_check_s: float = 2.0,
    ):
        self.asr = asr
        self.diarizer = diarizer
        self.store = store
        self.cancel_check_s = cancel_check_s

    def share(self, audio: np.ndarray) -> Any:
        return audio

    async def transcribe(self, shared: Any, options: ASROptions, lease: Lease) -> Transcript:
        progress = report_progress(self.store, lease, transcription_stage(options))
        watch = watch_lease(self.store, lease, self.cancel_check_s)
        result: Transcript = await asyncio.to_thread(
            self.asr.transcribe, shared, options, progress, watch
        )
        return result

    async def diarize(
        self, shared: Any, hints: dict[str, int | None], lease: Lease
    ) -> list[SpeakerTurn]:
        if self.diarizer is None:
            return []
        watch = watch_lease(self.store, lease, self.cancel_check_s)
        turns: list[SpeakerTurn] = await asyncio.to_thread(
            lambda: self.diarizer.diarize(shared, should_cancel=watch, **hints)
        )
        return turns
