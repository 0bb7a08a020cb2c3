"""Reading, listing, cancelling, purging jobs and downloading their subtitles."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import pysubs2
import pytest
import webvtt

from aisubs.media.storage import result_key
from aisubs.queue.models import Job, JobError
from tests.api.api_support import Api, ApiFactory

SRT = "1\n00:00:00,000 --> 00:00:02,500\nAnd so my fellow Americans\n\n"
VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n<v SPEAKER_00>And so my fellow Americans\n\n"
TXT = "And so my fellow Americans\n"
TRANSCRIPT = {"language": "en", "segments": [{"start": 0.0, "end": 2.5, "text": "And so"}]}


def submit(api: Api, owner: str = "alice", **data: str) -> str:
    r = api.upload(owner=owner, data=data)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def run_to_success(api: Api, job_id: str, formats: dict[str, str]) -> Job:
    """Drive a job like a worker would: claim, write artifacts, complete."""
    [job] = api.store.claim("worker-1")
    assert str(job.id) == job_id and job.lease_token is not None
    refs = {}
    for fmt, text in formats.items():
        key = result_key(job_id, f"subtitles.{fmt}")
        api.state.storage.put_bytes(key, text.encode())
        refs[fmt] = key
    return api.store.complete(
        job.id, job.lease_token, refs, compute_seconds=2.0, audio_duration_s=0.5
    )


def test_get_job_shows_state_position_and_links(api: Api) -> None:
    job_id = submit(api)
    r = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth())
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == job_id
    assert body["state"] == "queued"
    assert body["position"] == 1
    assert body["attempts"] == 0 and body["max_attempts"] == 3
    assert body["error"] is None
    assert body["links"] == {
        "job": f"/v1/jobs/{job_id}",
        "events": f"/v1/jobs/{job_id}/events",
        "subtitles": {},
    }


def test_running_job_shows_stage_progress_and_no_position(api: Api) -> None:
    job_id = submit(api)
    [job] = api.store.claim("worker-1")
    assert job.lease_token is not None
    from aisubs.queue.models import Progress

    api.store.progress(job.id, job.lease_token, Progress("asr", 0.4))
    body = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    assert body["state"] == "running"
    assert body["stage"] == "asr" and body["progress"] == pytest.approx(0.4)
    assert body["position"] is None and body["eta_seconds"] is None
    assert body["attempts"] == 1
    assert body["timings"]["started_at"] is not None


def test_failed_job_reports_its_error(make_api: ApiFactory) -> None:
    api = make_api(queue={"max_attempts": 1})
    job_id = submit(api)
    [job] = api.store.claim("worker-1")
    assert job.lease_token is not None
    api.store.fail(
        job.id,
        job.lease_token,
        JobError(code="undecodable_media", message="bad file", retryable=False, stage="decode"),
    )
    body = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    assert body["state"] == "failed"
    assert body["error"] == {
        "code": "undecodable_media",
        "message": "bad file",
        "retryable": False,
        "stage": "decode",
    }


def test_subtitles_are_409_until_success_then_downloadable(api: Api) -> None:
    job_id = submit(api, formats="srt,vtt,json,txt")
    r = api.client.get(f"/v1/jobs/{job_id}/subtitles.srt", headers=api.auth())
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "not_ready"
    assert "queued" in r.json()["error"]["message"]

    run_to_success(
        api, job_id, {"srt": SRT, "vtt": VTT, "json": json.dumps(TRANSCRIPT), "txt": TXT}
    )
    body = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    assert body["state"] == "succeeded"
    assert body["links"]["subtitles"] == {
        fmt: f"/v1/jobs/{job_id}/subtitles.{fmt}" for fmt in ("json", "srt", "txt", "vtt")
    }

    srt = api.client.get(f"/v1/jobs/{job_id}/subtitles.srt", headers=api.auth())
    assert srt.status_code == 200
    assert srt.headers["content-type"].startswith("application/x-subrip")
    assert srt.text == SRT
    assert [e.text for e in pysubs2.SSAFile.from_string(srt.text)] == ["And so my fellow Americans"]

    vtt = api.client.get(f"/v1/jobs/{job_id}/subtitles.vtt", headers=api.auth())
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8"
    captions = webvtt.from_string(vtt.text)
    assert captions[0].voice == "SPEAKER_00"

    js = api.client.get(f"/v1/jobs/{job_id}/subtitles.json", headers=api.auth())
    assert js.headers["content-type"] == "application/json"
    assert js.json() == TRANSCRIPT

    txt = api.client.get(f"/v1/jobs/{job_id}/subtitles.txt", headers=api.auth())
    assert txt.headers["content-type"] == "text/plain; charset=utf-8"
    assert txt.text == TXT


def test_format_not_produced_is_404(api: Api) -> None:
    job_id = submit(api, formats="srt")
    run_to_success(api, job_id, {"srt": SRT})
    r = api.client.get(f"/v1/jobs/{job_id}/subtitles.vtt", headers=api.auth())
    assert r.status_code == 404
    assert api.client.get(f"/v1/jobs/{job_id}/subtitles.doc", headers=api.auth()).status_code in (
        404,
        422,
    )


def test_other_owners_jobs_are_404_everywhere(api: Api) -> None:
    job_id = submit(api, owner="alice")
    run_to_success(api, job_id, {"srt": SRT})
    bob = api.auth("bob")
    for method, path in [
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/events"),
        ("GET", f"/v1/jobs/{job_id}/subtitles.srt"),
        ("DELETE", f"/v1/jobs/{job_id}"),
        ("DELETE", f"/v1/jobs/{job_id}?purge=true"),
    ]:
        r = api.client.request(method, path, headers=bob)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    # Same answer as for an id that does not exist at all.
    r = api.client.get(f"/v1/jobs/{uuid4()}", headers=bob)
    assert r.status_code == 404
    assert api.client.get("/v1/jobs", headers=bob).json()["jobs"] == []
    # Nothing happened to alice's job or its results.
    assert api.store.get(UUID(job_id)).state == "succeeded"
    assert api.state.storage.exists(result_key(job_id, "subtitles.srt"))


def test_cancel_queued_job_then_cancel_again(api: Api) -> None:
    job_id = submit(api)
    r = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth())
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled"
    again = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth())
    assert again.status_code == 200
    assert again.json()["state"] == "cancelled"


def test_cancel_running_job_loses_the_workers_lease(api: Api) -> None:
    job_id = submit(api)
    [job] = api.store.claim("worker-1")
    r = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth())
    assert r.json()["state"] == "cancelled"
    from aisubs.errors import Cancelled

    assert job.lease_token is not None
    with pytest.raises(Cancelled):
        api.store.heartbeat(job.id, job.lease_token)


def test_cancelling_a_finished_job_is_409_but_purge_works(api: Api) -> None:
    job_id = submit(api)
    run_to_success(api, job_id, {"srt": SRT})
    r = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth())
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "invalid_state"

    assert len(api.media_files()) == 1
    purged = api.client.delete(f"/v1/jobs/{job_id}?purge=true", headers=api.auth())
    assert purged.status_code == 200
    assert purged.json()["id"] == job_id
    assert api.media_files() == []
    assert not api.state.storage.exists(result_key(job_id, "subtitles.srt"))
    assert api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).status_code == 404


def test_purge_of_a_queued_job_cancels_and_deletes(api: Api) -> None:
    job_id = submit(api)
    r = api.client.delete(f"/v1/jobs/{job_id}", params={"purge": "true"}, headers=api.auth())
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled"
    assert api.media_files() == []
    assert api.store.list_jobs("alice").jobs == []


def test_list_jobs_paginates_and_filters(api: Api) -> None:
    ids = [submit(api) for _ in range(3)]
    api.client.delete(f"/v1/jobs/{ids[0]}", headers=api.auth())
    submit(api, owner="bob")

    page = api.client.get("/v1/jobs", params={"limit": 2}, headers=api.auth()).json()
    assert [j["id"] for j in page["jobs"]] == [ids[2], ids[1]]
    assert page["next_cursor"]
    rest = api.client.get(
        "/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}, headers=api.auth()
    ).json()
    assert [j["id"] for j in rest["jobs"]] == [ids[0]]
    assert rest["next_cursor"] is None

    queued = api.client.get("/v1/jobs", params={"state": "queued"}, headers=api.auth()).json()
    assert {j["id"] for j in queued["jobs"]} == {ids[1], ids[2]}
    both = api.client.get(
        "/v1/jobs", params=[("state", "queued"), ("state", "cancelled")], headers=api.auth()
    ).json()
    assert len(both["jobs"]) == 3

    bad = api.client.get("/v1/jobs", params={"state": "sleeping"}, headers=api.auth())
    assert bad.status_code == 422
    bad = api.client.get("/v1/jobs", params={"cursor": "abc"}, headers=api.auth())
    assert bad.status_code == 422


def test_events_show_the_timeline(api: Api) -> None:
    job_id = submit(api)
    run_to_success(api, job_id, {"srt": SRT})
    r = api.client.get(f"/v1/jobs/{job_id}/events", headers=api.auth())
    assert r.status_code == 200
    body = r.json()
    assert body["job_id"] == job_id
    kinds = [e["kind"] for e in body["events"]]
    assert kinds[0] == "submitted"
    assert "claimed" in kinds and kinds[-1] == "completed"


def test_invalid_job_id_is_422(api: Api) -> None:
    r = api.client.get("/v1/jobs/not-a-uuid", headers=api.auth())
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
