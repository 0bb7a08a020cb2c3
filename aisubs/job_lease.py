"""The runner's side of one job's lease: fenced store calls that ride out store blips.

A job is taken away from a worker only by its lease expiring (or by the job being
cancelled or deleted). A store that is briefly unreachable (a PostgreSQL restart, a pooler
failover, a busy SQLite file) must not cost an attempt and throw away finished work: every
store call of a running job is retried with exponential backoff for as long as the lease
can still be valid, i.e. until ``lease_seconds`` after the last renewal the store
confirmed. Past that point another worker may hold the job, so the call gives up with
:class:`~aisubs.errors.LeaseLost`.

Store calls run on their own thread pool (:class:`RunnerThreads`): media work (downloads,
decoding, writing results) never holds the threads a heartbeat needs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aisubs.errors import LeaseLost, StoreUnavailable
from aisubs.queue.models import Job, JobError, Progress
from aisubs.queue.store import JobStore
from aisubs.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Backoff between retries of a store call: doubling from the first value up to the second.
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
# Stop retrying this long before the lease could have run out (clock skew, the call itself).
LEASE_MARGIN_S = 1.0


@dataclass
class RunnerThreads:
    """The runner's thread pools: store calls apart from media work."""

    store: ThreadPoolExecutor
    media: ThreadPoolExecutor

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerThreads:
        serve = settings.serve
        return cls(
            store=ThreadPoolExecutor(serve.runner_store_threads, thread_name_prefix="aisubs-store"),
            media=ThreadPoolExecutor(serve.worker_slots, thread_name_prefix="aisubs-media"),
        )

    def shutdown(self) -> None:
        self.store.shutdown(wait=False, cancel_futures=True)
        self.media.shutdown(wait=False, cancel_futures=True)


async def run_in(pool: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on ``pool``, awaited (the job's log context travels along)."""
    from contextvars import copy_context

    call = functools.partial(copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, call)


class LeaseKeeper:
    """Fenced store calls for one claimed job, retried while its lease may still hold."""

    def __init__(
        self,
        store: JobStore,
        job: Job,
        settings: Settings,
        pool: Executor,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert job.lease_token is not None, "a claimed job has a lease"
        self.store = store
        self.job = job
        self.token: str = job.lease_token
        self.lease_seconds = settings.queue.lease_seconds
        self.pool = pool
        self.clock = clock
        left = self.lease_seconds
        if job.lease_expires_at is not None:
            left = (job.lease_expires_at - datetime.now(UTC)).total_seconds()
        self.valid_until = clock() + left

    @property
    def seconds_left(self) -> float:
        """How long the lease is known to hold (minus a safety margin)."""
        return self.valid_until - self.clock() - LEASE_MARGIN_S

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call; retry it on :class:`StoreUnavailable` while the lease holds."""
        delay = RETRY_FIRST_S
        while True:
            started = self.clock()
            try:
                return await run_in(self.pool, fn, *args, **kwargs)
            except StoreUnavailable as exc:
                left = self.valid_until - self.clock() - LEASE_MARGIN_S
                if left <= 0:
                    raise LeaseLost(
                        "the job store stayed unreachable until this attempt's lease ran out"
                    ) from exc
                wait = min(delay, left)
                log.warning(
                    "store call %s failed after %.2f s (%s); retrying in %.1f s",
                    getattr(fn, "__name__", "call"),
                    self.clock() - started,
                    exc,
                    wait,
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, RETRY_MAX_S)

    async def renew(self) -> None:
        """Heartbeat: the lease then holds ``lease_seconds`` from when the call was sent."""
        sent = self.clock()
        await self.call(self.store.heartbeat, self.job.id, self.token)
        self.valid_until = max(self.valid_until, sent + self.lease_seconds)

    async def progress(self, stage: str, fraction: float) -> None:
        await self.call(self.store.progress, self.job.id, self.token, Progress(stage, fraction))

    async def event(self, kind: str, detail: Mapping[str, Any]) -> None:
        await self.call(self.store.add_event, self.job.id, kind, detail, lease_token=self.token)

    async def complete(
        self, result: Mapping[str, str], compute_seconds: float, audio_s: float | None
    ) -> Job:
        return await self.call(
            self.store.complete,
            self.job.id,
            self.token,
            result,
            compute_seconds=compute_seconds,
            audio_duration_s=audio_s,
        )

    async def fail(self, error: JobError) -> Job:
        return await self.call(self.store.fail, self.job.id, self.token, error)
