"""Queue status, probes, authentication and the error envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aisubs.errors import StoreUnavailable
from aisubs.queue import JobStore, QueueStats
from serve_app.api import ApiState, create_api
from tests.api.api_support import Api, ApiFactory
from tests.support.settings import make_settings


def test_queue_status_numbers(make_api: ApiFactory) -> None:
    api = make_api(state_overrides={"active_workers": lambda: 3})
    for owner, priority in [("alice", "5"), ("alice", "5"), ("bob", "9"), ("bob", "2")]:
        assert api.upload(owner=owner, data={"priority": priority}).status_code == 202
    api.store.claim("worker-1")  # takes the priority-9 job

    r = api.client.get("/v1/queue/status", headers=api.auth())
    assert r.status_code == 200
    body = r.json()
    assert body["queue_depth"] == 3
    assert body["depth_by_priority"] == {"5": 2, "2": 1}
    assert body["processing_jobs"] == 1
    assert body["active_workers"] == 3
    # (3 queued + 1/2 running) x 300 s typical audio x 0.5 s/s default speed, shared by
    # the worker slots: 3 replicas x 2 jobs each.
    slots = 3 * api.state.settings.serve.jobs_per_replica
    assert body["estimated_wait_minutes"] == pytest.approx(3.5 * 300 * 0.5 / slots / 60, abs=0.01)
    assert body["oldest_wait_s"] >= 0
    assert body["compute_per_audio_second"] == 0.5


def test_queue_status_needs_a_key(api: Api) -> None:
    r = api.client.get("/v1/queue/status")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer aisk_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
)
def test_missing_or_wrong_key_is_401(api: Api, headers: dict[str, str]) -> None:
    r = api.client.get("/v1/jobs", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"


def test_revoked_key_is_401(api: Api) -> None:
    key_id = api.store.list_api_keys("alice")[0].key_id
    api.store.revoke_api_key(key_id)
    assert api.client.get("/v1/jobs", headers=api.auth()).status_code == 401


def test_healthz_and_readyz(make_api: ApiFactory) -> None:
    api = make_api(
        state_overrides={
            "gpu_visible": True,
            "active_workers": lambda: 2,
            "models_ready": lambda: {"status": "warm", "asr": "base"},
        }
    )
    assert api.client.get("/healthz").json() == {"status": "ok"}
    r = api.client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {
        "ready": True,
        "store": {"ok": True, "detail": None},
        "models": {"status": "warm", "asr": "base"},
        "gpu_visible": True,
        "active_workers": 2,
    }


@pytest.mark.parametrize(
    ("models", "ready"),
    [
        ({"status": "unavailable"}, False),
        ({"Transcriber": {"can_start": False}, "Diarizer": {"can_start": True}}, False),
        ({"Transcriber": {"can_start": True}, "Diarizer": {"can_start": True}}, True),
    ],
)
def test_readyz_reflects_whether_models_can_start(
    make_api: ApiFactory, models: dict[str, Any], ready: bool
) -> None:
    api = make_api(state_overrides={"models_ready": lambda: models})
    r = api.client.get("/readyz")
    assert r.status_code == (200 if ready else 503)
    assert r.json()["ready"] is ready and r.json()["store"]["ok"] is True
    assert r.json()["models"] == models


def test_readyz_is_503_when_the_store_is_closed_but_healthz_is_fine(api: Api) -> None:
    api.store.close()
    r = api.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["store"] == {"ok": False, "detail": "job store unreachable"}
    assert api.client.get("/healthz").status_code == 200


def test_unreachable_postgres_gives_503_not_a_crash(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        store={
            "backend": "postgres",
            "postgres_dsn": "postgresql://postgres@127.0.0.1:1/none",
            "connect_timeout_s": 1.0,
        },
    )
    state = ApiState.create(settings)  # logs the failure; does not raise
    try:
        client = TestClient(create_api(state))
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["store"]["ok"] is False
        assert "127.0.0.1" not in r.text  # no topology on an unauthenticated endpoint
        r = client.get("/v1/jobs", headers={"Authorization": "Bearer aisk_x"})
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "5"
        assert r.json()["error"]["code"] == "store_unavailable"
        with pytest.raises(StoreUnavailable):
            _ = state.store
    finally:
        state.close()


def test_store_reconnects_after_an_outage(tmp_path: Path) -> None:
    attempts: list[int] = []
    settings = make_settings(tmp_path)
    from aisubs.queue import open_store

    def flaky_open() -> JobStore:
        attempts.append(1)
        if len(attempts) == 1:
            raise StoreUnavailable("database starting")
        return open_store(settings)

    from aisubs.media.storage import Storage

    state = ApiState(
        settings=settings,
        storage=Storage.from_settings(settings.media),
        open_store=flaky_open,
        store_retry_s=0.0,
    )
    client = TestClient(create_api(state))
    assert client.get("/readyz").status_code == 503
    assert client.get("/readyz").status_code == 200
    assert len(attempts) == 2
    state.close()


def test_unknown_route_and_method_use_the_envelope(api: Api) -> None:
    r = api.client.get("/v2/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = api.client.put("/v1/jobs", headers=api.auth())
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in r.headers["allow"]


def test_unexpected_errors_are_500_without_details(make_api: ApiFactory) -> None:
    api = make_api(raise_server_exceptions=False)

    def broken_stats() -> QueueStats:
        raise RuntimeError("secret internals: /srv/db password=hunter2")

    api.store.stats = broken_stats  # type: ignore[method-assign]
    r = api.client.get("/v1/queue/status", headers=api.auth())
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal_error", "message": "internal server error"}}
    assert "hunter2" not in r.text and "Traceback" not in r.text


def test_openapi_documents_both_submit_bodies_and_the_error_envelope(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    submit = spec["paths"]["/v1/jobs"]["post"]
    content = submit["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    form = spec["components"]["schemas"]["UploadJobForm"]
    assert form["required"] == ["file"]
    assert {"file", "priority", "language", "formats", "diarize"} <= set(form["properties"])
    assert "SubmitURLJob" in spec["components"]["schemas"]
    for status in ("401", "403", "413", "422", "429"):
        ref = submit["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    assert "Retry-After" in submit["responses"]["429"]["headers"]
    assert spec["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_unknown_query_parameters_are_refused(api: Api) -> None:
    job_id = api.upload().json()["id"]
    r = api.client.delete(f"/v1/jobs/{job_id}?purg=true", headers=api.auth())
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["query", "purg"]
    assert api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()["state"] == "queued"
    ok = api.client.get("/v1/jobs", params={"state": "queued", "limit": 5}, headers=api.auth())
    assert ok.status_code == 200
