"""POST /v1/jobs: uploads, URL jobs, priorities, idempotency and size limits."""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

import pytest

from aisubs.queue.models import JobState
from serve_app.routes.uploads import UPLOAD_SCHEME
from tests.api.api_support import Api, ApiFactory, wav_bytes
from tests.support.paths import JFK


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


@pytest.mark.skipif(not JFK.exists(), reason="shared speech data not present")
def test_upload_is_streamed_to_storage_and_queued_first(api: Api) -> None:
    content = JFK.read_bytes()
    r = api.upload(content, filename="jfk.flac", data={"language": "en"})

    assert r.status_code == 202, r.text
    body = r.json()
    assert body["state"] == "queued"
    assert body["position"] == 1
    assert body["eta_seconds"] > 0 and body["eta_start_seconds"] == 0
    assert body["source"] == {"kind": "upload", "url": None}
    assert body["options"]["language"] == "en"
    # The container header was read at submit: its duration feeds the ETA.
    assert body["timings"]["audio_duration_s"] == pytest.approx(11.0, abs=0.1)
    assert r.headers["Location"] == f"/v1/jobs/{body['id']}"

    job = api.store.get(UUID(body["id"]))
    assert job.source.startswith(UPLOAD_SCHEME)
    key = job.source[len(UPLOAD_SCHEME) :]
    assert key.startswith("media/") and key.endswith("/source")
    assert api.state.storage.get_bytes(key) == content
    assert [p.name for p in api.media_files()] == ["source"]


def test_form_fields_become_job_options(api: Api) -> None:
    r = api.client.post(
        "/v1/jobs",
        headers=api.auth(),
        files={"file": ("a.wav", wav_bytes(), "audio/wav")},
        data={
            "formats": ["srt", "vtt,txt"],
            "diarize": "false",
            "num_speakers": "2",
            "task": "translate",
            "priority": "4",
            "prompt": "",  # empty form values count as absent
        },
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["priority"] == 4
    assert body["options"]["formats"] == ["srt", "vtt", "txt"]
    assert body["options"]["diarize"] is False
    assert body["options"]["num_speakers"] == 2
    assert body["options"]["task"] == "translate"
    assert body["options"]["prompt"] is None


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"formats": "srt,docx"}, 422, "validation_error"),
        ({"min_speakers": "3", "max_speakers": "2"}, 422, "validation_error"),
        ({"colour": "blue"}, 422, "validation_error"),
        ({"priority": "eleven"}, 422, "validation_error"),
        ({"translate_to": "de"}, 400, "invalid_request"),  # Whisper translates to English only
    ],
)
def test_invalid_form_options_are_refused_and_nothing_is_kept(
    api: Api, data: dict[str, str], status: int, code: str
) -> None:
    r = api.upload(data=data)
    assert r.status_code == status, r.text
    assert error_code(r) == code
    assert api.media_files() == []
    assert api.store.list_jobs("alice").jobs == []


