"""The JobStore contract on order, fairness, positions and ETAs, run against every backend
(SQLite, PostgreSQL, PostgreSQL through PgBouncer: see conftest.backend).
"""

from __future__ import annotations

import pytest

from aisubs.errors import (
    NotFound,
)
from aisubs.queue.clock import ManualClock
from tests.queue.ordering import StoreFactory, claim_one, drain_one_at_a_time


# ---------------------------------------------------------------- order and fairness
def test_priority_then_fairness_then_age(make_store: StoreFactory, clock: ManualClock) -> None:
    store = make_store(max_running_per_owner=5)
    ids = {}
    for name, owner, prio in [
        ("a1", "alice", 5),
        ("a2", "alice", 5),
        ("b1", "bob", 5),
        ("low", "carol", 1),
        ("high", "carol", 9),
    ]:
        ids[name] = store.submit(owner, f"u://{name}", priority=prio).id
        clock.advance(1)
    order = [ids["high"], ids["a1"], ids["a2"], ids["b1"], ids["low"]]
    first = claim_one(store)
    assert first.id == order[0]
    second = claim_one(store)
    assert second.id == ids["a1"]  # oldest among equal priority, nobody running yet
    # alice now runs one job, bob none: bob's younger job goes before alice's second.
    assert claim_one(store).id == ids["b1"]
    assert claim_one(store).id == ids["a2"]
    assert claim_one(store).id == ids["low"]
    assert store.claim("w1", 5) == []


def test_batch_claim_equals_one_by_one_claims(make_store: StoreFactory, clock: ManualClock) -> None:
    """Two slots freeing at once must not both go to the owner with the older backlog."""
    store = make_store(max_running_per_owner=5)
    flood = []
    for i in range(20):
        flood.append(store.submit("alice", f"u://a{i}").id)
        clock.advance(1)
    single = store.submit("bob", "u://b").id
    clock.advance(1)
    late = store.submit("carol", "u://c").id
    batch = [j.id for j in store.claim("w1", 4)]
    # alice's oldest, then bob and carol (0 running beat alice's 1), then alice again.
    assert batch == [flood[0], single, late, flood[1]]


def test_running_cap_skips_busy_owner_even_within_a_batch(make_store: StoreFactory) -> None:
    store = make_store(max_running_per_owner=2)
    for i in range(5):
        store.submit("alice", f"u://a{i}")
    store.submit("bob", "u://b0")
    batch = store.claim("w1", 10)
    owners = sorted(j.owner for j in batch)
    assert owners == ["alice", "alice", "bob"]
    assert store.claim("w1", 10) == []
    alice = next(j for j in batch if j.owner == "alice")
    store.complete(alice.id, alice.lease_token, {}, compute_seconds=1)
    assert [j.owner for j in store.claim("w1", 10)] == ["alice"]


def test_one_slot_serves_owners_in_turn(make_store: StoreFactory, clock: ManualClock) -> None:
    """With one worker slot, alice's 10 earlier jobs must not all run before bob's one."""
    store = make_store(max_running_per_owner=1)
    alice = []
    for i in range(10):
        alice.append(store.submit("alice", f"u://a{i}").id)
        clock.advance(1)
    bob = store.submit("bob", "u://b").id
    assert store.position(bob, worker_slots=1).position == 2  # type: ignore[union-attr]
    order = []
    while jobs := store.claim("w1", 1):
        job = jobs[0]
        order.append(job.id)
        store.complete(job.id, job.lease_token or "", {}, compute_seconds=1)
    assert order == [alice[0], bob, *alice[1:]]


def test_owner_back_after_a_pause_joins_the_current_round(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store = make_store(max_running_per_owner=1)
    alice = [store.submit("alice", f"u://a{i}").id for i in range(6)]
    taken = []
    for _ in range(3):
        job = claim_one(store)
        taken.append(job.id)
        store.complete(job.id, job.lease_token or "", {}, compute_seconds=1)
    assert taken == alice[:3]
    # bob (never served) and carol arrive now: both go before alice's fourth job.
    bob = store.submit("bob", "u://b").id
    carol = store.submit("carol", "u://c").id
    assert [claim_one(store).id for _ in range(3)] == [bob, carol, alice[3]]


def test_position_matches_claim_order(make_store: StoreFactory, clock: ManualClock) -> None:
    store = make_store(max_running_per_owner=2, max_queued_per_owner=1000)
    # alice runs 2 jobs (her cap), bob 1, carol and dave none.
    for owner, n in [("alice", 2), ("bob", 1)]:
        for i in range(n):
            store.submit(owner, f"u://{owner}-run-{i}", priority=10)
    store.claim("setup", 3)
    queued = []
    owners = ["alice", "bob", "carol", "dave"]
    for i in range(24):
        job = store.submit(owners[i % 4], f"u://{i}", priority=[3, 5, 5, 7][i % 3])
        queued.append(job.id)
        if i % 5:
            clock.advance(1)  # some share a timestamp: seq breaks the tie
    positions = {job_id: store.position(job_id, worker_slots=2) for job_id in queued}
    claimed = drain_one_at_a_time(store, clock, owners)
    assert sorted(claimed) == sorted(queued)
    for rank, job_id in enumerate(claimed):
        pos = positions[job_id]
        assert pos is not None
        assert (pos.position, pos.jobs_ahead) == (rank + 1, rank), (rank, job_id)
    # alice was at her cap: every one of her jobs comes after the others' jobs.
    assert {store.get(j).owner for j in claimed[-6:]} == {"alice"}
    assert store.position(claimed[0], worker_slots=2) is None  # no longer queued


def test_eta_uses_measured_speed_and_workers(make_store: StoreFactory) -> None:
    store = make_store(default_compute_per_audio_second=0.5)
    assert store.compute_per_audio_second() == 0.5
    done = store.submit("zed", "u://done", audio_duration_s=100.0)
    job = claim_one(store)
    assert job.id == done.id
    store.complete(job.id, job.lease_token, {"srt": "x"}, compute_seconds=25.0)
    assert store.compute_per_audio_second() == pytest.approx(0.25)
    first = store.submit("alice", "u://1", audio_duration_s=40.0)
    second = store.submit("bob", "u://2", audio_duration_s=80.0)
    pos1 = store.position(first.id, worker_slots=2)
    pos2 = store.position(second.id, worker_slots=2)
    assert pos1 is not None and pos2 is not None
    assert pos1.position == 1 and pos1.eta_start_s == 0 and pos1.eta_s == pytest.approx(10.0)
    assert pos2.position == 2
    assert pos2.eta_start_s == pytest.approx(40 * 0.25 / 2)
    assert pos2.eta_s == pytest.approx(5.0 + 80 * 0.25)
    with pytest.raises(NotFound):
        store.position(first.id, worker_slots=1, owner="bob")
