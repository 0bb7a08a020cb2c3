"""The dispatcher keeps what it claimed; settings that cannot work are refused at start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from aisubs.dispatch import Dispatcher
from aisubs.queue import JobState, open_store
from aisubs.settings import QueueSettings, Settings
from tests.support.settings import make_settings


def test_a_failed_metrics_sample_never_drops_the_claimed_batch(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, serve={"max_replicas": 2, "jobs_per_replica": 2})
    store = open_store(settings)
    for i in range(3):
        store.submit(f"user{i}", f"https://example.com/{i}.wav")
    # The sample table is gone (a broken migration, a full disk...): sampling fails.
    with sqlite3.connect(settings.store.sqlite_path) as conn:
        conn.execute("DROP TABLE queue_metrics")
    report = Dispatcher(settings, store).step()
    assert report.claimed == 3 and len(report.jobs) == 3
    assert not report.sampled
    assert {store.get(j.id).state for j in report.jobs} == {JobState.RUNNING}
    store.close()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"lease_seconds": 20, "heartbeat_seconds": 20}, "heartbeat_seconds"),
        ({"lease_seconds": 10, "heartbeat_seconds": 30}, "heartbeat_seconds"),
        ({"retry_min_seconds": 120, "retry_max_seconds": 60}, "retry_min_seconds"),
    ],
)
def test_queue_timing_that_cannot_work_is_refused(fields: dict[str, float], problem: str) -> None:
    with pytest.raises(ValidationError) as err:
        QueueSettings(**fields)
    assert problem in str(err.value)


def test_the_same_rules_hold_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISUBS_QUEUE__LEASE_SECONDS", "5")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("AISUBS_QUEUE__HEARTBEAT_SECONDS", "1")
    assert Settings().queue.lease_seconds == 5
