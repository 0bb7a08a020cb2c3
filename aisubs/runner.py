"""Running one leased job from fetch to fenced completion, independent of Ray.

The Ray job-runner deployment is a thin shell around :class:`JobExecutor`: it supplies a
:class:`StageBackend` whose ``transcribe`` and ``diarize`` call the warm-model deployments.
Tests drive the same executor with in-process models. The executor owns the lease while it
works: it heartbeats, records progress and stage events, stops when the job is cancelled or
its lease is lost, and finishes with a single fenced ``complete`` or ``fail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from aisubs.asr.base import ASROptions
from aisubs.errors import AisubsError, Cancelled, LeaseLost, NotFound, PipelineError
from aisubs.jobwatch import Lease, report_progress, watch_lease
from aisubs.media.decode import SAMPLE_RATE, decode_audio
from aisubs.media.fetch import fetch_url
from aisubs.media.storage import Storage, result_key
from aisubs.observability.logs import job_context
from aisubs.observability.metrics import JobMetrics
from aisubs.pipeline import (
    PipelineResult,
    asr_options,
    assemble,
    diarization_hints,
    stage_fraction,
    transcription_stage,
    translation_target,
    validate_options,
)
from aisubs.queue.models import EventKind, Job, JobError, Progress
from aisubs.queue.store import JobStore
from aisubs.settings import Settings
from aisubs.transcript import SpeakerTurn, Transcript
from aisubs.translation import translate_request

log = logging.getLogger(__name__)

UPLOAD_SCHEME = "upload://"
T = TypeVar("T")


class StageBackend(Protocol):
    """Where the model stages run (warm Ray deployments, or in-process models in tests)."""

    def share(self, audio: np.ndarray) -> Any:
        """Make ``audio`` available to the stages once (Ray: put it in the object store)."""

    async def transcribe(self, shared: Any, options: ASROptions, lease: Lease) -> Transcript: ...

    async def diarize(
        self, shared: Any, hints: dict[str, int | None], lease: Lease
    ) -> list[SpeakerTurn]: ...


class _Stopped(Exception):
    """The job stopped being ours (cancelled, deleted, lease lost) while we worked."""


class _StageClock:
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


class JobExecutor:
    """Runs leased jobs; one instance serves many concurrent jobs."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        storage: Storage,
        stages: StageBackend,
        worker_instance: str = "runner",
        metrics: JobMetrics | None = None,
    ):
        self.settings = settings
        self.store = store
        self.storage = storage
        self.stages = stages
        self.worker_instance = worker_instance
        self.metrics = metrics or JobMetrics()
        self.base_asr_options = ASROptions.from_settings(settings.asr)

    async def run(self, job: Job) -> str:
        """Process ``job`` (already claimed: running, with a lease); return its final state.

        Never raises for job-level problems: they end as ``fail`` (retried or final) in the
        store. Returns "succeeded", "failed", "retrying" or "stopped". Every log line of the
        attempt, library lines in worker threads included, carries the job's context.
        """
        with job_context(str(job.id), job.attempts, self.worker_instance):
            return await self._run(job)

    async def _run(self, job: Job) -> str:
        assert job.lease_token is not None, "run() needs a claimed job"
        lease = Lease(str(job.id), job.lease_token, job.attempts)
        started = time.perf_counter()
        stage = "fetch"
        work = asyncio.current_task()
        stop_reason: list[str] = []
        clock = _StageClock(self.metrics)
        heartbeat = asyncio.create_task(self._heartbeat(job, work, stop_reason))
        log.info("job started", extra=self._log_extra(job))
        try:

            def enter(name: str) -> None:
                nonlocal stage
                stage = name

            result = await self._execute(job, lease, enter, clock)
            keys = await self._store_results(job, result)
            await self._call(
                self.store.complete,
                job.id,
                job.lease_token,
                keys,
                compute_seconds=time.perf_counter() - started,
                audio_duration_s=result.audio_duration_s,
            )
            self.metrics.succeeded(time.perf_counter() - started, result.audio_duration_s)
            log.info("job succeeded", extra=self._log_extra(job))
            return "succeeded"
        except (asyncio.CancelledError, Cancelled, LeaseLost, NotFound, _Stopped) as exc:
            if isinstance(exc, asyncio.CancelledError) and not stop_reason:
                raise  # the runner itself is shutting down: the lease will expire
            reason = stop_reason[0] if stop_reason else getattr(exc, "code", str(exc) or "stopped")
            self.metrics.stopped(reason, time.perf_counter() - started)
            log.info(
                "job stopped (%s) during %s", stop_reason or exc, stage, extra=self._log_extra(job)
            )
            return "stopped"
        except Exception as exc:
            error = JobError.from_exception(exc, stage)
            if not isinstance(exc, AisubsError):
                log.exception("job failed in %s", stage, extra=self._log_extra(job))
            try:
                updated = await self._call(self.store.fail, job.id, job.lease_token, error)
            except (LeaseLost, Cancelled, NotFound) as lost:
                self.metrics.stopped(lost.code, time.perf_counter() - started)
                return "stopped"
            self.metrics.failed(
                error.stage or stage,
                error.code,
                final=updated.state.is_terminal,
                seconds=time.perf_counter() - started,
            )
            log.info(
                "job attempt failed: %s (%s)", error.code, updated.state, extra=self._log_extra(job)
            )
            return "failed" if updated.state.is_terminal else "retrying"
        finally:
            clock.flush()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    # ------------------------------------------------------------------ stages
    async def _execute(
        self, job: Job, lease: Lease, enter: Callable[[str], None], clock: _StageClock
    ) -> PipelineResult:
        options = job.options
        validate_options(options)
        enter("fetch")
        async with self._local_media(job, clock) as path:
            enter("decode")
            async with self._event_stage(job, "decode", clock):
                audio = await asyncio.to_thread(decode_audio, path, self.settings.media)
        duration = len(audio) / SAMPLE_RATE
        clock.audio(duration)
        await self._progress(job, "decode", stage_fraction("decode", 1.0))

        shared = self.stages.share(audio)
        del audio  # the object store holds it now
        timeout = (
            self.settings.serve.stage_timeout_base_s
            + self.settings.serve.stage_timeout_per_audio_s * duration
        )
        request = asr_options(options, self.base_asr_options)
        enter("asr")
        async with self._event_stage(job, "asr", None):
            # ASR and diarization run at the same time: each is timed on its own.
            asr_call = self._timed(
                self._bounded(self.stages.transcribe(shared, request, lease), timeout, "asr"),
                "asr",
                clock,
            )
            if options.diarize:
                diar_call = self._timed(
                    self._bounded(
                        self.stages.diarize(shared, diarization_hints(options), lease),
                        timeout,
                        "diarization",
                    ),
                    "diarization",
                    clock,
                )
                transcript, turns = await asyncio.gather(asr_call, diar_call)
            else:
                transcript, turns = await asr_call, None
        if transcript.duration <= 0:
            transcript.duration = duration

        translated: Transcript | None = None
        target = translation_target(options)
        if target is not None:
            enter("translate")
            async with self._event_stage(job, "translate", clock):
                translated = await self._bounded(
                    self.stages.transcribe(
                        shared, translate_request(request, transcript.language), lease
                    ),
                    timeout,
                    "translate",
                )
        enter("subtitles")
        async with self._event_stage(job, "subtitles", clock):
            return await asyncio.to_thread(
                assemble, transcript, turns, options, self.settings.subtitles, translated
            )

    async def _store_results(self, job: Job, result: PipelineResult) -> dict[str, str]:
        """Write every artifact under the job's fixed keys (a retry overwrites, never adds)."""

        def write() -> dict[str, str]:
            keys = {}
            for fmt, text in result.outputs.items():
                key = result_key(str(job.id), f"subtitles.{fmt}")
                self.storage.put_bytes(key, text.encode("utf-8"))
                keys[fmt] = key
            return keys

        return await asyncio.to_thread(write)

    @asynccontextmanager
    async def _local_media(self, job: Job, clock: _StageClock) -> AsyncIterator[Path]:
        """The job's media as a local file: a stored upload or a freshly fetched URL.

        Only getting the file counts as the ``fetch`` stage; the caller decodes it while the
        file is held, as a stage of its own.
        """
        if job.source.startswith(UPLOAD_SCHEME):
            key = job.source[len(UPLOAD_SCHEME) :]
            cm = self.storage.local_path(key)
            async with self._event_stage(job, "fetch", clock):
                path = await asyncio.to_thread(cm.__enter__)
            try:
                yield path
            finally:
                await asyncio.to_thread(cm.__exit__, None, None, None)
            return
        with tempfile.TemporaryDirectory(prefix="aisubs-fetch-") as tmp:
            dest = Path(tmp) / "source"
            async with self._event_stage(job, "fetch", clock):
                await asyncio.to_thread(fetch_url, job.source, dest, self.settings.media)
            yield dest

    # ------------------------------------------------------------------ lease upkeep
    async def _heartbeat(
        self, job: Job, work: asyncio.Task[Any] | None, stop_reason: list[str]
    ) -> None:
        """Extend the lease until the work ends; stop the work if the job is no longer ours."""
        assert job.lease_token is not None
        interval = self.settings.queue.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self._call(self.store.heartbeat, job.id, job.lease_token)
            except (Cancelled, LeaseLost, NotFound) as exc:
                stop_reason.append(exc.code)
                if work is not None:
                    work.cancel()
                return
            except AisubsError as exc:  # store hiccup: try again next beat
                log.warning("heartbeat failed: %s", exc, extra=self._log_extra(job))

    async def _progress(self, job: Job, stage: str, fraction: float) -> None:
        assert job.lease_token is not None
        try:
            await self._call(
                self.store.progress, job.id, job.lease_token, Progress(stage, fraction)
            )
        except (Cancelled, LeaseLost, NotFound) as exc:
            raise _Stopped(exc.code) from exc

    @asynccontextmanager
    async def _event_stage(
        self, job: Job, stage: str, clock: _StageClock | None
    ) -> AsyncIterator[None]:
        """Record the stage in the job's timeline (and, given ``clock``, in the metrics)."""
        started = time.perf_counter()
        await self._progress(job, stage, stage_fraction(stage, 0.0))
        await self._call(self.store.add_event, job.id, EventKind.STAGE_STARTED, {"stage": stage})
        log.info("stage %s started", stage)
        yield
        seconds = time.perf_counter() - started
        if clock is not None:
            clock.done(stage, seconds)
        await self._call(
            self.store.add_event,
            job.id,
            EventKind.STAGE_FINISHED,
            {"stage": stage, "seconds": round(seconds, 3)},
        )
        log.info("stage %s finished in %.2f s", stage, seconds)

    async def _timed(self, call: Awaitable[T], stage: str, clock: _StageClock) -> T:
        started = time.perf_counter()
        result = await call
        clock.done(stage, time.perf_counter() - started)
        return result

    async def _bounded(self, call: Awaitable[T], timeout: float, stage: str) -> T:
        try:
            return await asyncio.wait_for(call, timeout)
        except TimeoutError:
            raise PipelineError(
                f"{stage} did not answer within {timeout:.0f} s (worker lost?)", stage=stage
            ) from None

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _log_extra(self, job: Job) -> dict[str, Any]:
        return {
            "job_id": str(job.id),
            "attempt": job.attempts,
            "worker_instance": self.worker_instance,
        }


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
