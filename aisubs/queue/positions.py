"""Queue position and ETA of a queued job, from the same order the claims follow.

What the position promises: if no job arrives, the job at position k is the k-th that
claims take when they come one at a time as worker slots free up. The order key is fixed
at submission (:mod:`aisubs.queue.claiming`), so that is the key order, except for the
jobs a claim must pass over now: jobs of owners at their running cap and retries waiting
for their ``not_before``. Those come after every job that can be claimed now (in key order
among themselves), which is where a claim finds them once their owner's running jobs have
ended and their wait is over. Everything is index range counts (see the ``position_*``
queries), so a position costs the same on a queue of ten or ten thousand jobs.

ETA: the audio of the jobs ahead plus what is left of the running jobs, times the measured
compute seconds per audio second, shared by the worker slots (parallel jobs), not by the
replicas; then the job's own audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from aisubs.queue.backend import Row, Tx
from aisubs.queue.core import StoreCore
from aisubs.queue.models import JobState, Position
from aisubs.queue.queue_stats import speed_in


@dataclass(frozen=True, slots=True)
class _Work:
    jobs: int = 0
    known_audio: float = 0.0
    unknown: int = 0

    @classmethod
    def of(cls, row: Row) -> _Work:
        n, known = int(row["n"]), int(row["known"])
        return cls(n, float(row["audio"]), n - known)

    def __add__(self, other: _Work) -> _Work:
        return _Work(
            self.jobs + other.jobs,
            self.known_audio + other.known_audio,
            self.unknown + other.unknown,
        )

    def __sub__(self, other: _Work) -> _Work:
        return _Work(
            self.jobs - other.jobs,
            self.known_audio - other.known_audio,
            self.unknown - other.unknown,
        )


def _parts(rows: list[Row]) -> dict[str, _Work]:
    parts: dict[str, _Work] = {}
    for row in rows:
        parts[row["part"]] = parts.get(row["part"], _Work()) + _Work.of(row)
    return parts


def _is_blocked(core: StoreCore, tx: Tx, row: Row) -> bool:
    if core.backend.from_time(row["not_before"]) > core.clock():
        return True
    load = tx.one("owner_running", owner=row["owner"])
    return load is not None and int(load["running"]) >= core.settings.max_running_per_owner


def work_ahead(core: StoreCore, tx: Tx, row: Row) -> _Work:
    """The queued jobs that claims take before the job in ``row`` (see module doc)."""
    db = core.backend
    common = {"now": db.time(core.clock()), "max_running": core.settings.max_running_per_owner}
    ahead = _parts(
        tx.all(
            "position_ahead",
            priority=int(row["priority"]),
            fair_tag=int(row["fair_tag"]),
            seq=int(row["seq"]),
            **common,
        )
    )
    blocked_ahead = ahead.get("capped", _Work()) + ahead.get("held", _Work())
    if not _is_blocked(core, tx, row):
        return ahead.get("ahead", _Work()) - blocked_ahead
    totals = _parts(tx.all("position_blocked_totals", **common))
    blocked = totals.get("capped", _Work()) + totals.get("held", _Work())
    claimable = totals.get("queued", _Work()) - blocked
    return claimable + blocked_ahead


def position(
    core: StoreCore, job_id: UUID, worker_slots: int, owner: str | None
) -> Position | None:
    settings = core.settings
    with core.tx("read") as tx:
        row = core.owned(tx.one("get_job", id=core.backend.id(job_id)), job_id, owner)
        if row["state"] != JobState.QUEUED:
            return None
        ahead = work_ahead(core, tx, row)
        running = tx.one("running_remaining")
        typical = tx.one("typical_audio")
        speed = speed_in(core, tx)
    assert running is not None and typical is not None
    default_audio = float(typical["avg_audio"] or settings.eta_default_audio_seconds)
    audio_ahead = ahead.known_audio + ahead.unknown * default_audio
    audio_running = float(running["audio_remaining_known"]) + int(running["unknown"]) * (
        default_audio / 2
    )
    own = default_audio if row["audio_duration_s"] is None else float(row["audio_duration_s"])
    eta_start = (audio_ahead + audio_running) * speed / max(1, worker_slots)
    return Position(
        position=ahead.jobs + 1,
        jobs_ahead=ahead.jobs,
        eta_start_s=eta_start,
        eta_s=eta_start + own * speed,
    )
