"""The JobStore contract, run against SQLite and PostgreSQL alike (see conftest.backend)."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from uuid import uuid4

import pytest

from aisubs.errors import (
    Cancelled,
    CapacityExceeded,
    IdempotencyConflict,
    InvalidRequest,
    InvalidState,
    LeaseLost,
    NotFound,
    Unauthorized,
)
from aisubs.queue.clock import ManualClock
from aisubs.queue.models import JobError, JobState, Progress
from aisubs.queue.store import JobStore
from tests.queue.ordering import StoreFactory, claim_one

TRANSIENT = JobError("fetch_failed", "connection reset", retryable=True, stage="fetch")
PERMANENT = JobError("undecodable_media", "not audio", retryable=False, stage="decode")


# ---------------------------------------------------------------- submit and validation
def test_submit_defaults_and_get(store: JobStore, clock: ManualClock) -> None:
    job = store.submit("alice", "upload://abc", {"language": "fr", "diarize": False})
    assert job.state is JobState.QUEUED
    assert job.priority == 5 and job.attempts == 0 and job.max_attempts == 3
    assert job.options.language == "fr" and job.options.diarize is False
    assert job.created_at == clock() and job.not_before == clock()
    assert job.lease_token is None and job.error is None and job.result == {}
    assert store.get(job.id) == job
    assert store.get(job.id, owner="alice") == job
    with pytest.raises(NotFound):
        store.get(job.id, owner="bob")
    with pytest.raises(NotFound):
        store.get(uuid4())
    assert [e.kind for e in store.list_events(job.id)] == ["submitted"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"priority": 0}, "priority 0"),
        ({"priority": 11}, "priority 11"),
        ({"priority": "5"}, "priority"),
        ({"priority": True}, "priority"),
        ({"options": {"colour": "red"}}, "colour"),
        ({"options": {"task": "summarize"}}, "task"),
        ({"options": {"min_speakers": 3, "max_speakers": 2}}, "min_speakers"),
        ({"options": {"formats": ["srt", "docx"]}}, "formats"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"audio_duration_s": -1.0}, "audio_duration_s"),
    ],
)
def test_bad_submissions_are_typed_and_change_nothing(
    store: JobStore, kwargs: dict, needle: str
) -> None:
    kwargs = dict(kwargs)
    options = kwargs.pop("options", None)
    with pytest.raises(InvalidRequest) as err:
        store.submit("alice", "upload://abc", options, **kwargs)
    assert needle in str(err.value)
    assert store.list_jobs("alice").jobs == []
    assert store.stats().queued == 0


def test_idempotent_submit(store: JobStore) -> None:
    first = store.submit("alice", "upload://a", {"language": "en"}, idempotency_key="k1")
    again = store.submit("alice", "upload://a", {"language": "en"}, idempotency_key="k1")
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict) as err:
        store.submit("alice", "upload://b", {"language": "en"}, idempotency_key="k1")
    assert "k1" in str(err.value)
    with pytest.raises(IdempotencyConflict):
        store.submit("alice", "upload://a", {"language": "en"}, idempotency_key="k1", priority=9)
    other = store.submit("bob", "upload://a", {"language": "en"}, idempotency_key="k1")
    assert other.id != first.id
    assert len(store.list_jobs("alice").jobs) == 1


def test_queue_caps_raise_capacity_exceeded(make_store: StoreFactory) -> None:
    store = make_store(max_queued_per_owner=2, max_queued_total=3, capacity_retry_after_s=12)
    store.submit("alice", "u://1", idempotency_key="a1")
    store.submit("alice", "u://2")
    with pytest.raises(CapacityExceeded) as err:
        store.submit("alice", "u://3")
    assert err.value.retry_after == 12 and "alice" in str(err.value)
    # A replay of an accepted submission is not a new job and is never refused.
    assert store.submit("alice", "u://1", idempotency_key="a1").source == "u://1"
    store.submit("bob", "u://4")
    with pytest.raises(CapacityExceeded) as err:
        store.submit("carol", "u://5")
    assert "queue is full" in str(err.value)
    assert store.stats().queued == 3


# ---------------------------------------------------------------- leases and fencing
def test_heartbeat_extends_lease_and_records_progress(store: JobStore, clock: ManualClock) -> None:
    store.submit("alice", "u://1")
    job = claim_one(store)
    assert job.state is JobState.RUNNING and job.attempts == 1 and job.lease_token
    assert job.lease_expires_at == clock() + timedelta(seconds=60)
    clock.advance(50)
    beat = store.heartbeat(job.id, job.lease_token, Progress("asr", 0.4))
    assert beat.lease_expires_at == clock() + timedelta(seconds=60)
    assert beat.progress == Progress("asr", 0.4)
    store.progress(job.id, job.lease_token, Progress("diarize", 0.6))
    assert store.get(job.id).progress == Progress("diarize", 0.6)
    clock.advance(50)  # 100 s after the claim, but the heartbeat moved the lease
    assert store.requeue_expired() == 0
    with pytest.raises(LeaseLost):
        store.heartbeat(job.id, "not-the-token")
    with pytest.raises(InvalidRequest):
        Progress("asr", 1.5)


def test_taken_over_lease_can_never_complete_or_fail(store: JobStore, clock: ManualClock) -> None:
    store.submit("alice", "u://1")
    old = claim_one(store, "w-old")
    clock.advance(61)  # lease expired: counts as a failed attempt, retried after backoff
    assert store.claim("w-new", 1) == []
    after = store.get(old.id)
    assert after.state is JobState.QUEUED and after.error is not None
    assert after.error.code == "lease_expired" and after.error.retryable
    assert after.not_before == clock() + timedelta(seconds=10)
    clock.advance(10)
    new = claim_one(store, "w-new")
    assert new.id == old.id and new.attempts == 2 and new.lease_token != old.lease_token
    for call in (
        lambda: store.complete(old.id, old.lease_token, {}, compute_seconds=1),
        lambda: store.fail(old.id, old.lease_token, TRANSIENT),
        lambda: store.heartbeat(old.id, old.lease_token),
        lambda: store.progress(old.id, old.lease_token, Progress("asr", 0.1)),
    ):
        with pytest.raises(LeaseLost):
            call()
    done = store.complete(new.id, new.lease_token, {"srt": "mem://x"}, compute_seconds=3)
    assert done.state is JobState.SUCCEEDED and done.result == {"srt": "mem://x"}
    with pytest.raises(LeaseLost):
        store.complete(new.id, new.lease_token, {}, compute_seconds=1)
    kinds = [e.kind for e in store.list_events(old.id)]
    assert kinds == ["submitted", "claimed", "lease_expired", "retried", "claimed", "completed"]


def test_expired_lease_on_last_attempt_fails_the_job(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store = make_store(max_attempts=2)
    job = store.submit("alice", "u://1")
    claim_one(store)
    clock.advance(61)
    assert store.requeue_expired() == 1
    clock.advance(10)
    claim_one(store)
    clock.advance(61)
    assert store.requeue_expired() == 1
    final = store.get(job.id)
    assert final.state is JobState.FAILED and final.attempts == 2
    assert final.error is not None and final.error.code == "lease_expired"
    assert store.claim("w", 5) == []


# ---------------------------------------------------------------- retries
def test_retry_backoff_then_dead_letter(store: JobStore, clock: ManualClock) -> None:
    job = store.submit("alice", "u://1")
    waits = []
    for attempt in (1, 2):
        running = claim_one(store)
        assert running.attempts == attempt
        retried = store.fail(running.id, running.lease_token, TRANSIENT)
        assert retried.state is JobState.QUEUED and retried.error == TRANSIENT
        waits.append((retried.not_before - clock()).total_seconds())
        assert store.claim("w", 1) == []  # not before the backoff
        clock.advance(waits[-1])
    assert waits == [10.0, 20.0]
    last = claim_one(store)
    failed = store.fail(last.id, last.lease_token, TRANSIENT)
    assert failed.state is JobState.FAILED and failed.attempts == 3
    assert failed.error == TRANSIENT and failed.finished_at == clock()
    assert store.get(job.id).state is JobState.FAILED
    clock.advance(1000)
    assert store.claim("w", 1) == []


def test_permanent_error_fails_at_once(store: JobStore) -> None:
    store.submit("alice", "u://1")
    job = claim_one(store)
    failed = store.fail(job.id, job.lease_token, PERMANENT)
    assert failed.state is JobState.FAILED and failed.attempts == 1
    assert failed.error == PERMANENT


def test_backoff_is_capped(make_store: StoreFactory, clock: ManualClock) -> None:
    store = make_store(max_attempts=10, retry_min_seconds=30, retry_max_seconds=100)
    store.submit("alice", "u://1")
    waits = []
    for _ in range(4):
        job = claim_one(store)
        retried = store.fail(job.id, job.lease_token, TRANSIENT)
        waits.append((retried.not_before - clock()).total_seconds())
        clock.advance(waits[-1])
    assert waits == [30.0, 60.0, 100.0, 100.0]


# ---------------------------------------------------------------- cancel and delete
def test_cancel_queued_and_running(store: JobStore) -> None:
    queued = store.submit("alice", "u://q")
    running_src = store.submit("alice", "u://r", priority=9)
    running = claim_one(store)
    assert running.id == running_src.id
    assert store.cancel(queued.id, owner="alice").state is JobState.CANCELLED
    assert store.cancel(queued.id, owner="alice").state is JobState.CANCELLED  # idempotent
    cancelled = store.cancel(running.id, owner="alice")
    assert cancelled.state is JobState.CANCELLED and cancelled.lease_token is None
    with pytest.raises(Cancelled):
        store.heartbeat(running.id, running.lease_token)
    with pytest.raises(Cancelled):
        store.complete(running.id, running.lease_token, {}, compute_seconds=1)
    with pytest.raises(Cancelled):
        store.fail(running.id, running.lease_token, TRANSIENT)
    assert store.claim("w", 10) == []
    assert store.stats().running == 0


def test_cancel_rules(store: JobStore) -> None:
    job = store.submit("alice", "u://1")
    with pytest.raises(NotFound):
        store.cancel(job.id, owner="mallory")
    assert store.get(job.id).state is JobState.QUEUED
    running = claim_one(store)
    store.complete(running.id, running.lease_token, {}, compute_seconds=1)
    with pytest.raises(InvalidState) as err:
        store.cancel(job.id, owner="alice")
    assert "succeeded" in str(err.value)


def test_delete(store: JobStore) -> None:
    job = store.submit("alice", "u://1")
    running = claim_one(store)
    with pytest.raises(NotFound):
        store.delete(job.id, owner="mallory")
    last = store.delete(job.id, owner="alice")
    assert last.id == job.id and last.state is JobState.RUNNING
    for call in (
        lambda: store.get(job.id),
        lambda: store.cancel(job.id),
        lambda: store.delete(job.id),
        lambda: store.list_events(job.id),
        lambda: store.add_event(job.id, "stage_started", {"stage": "asr"}),
    ):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(LeaseLost) as err:
        store.complete(running.id, running.lease_token, {}, compute_seconds=1)
    assert "deleted" in str(err.value)
    assert store.stats().running == 0
    # The owner's running count was released with the row.
    store.submit("alice", "u://2")
    store.submit("alice", "u://3")
    assert len(store.claim("w", 5)) == 2


# ---------------------------------------------------------------- reading
def test_list_jobs_paginates_and_filters(store: JobStore, clock: ManualClock) -> None:
    ids = []
    for i in range(7):
        ids.append(store.submit("alice", f"u://{i}").id)
        clock.advance(1)
    store.submit("bob", "u://bob")
    store.cancel(ids[0])
    seen, cursor = [], None
    while True:
        page = store.list_jobs("alice", limit=3, cursor=cursor)
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids[::-1]
    cancelled = store.list_jobs("alice", states={JobState.CANCELLED})
    assert [j.id for j in cancelled.jobs] == [ids[0]]
    assert store.list_jobs("nobody").jobs == []
    with pytest.raises(InvalidRequest):
        store.list_jobs("alice", cursor="abc")
    with pytest.raises(InvalidRequest):
        store.list_jobs("alice", limit=0)


def test_events_record_the_history(store: JobStore) -> None:
    job = store.submit("alice", "u://1")
    running = claim_one(store, "w9")
    store.add_event(job.id, "stage_started", {"stage": "asr"})
    store.add_event(job.id, "stage_finished", {"stage": "asr", "seconds": 1.5})
    store.fail(running.id, running.lease_token, TRANSIENT)
    events = store.list_events(job.id, owner="alice")
    assert [e.kind for e in events] == [
        "submitted",
        "claimed",
        "stage_started",
        "stage_finished",
        "retried",
    ]
    assert events[1].worker_instance == "w9" and events[1].attempt == 1
    assert events[3].detail == {"stage": "asr", "seconds": 1.5}
    assert events[4].detail["code"] == "fetch_failed"
    with pytest.raises(NotFound):
        store.list_events(job.id, owner="bob")


def test_stats(store: JobStore, clock: ManualClock) -> None:
    for prio in (1, 5, 5, 9):
        store.submit("alice", f"u://{prio}-{uuid4()}", priority=prio, audio_duration_s=10)
    clock.advance(30)
    stats = store.stats()
    assert stats.queued == 4 and stats.depth_by_priority == {9: 1, 5: 2, 1: 1}
    assert stats.oldest_wait_s == 30 and stats.running == 0
    a, b = store.claim("w", 2)
    store.complete(a.id, a.lease_token, {}, compute_seconds=2)
    store.fail(b.id, b.lease_token, PERMANENT)
    c = claim_one(store)
    store.fail(c.id, c.lease_token, TRANSIENT)
    claim_one(store)
    stats = store.stats()
    assert stats.running == 1 and stats.queued == 1
    assert stats.completed_last_hour == 1 and stats.failed_last_hour == 1
    # 4 attempts started, one failed in decode and one in fetch.
    assert stats.error_rate_by_stage == {"decode": 0.25, "fetch": 0.25}
    assert stats.compute_per_audio_second == pytest.approx(0.2)
    clock.advance(3601)
    later = store.stats()
    assert later.completed_last_hour == 0 and later.failed_last_hour == 0
    assert later.error_rate_by_stage == {}


def test_queue_metrics_samples(store: JobStore, clock: ManualClock) -> None:
    start = clock()
    store.submit("alice", "u://1")
    store.submit("alice", "u://2")
    job = claim_one(store)
    clock.advance(40)
    store.complete(job.id, job.lease_token, {}, compute_seconds=40)
    first = store.write_queue_metrics_sample(active_workers=3)
    assert (first.queue_depth, first.active_workers, first.jobs_completed_hour) == (1, 3, 1)
    assert first.avg_processing_time == pytest.approx(40.0)
    assert first.timestamp == clock()
    clock.advance(120)
    second = store.write_queue_metrics_sample(active_workers=1)
    assert [s.id for s in store.list_queue_metrics(start)] == [first.id, second.id]
    assert store.prune_queue_metrics(older_than=clock() - timedelta(seconds=60)) == 1
    assert [s.id for s in store.list_queue_metrics(start)] == [second.id]


def test_api_keys(store: JobStore) -> None:
    key_id, plaintext = store.create_api_key("alice", max_priority=7)
    assert len(plaintext) > 40
    key = store.authenticate(plaintext)
    assert (key.key_id, key.owner, key.max_priority, key.revoked_at) == (key_id, "alice", 7, None)
    # Only the SHA-256 of the key is kept.
    with store.backend.transaction("read") as tx:  # type: ignore[attr-defined]
        row = tx.one("get_api_key", key_id=key_id)
    assert row["key_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in {str(v) for v in dict(row).values()}
    with pytest.raises(Unauthorized):
        store.authenticate(plaintext + "x")
    with pytest.raises(NotFound):
        store.revoke_api_key(key_id, owner="bob")
    store.revoke_api_key(key_id, owner="alice")
    store.revoke_api_key(key_id)
    with pytest.raises(Unauthorized) as err:
        store.authenticate(plaintext)
    assert "revoked" in str(err.value)
    assert [k.key_id for k in store.list_api_keys("alice")] == [key_id]
    with pytest.raises(InvalidRequest):
        store.create_api_key("alice", max_priority=11)


def test_threads_share_one_store_without_double_claims(make_store: StoreFactory) -> None:
    store = make_store(max_running_per_owner=1000, max_queued_per_owner=1000)
    for i in range(200):
        store.submit(f"o{i % 7}", f"u://{i}")
    got: list = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while jobs := store.claim(name, 7):
            for job in jobs:
                store.complete(job.id, job.lease_token, {}, compute_seconds=0.1)
            with lock:
                got.extend(j.id for j in jobs)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 200
    assert store.stats().completed_last_hour == 200
