"""Stage timings of one job attempt, turned into metrics once the audio length is known."""

from __future__ import annotations

from aisubs.observability.metrics import JobMetrics


class StageClock:
    """Stage timings of one attempt; real-time factors once the audio length is known."""

    def __init__(self, metrics: JobMetrics):
        self.metrics = metrics
        self.audio_s: float | None = None
        self._early: list[tuple[str, float]] = []

    def done(self, stage: str, seconds: float) -> None:
        if self.audio_s is None:
            self._early.append((stage, seconds))  # fetch/decode: length known right after
        else:
            self.metrics.stage_finished(stage, seconds, self.audio_s)

    def audio(self, seconds: float) -> None:
        self.audio_s = seconds
        for stage, took in self._early:
            self.metrics.stage_finished(stage, took, seconds)
        self._early.clear()

    def flush(self) -> None:
        """Record stages that finished before a failure left the length unknown."""
        for stage, took in self._early:
            self.metrics.stage_finished(stage, took, None)
        self._early.clear()
