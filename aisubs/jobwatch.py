"""Cooperative cancellation for work running far from the job row.

A GPU replica transcribing a chunk cannot be interrupted by the runner, but it can ask,
between chunks, whether the job it works for is still its own. :class:`LeaseWatch` answers
that from the durable store, at most once every ``interval`` seconds, so a cancelled job or
one whose lease was taken over stops at the next chunk instead of running to the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from aisubs.errors import AisubsError, NotFound
from aisubs.pipeline import stage_fraction
from aisubs.queue.models import JobState, Progress
from aisubs.queue.store import JobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lease:
    """What a remote stage needs to watch its job: id and the lease it runs under (and
    the attempt, so the stage's log lines name it too)."""

    job_id: str
    token: str
    attempt: int = 0


def watch_lease(store: JobStore | None, lease: Lease | None, interval: float) -> LeaseWatch | None:
    """``should_cancel`` for a stage working under ``lease`` (None outside a job)."""
    if store is None or lease is None:
        return None
    return LeaseWatch(store, UUID(lease.job_id), lease.token, interval=interval)


def report_progress(
    store: JobStore | None, lease: Lease | None, stage: str
) -> LeaseProgress | None:
    """``progress`` for a stage working under ``lease``, written to the job (None outside
    a job)."""
    if store is None or lease is None:
        return None
    return LeaseProgress(store, UUID(lease.job_id), lease.token, stage)


class LeaseWatch:
    """Callable ``should_cancel()`` for one leased job."""

    def __init__(
        self,
        store: JobStore,
        job_id: UUID,
        lease_token: str,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._store = store
        self._job_id = job_id
        self._token = lease_token
        self._interval = interval
        self._clock = clock
        self._next_check = clock() + interval
        self._stopped = False

    def __call__(self) -> bool:
        if self._stopped:
            return True
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self._interval
        try:
            job = self._store.get(self._job_id)
        except NotFound:
            self._stopped = True  # deleted
        except AisubsError as exc:  # store briefly unreachable: keep working, lease decides
            log.warning("cannot check job %s: %s", self._job_id, exc)
            return False
        else:
            self._stopped = job.state is not JobState.RUNNING or job.lease_token != self._token
        if self._stopped:
            log.info("job %s is no longer ours; stopping at this chunk", self._job_id)
        return self._stopped


class LeaseProgress:
    """Callable ``progress(fraction)`` that records a remote stage's progress on the job.

    The model replicas know how far inference has got; the runner does not. Writes are
    fenced by the lease (a job that is no longer ours is left alone) and throttled to one
    every ``interval`` seconds, plus the final one.
    """

    def __init__(
        self,
        store: JobStore,
        job_id: UUID,
        lease_token: str,
        stage: str,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._store = store
        self._job_id = job_id
        self._token = lease_token
        self._stage = stage
        self._interval = interval
        self._clock = clock
        self._next = 0.0

    def __call__(self, fraction: float) -> None:
        now = self._clock()
        if now < self._next and fraction < 1.0:
            return
        self._next = now + self._interval
        try:
            self._store.progress(
                self._job_id,
                self._token,
                Progress(self._stage, stage_fraction(self._stage, fraction)),
            )
        except AisubsError as exc:  # cancelled, lease lost, store hiccup: LeaseWatch decides
            log.debug("progress of job %s not recorded: %s", self._job_id, exc)
