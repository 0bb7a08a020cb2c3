"""What users see of errors: a public message per code, never internal details.

The detail of an error (exception text, database host, Ray traceback, resolved addresses,
storage keys, file paths) goes to the log; HTTP error bodies, a job's error and its
timeline carry the public message only. Swept over every error class and code, then
checked on the real paths that used to leak.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aisubs import errors
from aisubs.errors import AisubsError, PipelineError, StoreUnavailable
from aisubs.queue.models import JobError
from serve_app.api import ApiState, create_api
from serve_app.http_errors import domain_error_response
from tests.api.api_support import Api, ApiFactory
from tests.support.settings import make_settings

# Internal details an error's message may carry; none may reach a user.
SECRETS = (
    "db-primary.internal",
    "10.20.30.40",
    "Traceback (most recent call last)",
    "results/0b9e3c52-3c2d-4f8e-9a55-3f0d6a7c2a10/attempt-1/subtitles.srt",
    "media/f00dfeed/source",
    "/var/lib/aisubs",
)
POISON = "; ".join(SECRETS)


def all_error_classes() -> list[type[AisubsError]]:
    found: list[type[AisubsError]] = []
    pending: list[type[AisubsError]] = [AisubsError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def every_error() -> list[AisubsError]:
    """One error per class, and one per code a raiser can set, each with a poisoned detail."""
    made: list[AisubsError] = []
    for cls in all_error_classes():
        if cls.message_is_public:
            continue  # messages of these describe the caller's own request (see below)
        made.append(cls(POISON))
    for code in errors.PUBLIC_MESSAGES:
        made.append(AisubsError(POISON, code=code))
    made.append(PipelineError(POISON, stage="asr"))
    return made


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.mark.parametrize("exc", every_error(), ids=lambda e: f"{type(e).__name__}-{e.code}")
def test_every_code_has_a_public_message_free_of_internals(exc: AisubsError) -> None:
    assert exc.public_message and not leaks(exc.public_message)
    job_error = JobError.from_exception(exc, "fetch")
    assert job_error.code == exc.code and not leaks(job_error.message)
    body = domain_error_response(exc).body.decode()
    assert json.loads(body)["error"]["code"] in (exc.code, "internal_error")
    assert not leaks(body), body


def test_unknown_exceptions_become_a_generic_internal_error() -> None:
    error = JobError.from_exception(RuntimeError(POISON), "asr")
    assert (error.code, error.retryable) == ("internal_error", True)
    assert not leaks(error.message)


def test_only_request_describing_errors_show_their_message() -> None:
    """Errors whose message is shown as is only ever describe the caller's request."""
    public = {cls.__name__ for cls in all_error_classes() if cls.message_is_public}
    assert public == {
        "InvalidRequest",
        "NotFound",
        "Unauthorized",
        "Forbidden",
        "Conflict",
        "IdempotencyConflict",
        "InvalidState",
        "CapacityExceeded",
        "EmptyMedia",
        "NoAudioStream",
        "MediaTooLarge",
        "ForbiddenURL",
        "FetchFailed",
    }


# ------------------------------------------------------------------ real paths
def test_unreachable_store_answers_without_its_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tmp_path,
        store={
            "backend": "postgres",
            "postgres_dsn": "postgresql://aisubs@db-primary.internal:5432/prod",
            "connect_timeout_s": 1,
        },
    )
    state = ApiState.create(settings)
    with TestClient(create_api(state)) as client, caplog.at_level(logging.WARNING):
        r = client.get("/v1/jobs", headers={"Authorization": "Bearer aisk_x"})
        ready = client.get("/readyz")
    assert r.status_code == 503 and ready.status_code == 503
    for answer in (r, ready):
        assert not leaks(answer.text) and "5432" not in answer.text, answer.text
    assert "db-primary.internal" in caplog.text  # the operator still learns where


def test_forbidden_url_does_not_say_what_the_name_resolves_to(make_api: ApiFactory) -> None:
    api = make_api()
    r = api.submit_url("http://localhost:9/clip.mp3")
    assert r.status_code == 400 and r.json()["error"]["code"] == "forbidden_url"
    assert "127.0.0.1" not in r.text and "::1" not in r.text


def test_undecodable_upload_error_names_no_path(api: Api) -> None:
    r = api.upload(b"RIFF" + b"\x00garbage" * 100)
    assert r.status_code == 400 and r.json()["error"]["code"] == "undecodable_media"
    assert str(api.tmp_path) not in r.text and "media/" not in r.text


def test_missing_result_file_answers_without_the_storage_key(api: Api) -> None:
    job = api.store.submit("alice", "upload://media/x/source")
    [claimed] = api.store.claim("w")
    key = f"results/{job.id}/attempt-1/subtitles.srt"
    api.store.complete(job.id, claimed.lease_token or "", {"srt": key}, compute_seconds=1)
    r = api.client.get(f"/v1/jobs/{job.id}/subtitles.srt", headers=api.auth())
    assert r.status_code == 404
    assert "results/" not in r.text and str(job.id) + "/attempt" not in r.text


def test_stage_traceback_stays_out_of_the_job_error_and_timeline(api: Api) -> None:
    store = api.store
    job = store.submit("alice", "upload://media/x/source")
    [claimed] = store.claim("w")
    ray_error = PipelineError(
        f"asr failed: RayTaskError(RuntimeError): {POISON}\n  File 'x.py', line 1", stage="asr"
    )
    store.fail(job.id, claimed.lease_token or "", JobError.from_exception(ray_error))
    view = api.client.get(f"/v1/jobs/{job.id}", headers=api.auth()).json()
    events = api.client.get(f"/v1/jobs/{job.id}/events", headers=api.auth()).text
    assert view["error"]["code"] == "pipeline_error" and "asr" in view["error"]["message"]
    for text in (json.dumps(view), events):
        assert not leaks(text) and "RayTaskError" not in text


def test_store_errors_keep_their_detail_for_the_log() -> None:
    exc = StoreUnavailable(f"PostgreSQL job store unavailable: {POISON}")
    assert exc.message.endswith(POISON)  # for the operator
    assert exc.public_message == errors.PUBLIC_MESSAGES["store_unavailable"]
