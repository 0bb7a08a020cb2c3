"""The same API contract over the PostgreSQL store (what production runs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from aisubs.errors import StoreUnavailable
from aisubs.media.storage import result_key
from aisubs.queue import open_store
from serve_app.api import ApiState, create_api
from tests.api.api_support import Api, wav_bytes
from tests.support.settings import make_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_api(tmp_path: Path) -> Iterator[Api]:
    settings = make_settings(
        tmp_path,
        store={"backend": "postgres", "connect_timeout_s": 2.0},
        queue={"max_queued_per_owner": 3},
    )
    schema = f"api_test_{uuid.uuid4().hex[:12]}"
    try:
        store = open_store(settings, schema=schema)
    except StoreUnavailable as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    state = ApiState.create(settings, store=store)
    keys = {owner: store.create_api_key(owner, 5)[1] for owner in ("alice", "bob")}
    client = TestClient(create_api(state))
    try:
        yield Api(client=client, state=state, tmp_path=tmp_path, keys=keys)
    finally:
        client.close()
        state.close()
        with psycopg.connect(settings.store.postgres_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_job_life_cycle_over_postgres(pg_api: Api) -> None:
    api = pg_api
    content = wav_bytes()
    first = api.upload(content, headers={"Idempotency-Key": "k1"}, data={"formats": "srt"})
    assert first.status_code == 202, first.text
    job_id = first.json()["id"]
    assert first.json()["position"] == 1
    replay = api.upload(content, headers={"Idempotency-Key": "k1"}, data={"formats": "srt"})
    assert replay.json()["id"] == job_id
    assert len(api.media_files()) == 1
    conflict = api.upload(content, headers={"Idempotency-Key": "k1"}, data={"formats": "vtt"})
    assert conflict.status_code == 409

    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events"):
        assert api.client.get(path, headers=api.auth("bob")).status_code == 404
    assert api.client.get(f"/v1/jobs/{job_id}/subtitles.srt", headers=api.auth()).status_code == 409

    [job] = api.store.claim("worker-1")
    assert job.lease_token is not None
    key = result_key(job_id, "subtitles.srt")
    api.state.storage.put_bytes(key, b"1\n00:00:00,000 --> 00:00:01,000\nHi\n\n")
    api.store.complete(job.id, job.lease_token, {"srt": key}, compute_seconds=1.0)
    srt = api.client.get(f"/v1/jobs/{job_id}/subtitles.srt", headers=api.auth())
    assert srt.status_code == 200 and "Hi" in srt.text

    status = api.client.get("/v1/queue/status", headers=api.auth()).json()
    assert status["queue_depth"] == 0 and status["completed_last_hour"] == 1

    assert api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth()).status_code == 409
    purge = api.client.delete(f"/v1/jobs/{job_id}?purge=true", headers=api.auth())
    assert purge.status_code == 200
    assert api.media_files() == []
    assert api.client.get("/readyz").status_code == 200


def test_owner_cap_is_429_over_postgres(pg_api: Api) -> None:
    api = pg_api
    for _ in range(3):
        assert api.upload().status_code == 202
    r = api.upload()
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "30"
    assert len(api.media_files()) == 3