def test_multipart_without_file_part_is_422(api: Api) -> None:
    r = api.client.post(
        "/v1/jobs",
        headers=api.auth(),
        files={"language": (None, "en")},  # multipart, but no file
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["body", "file"]


def test_empty_upload_is_refused(api: Api) -> None:
    r = api.upload(b"")
    assert r.status_code == 400
    assert error_code(r) == "empty_media"
    assert api.media_files() == []
    assert api.store.list_jobs("alice").jobs == []


def test_undecodable_upload_is_refused_at_submit(api: Api) -> None:
    r = api.upload(os.urandom(4096))
    assert r.status_code == 400
    assert error_code(r) == "undecodable_media"
    assert api.media_files() == []


def test_media_longer_than_the_limit_is_refused(make_api: ApiFactory) -> None:
    api = make_api(media={"max_duration_s": 0.2})
    r = api.upload(wav_bytes(seconds=0.5))
    assert r.status_code == 400
    assert error_code(r) == "media_too_long"
    assert api.media_files() == []


@pytest.mark.parametrize("idempotency_key", [None, "oversize-1"])
def test_oversize_upload_is_413_while_streaming_and_leaves_nothing(
    make_api: ApiFactory, idempotency_key: str | None
) -> None:
    api = make_api(media={"max_upload_bytes": 10_000})
    content = wav_bytes(seconds=1.0)  # 32 kB: below the Content-Length pre-check margin
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    r = api.upload(content, headers=headers)
    assert r.status_code == 413, r.text
    assert error_code(r) == "media_too_large"
    assert api.media_files() == []  # no object, no .part file
    assert api.store.list_jobs("alice").jobs == []


def test_declared_content_length_over_the_limit_is_refused_before_reading(
    make_api: ApiFactory,
) -> None:
    api = make_api(media={"max_upload_bytes": 1000})
    r = api.upload(b"\0" * (1024 * 1024 + 2000))
    assert r.status_code == 413
    assert error_code(r) == "media_too_large"
    assert api.media_files() == []


def test_url_to_loopback_is_refused_unless_allowed(make_api: ApiFactory) -> None:
    api = make_api()
    r = api.submit_url("http://127.0.0.1:8080/talk.mp3")
    assert r.status_code == 400
    assert error_code(r) == "forbidden_url"
    assert api.store.list_jobs("alice").jobs == []

    allowed = make_api(media={"allow_networks": ["127.0.0.0/8"]})
    r = allowed.submit_url(
        "http://127.0.0.1:8080/talk.mp3", options={"formats": ["srt"], "diarize": False}
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["source"] == {"kind": "url", "url": "http://127.0.0.1:8080/talk.mp3"}
    assert body["options"]["formats"] == ["srt"]
    assert allowed.store.get(UUID(body["id"])).source == "http://127.0.0.1:8080/talk.mp3"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/a.mp3", "forbidden_url"),
        ("http://169.254.169.254/latest/meta-data", "forbidden_url"),
        ("http://10.0.0.1/a.mp3", "forbidden_url"),
        ("not a url", "forbidden_url"),
    ],
)
def test_forbidden_urls(api: Api, url: str, code: str) -> None:
    r = api.submit_url(url)
    assert r.status_code == 400
    assert error_code(r) == code


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://example.com/a.mp3", "options": {"colour": "blue"}},
        {"url": "http://example.com/a.mp3", "priority": 0},
        {"url": "http://example.com/a.mp3", "surprise": 1},
        {"priority": 3},
    ],
)
def test_invalid_json_bodies_are_422_in_the_error_envelope(api: Api, body: dict) -> None:
    r = api.client.post("/v1/jobs", headers=api.auth(), json=body)
    assert r.status_code == 422
    assert error_code(r) == "validation_error"
    assert r.json()["error"]["details"]


def test_malformed_json_and_unsupported_content_type(api: Api) -> None:
    r = api.client.post(
        "/v1/jobs", headers={**api.auth(), "Content-Type": "application/json"}, content=b"{"
    )
    assert r.status_code == 422
    r = api.client.post(
        "/v1/jobs", headers={**api.auth(), "Content-Type": "text/plain"}, content=b"hello"
    )
    assert r.status_code == 415
    assert error_code(r) == "unsupported_media_type"


def test_priority_is_capped_by_the_key(make_api: ApiFactory) -> None:
    api = make_api(key_limits={"alice": 5, "low": 3})
    r = api.upload(data={"priority": "7"})
    assert r.status_code == 403
    assert error_code(r) == "priority_not_allowed"
    assert "maximum of 5" in r.json()["error"]["message"]
    assert api.media_files() == []

    r = api.submit_url("http://93.184.215.14/a.mp3", priority=6)
    assert r.status_code == 403
    assert api.store.list_jobs("alice").jobs == []

    assert api.upload(data={"priority": "5"}).json()["priority"] == 5
    # The service default (5) is lowered to a key's maximum when no priority is given.
    assert api.upload(owner="low").json()["priority"] == 3


