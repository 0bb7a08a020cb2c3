"""Leasing queued jobs in claim order: priority first, then owners in turn, then age.

The order key ``(priority DESC, fair_tag, seq)`` is fixed when a job is queued (see
:mod:`aisubs.queue.submission` and the ``fair_order`` migration): an owner's k-th waiting
job sorts into round k of its priority, so owners take turns even with a single worker
slot. A claim reads the claimable jobs in that order from ONE statement (one snapshot, so
no job can appear twice) and takes them one after the other, skipping jobs of owners that
reach their running cap with the jobs this batch already took. Because the key does not
move when a job is taken, a batch of n takes exactly what n single claims would.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from aisubs.errors import InvalidRequest
from aisubs.queue.backend import Row
from aisubs.queue.core import StoreCore
from aisubs.queue.lifecycle import requeue_expired_in
from aisubs.queue.models import Job

# Expired leases a claim reaps before it takes jobs.
REAP_PER_CLAIM = 1000


def pick(rows: Iterator[Row], limit: int, max_running: int) -> list[Row]:
    """The first ``limit`` rows whose owner stays under ``max_running``, in row order.

    ``rows`` come in claim order with the owner's running count (``owner_running``) at the
    time of the query; the jobs picked here count against their owner's cap as well.
    """
    taken: dict[str, int] = {}
    seen: set[str] = set()
    picked: list[Row] = []
    if limit < 1:
        return picked
    for row in rows:
        job_id = str(row["id"])
        if job_id in seen:  # a single snapshot has no duplicates; never trust that blindly
            continue
        seen.add(job_id)
        owner = row["owner"]
        if int(row["owner_running"]) + taken.get(owner, 0) >= max_running:
            continue
        taken[owner] = taken.get(owner, 0) + 1
        picked.append(row)
        if len(picked) == limit:
            break
    return picked


def claim(
    core: StoreCore, worker_instance: str, limit: int, lease_seconds: float | None
) -> list[Job]:
    if not worker_instance:
        raise InvalidRequest("worker_instance must not be empty")
    if limit < 1:
        return []
    db = core.backend
    now = core.clock()
    expires = core.lease_until(now, lease_seconds)
    max_running = core.settings.max_running_per_owner
    with core.tx("claim") as tx:
        requeue_expired_in(core, tx, REAP_PER_CLAIM)
        with tx.iterate("claim_candidates", now=db.time(now), max_running=max_running) as rows:
            picked = pick(rows, limit, max_running)
        if not picked:
            return []
        tokens = {str(row["id"]): secrets.token_urlsafe(18) for row in picked}
        updated = tx.all(
            "claim_jobs",
            tokens=db.json(tokens),
            lease_expires_at=db.time(expires),
            worker_instance=worker_instance,
            now=db.time(now),
        )
        # Rows cancelled or deleted meanwhile are missing; keep the claim order.
        got = {str(row["id"]): row for row in updated}
        claimed = [core.job(got[str(row["id"])]) for row in picked if str(row["id"]) in got]
        if not claimed:
            return []
        tx.run(
            "insert_claim_events",
            tokens=db.json({str(j.id): j.lease_token for j in claimed}),
            now=db.time(now),
        )
        # Each priority's virtual time follows the latest round served there.
        rounds: dict[int, int] = {}
        for row in picked:
            if str(row["id"]) in got:
                p = int(row["priority"])
                rounds[p] = max(rounds.get(p, 0), int(row["fair_tag"]))
        for priority, vtime in rounds.items():
            tx.run("advance_fair_clock", priority=priority, vtime=vtime)
    return claimed
