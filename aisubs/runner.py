"""Running one leased job from fetch to fenced completion, independent of Ray.

The Ray job-runner deployment is a thin shell around :class:`JobExecutor`: it supplies a
:class:`~aisubs.stages.StageBackend` whose ``transcribe`` and ``diarize`` call the
warm-model deployments. Tests drive the same executor with in-process models. The executor
owns the lease while it works (:class:`~aisubs.job_lease.LeaseKeeper`): it heartbeats,
records progress and stage events fenced by the lease, stops when the job is cancelled or
its lease is lost, and finishes with a single fenced ``complete`` or ``fail``.

Every stage is bounded: the download by ``fetch_timeout_s`` (and stopped when the job is
cancelled), the model stages by ``stage_timeout_base_s + per_audio_s * audio``. Results are
written under a per-attempt key (``results/<job>/attempt-<n>/...``) and become the job's
only through the fenced completion; a stale attempt never overwrites what readers see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from aisubs.asr.base import ASROptions
from aisubs.errors import (
    AisubsError,
    Cancelled,
    LeaseLost,
    MediaMissing,
    NotFound,
    PipelineError,
)
from aisubs.job_lease import LeaseKeeper, RunnerThreads, run_in
from aisubs.jobwatch import Lease
from aisubs.media.decode import SAMPLE_RATE, decode_audio
from aisubs.media.fetch import fetch_url
from aisubs.media.storage import RESULTS_PREFIX, Storage, result_key
from aisubs.observability.logs import job_context
from aisubs.observability.metrics import JobMetrics
from aisubs.observability.stage_clock import StageClock
from aisubs.pipeline import (
    PipelineResult,
    asr_options,
    assemble,
    diarization_hints,
    stage_fraction,
    translation_target,
    validate_options,
)
from aisubs.queue.models import EventKind, Job, JobError
from aisubs.queue.store import JobStore
from aisubs.settings import Settings
from aisubs.stages import StageBackend
from aisubs.transcript import Transcript
from aisubs.translation import translate_request

log = logging.getLogger(__name__)

UPLOAD_SCHEME = "upload://"
T = TypeVar("T")
# A download gets this long beyond fetch_timeout_s before the runner gives up on its thread.
FETCH_GRACE_S = 5.0


class _Stopped(Exception):
    """The job stopped being ours (cancelled, deleted, lease lost) while we worked."""


async def _stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def attempt_prefix(job: Job) -> str:
    """Where one attempt writes its artifacts (``results/<job id>/attempt-<n>``)."""
    return f"{RESULTS_PREFIX}/{job.id}/attempt-{job.attempts}"


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
        threads: RunnerThreads | None = None,
    ):
        self.settings = settings
        self.store = store
        self.storage = storage
        self.stages = stages
        self.worker_instance = worker_instance
        self.metrics = metrics or JobMetrics()
        self.threads = threads or RunnerThreads.from_settings(settings)
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
        keeper = LeaseKeeper(self.store, job, self.settings, self.threads.store)
        started = time.perf_counter()
        stage = "fetch"
        work = asyncio.current_task()
        stop_reason: list[str] = []
        clock = StageClock(self.metrics)
        heartbeat = asyncio.create_task(self._heartbeat(keeper, work, stop_reason))
        log.info("job started", extra=self._log_extra(job))
        try:

            def enter(name: str) -> None:
                nonlocal stage
                stage = name

            result = await self._execute(job, keeper, enter, clock)
            keys = await self._store_results(job, result)
            # No heartbeat may race the completion: one that lands after it finds the job
            # finished, takes that for a lost lease and would stop this very task.
            await _stop(heartbeat)
            try:
                await keeper.complete(keys, time.perf_counter() - started, result.audio_duration_s)
            except (Cancelled, LeaseLost, NotFound):
                await self._media(self.storage.delete_prefix, attempt_prefix(job))
                raise
            await self._media(self._drop_other_attempts, job)
            self.metrics.succeeded(time.perf_counter() - started, result.audio_duration_s)
            log.info("job succeeded", extra=self._log_extra(job))
            return "succeeded"
        except (asyncio.CancelledError, Cancelled, LeaseLost, NotFound, _Stopped) as exc:
            if isinstance(exc, asyncio.CancelledError) and not stop_reason:
                raise  # the runner itself is shutting down: the lease will expire
            reason = stop_reason[0] if stop_reason else getattr(exc, "code", str(exc) or "stopped")
            self.metrics.stopped(reason, time.perf_counter() - started)
            log.info("job stopped (%s) during %s", reason, stage, extra=self._log_extra(job))
            return "stopped"
        except Exception as exc:
            await _stop(heartbeat)
            return await self._fail(job, keeper, exc, stage, started)
        finally:
            clock.flush()
            await _stop(heartbeat)

    async def _fail(
        self, job: Job, keeper: LeaseKeeper, exc: Exception, stage: str, started: float
    ) -> str:
        error = JobError.from_exception(exc, stage)
        if isinstance(exc, AisubsError):
            log.info("job attempt failed in %s: %s", stage, exc, extra=self._log_extra(job))
        else:
            log.exception("job failed in %s", stage, extra=self._log_extra(job))
        try:
            updated = await keeper.fail(error)
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
            "job attempt ended: %s (%s)", error.code, updated.state, extra=self._log_extra(job)
        )
        return "failed" if updated.state.is_terminal else "retrying"

    # ------------------------------------------------------------------ stages
    async def _execute(
        self, job: Job, keeper: LeaseKeeper, enter: Callable[[str], None], clock: StageClock
    ) -> PipelineResult:
        options = job.options
        validate_options(options)
        lease = Lease(str(job.id), keeper.token, job.attempts)
        enter("fetch")
        async with self._local_media(job, keeper, clock) as path:
            enter("decode")
            async with self._event_stage(keeper, "decode", clock):
                audio = await self._media(decode_audio, path, self.settings.media)
        duration = len(audio) / SAMPLE_RATE
        clock.audio(duration)
        await self._progress(keeper, "decode", stage_fraction("decode", 1.0))

        shared = self.stages.share(audio)
        del audio  # the object store holds it now
        timeout = (
            self.settings.serve.stage_timeout_base_s
            + self.settings.serve.stage_timeout_per_audio_s * duration
        )
        request = asr_options(options, self.base_asr_options)
        enter("asr")
        async with self._event_stage(keeper, "asr", None):
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
            async with self._event_stage(keeper, "translate", clock):
                translated = await self._bounded(
                    self.stages.transcribe(
                        shared, translate_request(request, transcript.language), lease
                    ),
                    timeout,
                    "translate",
                )
        enter("subtitles")
        async with self._event_stage(keeper, "subtitles", clock):
            return await self._media(
                assemble, transcript, turns, options, self.settings.subtitles, translated
            )

    async def _store_results(self, job: Job, result: PipelineResult) -> dict[str, str]:
        """Write every artifact under this attempt's keys (see the module doc)."""
        prefix = attempt_prefix(job).removeprefix(f"{RESULTS_PREFIX}/{job.id}/")

        def write() -> dict[str, str]:
            keys = {}
            for fmt, text in result.outputs.items():
                key = result_key(str(job.id), f"{prefix}/subtitles.{fmt}")
                self.storage.put_bytes(key, text.encode("utf-8"))
                keys[fmt] = key
            return keys

        return await self._media(write)

    def _drop_other_attempts(self, job: Job) -> None:
        """After the fenced completion: remove what earlier attempts left (best effort)."""
        mine = attempt_prefix(job) + "/"
        try:
            for key in self.storage.list_keys(f"{RESULTS_PREFIX}/{job.id}"):
                if not key.startswith(mine):
                    self.storage.delete(key)
        except (AisubsError, OSError):
            log.warning("could not remove earlier attempts' results", exc_info=True)

    @asynccontextmanager
    async def _local_media(
        self, job: Job, keeper: LeaseKeeper, clock: StageClock
    ) -> AsyncIterator[Path]:
        """The job's media as a local file: a stored upload or a freshly fetched URL.

        Only getting the file counts as the ``fetch`` stage; the caller decodes it while the
        file is held, as a stage of its own. A stored upload that is gone is a permanent
        ``media_missing`` failure, not something a retry can fix.
        """
        if job.source.startswith(UPLOAD_SCHEME):
            key = job.source[len(UPLOAD_SCHEME) :]
            cm = self.storage.local_path(key)
            async with self._event_stage(keeper, "fetch", clock):
                try:
                    path = await self._media(cm.__enter__)
                except NotFound as exc:
                    raise MediaMissing(f"the stored upload {key!r} is gone") from exc
            try:
                yield path
            finally:
                await self._media(cm.__exit__, None, None, None)
            return
        with tempfile.TemporaryDirectory(prefix="aisubs-fetch-") as tmp:
            dest = Path(tmp) / "source"
            async with self._event_stage(keeper, "fetch", clock):
                await self._download(job.source, dest)
            yield dest

    async def _download(self, url: str, dest: Path) -> None:
        """Fetch ``url``; the download thread stops when this coroutine is cancelled."""
        cancel = threading.Event()
        limit = self.settings.media.fetch_timeout_s + FETCH_GRACE_S
        try:
            await self._bounded(
                self._media(fetch_url, url, dest, self.settings.media, cancel=cancel),
                limit,
                "fetch",
            )
        finally:
            cancel.set()  # no-op once the download is done; stops it otherwise

    async def _media(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Media work (files, decoding, downloads) on the media threads."""
        return await run_in(self.threads.media, fn, *args, **kwargs)

    # ------------------------------------------------------------------ lease upkeep
    async def _heartbeat(
        self, keeper: LeaseKeeper, work: asyncio.Task[Any] | None, stop_reason: list[str]
    ) -> None:
        """Extend the lease until the work ends; stop the work if the job is no longer ours."""
        interval = self.settings.queue.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await keeper.renew()
            except (Cancelled, LeaseLost, NotFound) as exc:
                stop_reason.append(exc.code)
                if work is not None:
                    work.cancel()
                return

    async def _progress(self, keeper: LeaseKeeper, stage: str, fraction: float) -> None:
        try:
            await keeper.progress(stage, fraction)
        except (Cancelled, LeaseLost, NotFound) as exc:
            raise _Stopped(exc.code) from exc

    @asynccontextmanager
    async def _event_stage(
        self, keeper: LeaseKeeper, stage: str, clock: StageClock | None
    ) -> AsyncIterator[None]:
        """Record the stage in the job's timeline (and, given ``clock``, in the metrics)."""
        started = time.perf_counter()
        await self._progress(keeper, stage, stage_fraction(stage, 0.0))
        await self._fenced_event(keeper, EventKind.STAGE_STARTED, {"stage": stage})
        log.info("stage %s started", stage)
        yield
        seconds = time.perf_counter() - started
        if clock is not None:
            clock.done(stage, seconds)
        await self._fenced_event(
            keeper, EventKind.STAGE_FINISHED, {"stage": stage, "seconds": round(seconds, 3)}
        )
        log.info("stage %s finished in %.2f s", stage, seconds)

    async def _fenced_event(self, keeper: LeaseKeeper, kind: str, detail: dict[str, Any]) -> None:
        try:
            await keeper.event(kind, detail)
        except (Cancelled, LeaseLost, NotFound) as exc:
            raise _Stopped(exc.code) from exc

    async def _timed(self, call: Awaitable[T], stage: str, clock: StageClock) -> T:
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

    def _log_extra(self, job: Job) -> dict[str, Any]:
        return {
            "job_id": str(job.id),
            "attempt": job.attempts,
            "worker_instance": self.worker_instance,
        }

    def close(self) -> None:
        """Stop the thread pools (the runner deployment calls this on shutdown)."""
        self.threads.shutdown()