def test_priority_field_before_the_file_is_checked_before_storing(api: Api) -> None:
    """A refused priority sent ahead of the file stops the upload before anything is stored."""
    boundary = "xyz"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="priority"\r\n\r\n9\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + wav_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = api.client.post(
        "/v1/jobs",
        headers={**api.auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body,
    )
    assert r.status_code == 403
    assert api.media_files() == []


def test_truncated_multipart_body_is_400(api: Api) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        + wav_bytes()
    )
    r = api.client.post(
        "/v1/jobs",
        headers={**api.auth(), "Content-Type": "multipart/form-data; boundary=b"},
        content=body,
    )
    assert r.status_code == 400
    assert error_code(r) == "invalid_request"
    assert api.media_files() == []


def test_idempotent_upload_returns_the_same_job_and_stores_once(api: Api) -> None:
    content = wav_bytes()
    headers = {"Idempotency-Key": "upload-1"}
    first = api.upload(content, headers=headers, data={"formats": "srt"})
    second = api.upload(content, headers=headers, data={"formats": "srt"})
    assert first.status_code == 202 and second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert len(api.media_files()) == 1
    assert len(api.store.list_jobs("alice").jobs) == 1

    # Same key, different request: refused, and the first job's upload is untouched.
    other = api.upload(content, headers=headers, data={"formats": "vtt"})
    assert other.status_code == 409
    assert error_code(other) == "idempotency_conflict"
    different_bytes = api.upload(wav_bytes(seconds=0.6), headers=headers, data={"formats": "srt"})
    assert different_bytes.status_code == 409
    assert len(api.media_files()) == 1
    job = api.store.get(UUID(first.json()["id"]))
    assert api.state.storage.get_bytes(job.source[len(UPLOAD_SCHEME) :]) == content

    # The key is per owner: bob may use the same one for his own job.
    bobs = api.upload(content, owner="bob", headers=headers, data={"formats": "srt"})
    assert bobs.status_code == 202
    assert bobs.json()["id"] != first.json()["id"]
    assert len(api.media_files()) == 2


def test_idempotent_url_submission(make_api: ApiFactory) -> None:
    api = make_api(media={"allow_networks": ["127.0.0.1/32"]})
    headers = {"Idempotency-Key": "url-1"}
    a = api.submit_url("http://127.0.0.1/a.mp3", headers=headers)
    b = api.submit_url("http://127.0.0.1/a.mp3", headers=headers)
    assert a.json()["id"] == b.json()["id"]
    c = api.submit_url("http://127.0.0.1/b.mp3", headers=headers)
    assert c.status_code == 409
    assert error_code(c) == "idempotency_conflict"


def test_per_owner_queue_cap_is_429_with_retry_after(make_api: ApiFactory) -> None:
    api = make_api(queue={"max_queued_per_owner": 1, "capacity_retry_after_s": 12.5})
    assert api.upload().status_code == 202
    r = api.upload()
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "13"
    assert error_code(r) == "owner_queue_full"
    # The refused upload was removed; only the queued job's media remains.
    assert len(api.media_files()) == 1
    # Another owner is not affected by alice's cap.
    assert api.upload(owner="bob").status_code == 202


def test_submit_needs_a_key(api: Api) -> None:
    r = api.client.post("/v1/jobs", files={"file": ("a.wav", wav_bytes())})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert api.media_files() == []


def test_queued_positions_follow_priority(api: Api) -> None:
    low = api.upload(data={"priority": "2"}).json()
    high = api.upload(owner="bob", data={"priority": "9"}).json()
    assert high["position"] == 1
    refreshed = api.client.get(f"/v1/jobs/{low['id']}", headers=api.auth()).json()
    assert refreshed["position"] == 2
    assert refreshed["state"] == JobState.QUEUED
