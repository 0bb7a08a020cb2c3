"""HTTP details a client relies on: Allow on 405, documented cross-field option rules, ETAs
over worker slots, and idempotent upload retries that race each other."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn

from serve_app.api import ApiState, create_api
from serve_app.routes.uploads import UPLOAD_SCHEME
from tests.api.api_support import Api, ApiFactory, wav_bytes
from tests.support.settings import make_settings

UNDECLARED = ("PUT", "PATCH", "DELETE", "POST", "GET", "OPTIONS")


def test_405_names_every_method_of_the_path(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    job = api.store.submit("alice", "upload://media/x/source")
    checked = 0
    for template, operations in schema["paths"].items():
        path = template.replace("{job_id}", str(job.id)).replace("{fmt}", "srt")
        declared = {m.upper() for m in operations}
        for method in UNDECLARED:
            if method in declared:
                continue
            r = api.client.request(method, path, headers=api.auth())
            assert r.status_code == 405, (method, path, r.text)
            assert set(r.headers["allow"].split(", ")) == declared, (method, path)
            assert r.json()["error"]["code"] == "method_not_allowed"
            checked += 1
    assert checked >= 10


def test_openapi_states_the_cross_field_option_rules(api: Api) -> None:
    options = api.client.get("/openapi.json").json()["components"]["schemas"]["JobOptions"]
    assert "min_speakers <= max_speakers" in options["description"]
    assert options["x-cross-field-rules"] == [
        "min_speakers <= max_speakers",
        "min_speakers <= num_speakers <= max_speakers",
    ]
    for name in ("num_speakers", "min_speakers", "max_speakers"):
        assert "400" in options["properties"][name]["description"]
    # ... and the API answers as documented.
    r = api.upload(data={"min_speakers": "3", "max_speakers": "2"})
    assert r.status_code == 422 or r.status_code == 400


def test_eta_divides_the_work_ahead_by_worker_slots(make_api: ApiFactory) -> None:
    replicas = {"n": 1}
    api = make_api(
        serve={"jobs_per_replica": 2, "max_replicas": 5},
        state_overrides={"active_workers": lambda: replicas["n"]},
    )
    store = api.store
    first = store.submit("alice", "u://1", audio_duration_s=60.0)
    second = store.submit("bob", "u://2", audio_duration_s=60.0)
    speed = store.compute_per_audio_second()

    def eta_start(job_id: UUID) -> float:
        body = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("bob")).json()
        return float(body["eta_start_seconds"])

    assert first.id
    # One replica taking two jobs at once: 60 s of audio ahead, shared by 2 slots.
    assert eta_start(second.id) == pytest.approx(60 * speed / 2, abs=0.1)
    replicas["n"] = 3
    assert eta_start(second.id) == pytest.approx(60 * speed / 6, abs=0.1)
    replicas["n"] = 0  # scaled to zero: the first replica to start counts
    assert eta_start(second.id) == pytest.approx(60 * speed / 2, abs=0.1)


# ------------------------------------------------------------------ idempotent races
class LiveApi:
    """The API on a real uvicorn server on 127.0.0.1 (requests truly run concurrently)."""

    def __init__(self, tmp_path: Path) -> None:
        self.state = ApiState.create(make_settings(tmp_path))
        _, self.key = self.state.store.create_api_key("alice", 5)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            create_api(self.state), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.state.close()


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[LiveApi]:
    api = LiveApi(tmp_path)
    yield api
    api.close()


def _upload(api: LiveApi, key: str, content: bytes, formats: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{api.port}/v1/jobs",
        headers={"Authorization": f"Bearer {api.key}", "Idempotency-Key": key},
        files={"file": ("a.wav", content)},
        data={"formats": formats},
        timeout=30,
    )


@pytest.mark.slow
def test_racing_idempotent_retries_never_delete_the_winners_media(live_api: LiveApi) -> None:
    """Two retries with one Idempotency-Key at the same time (one of them with other
    options, so it is refused): the job that was created keeps its media."""
    content = wav_bytes(seconds=2.0)
    for round_ in range(12):
        key = f"race-{round_}"
        answers: dict[str, httpx.Response] = {}
        start = threading.Barrier(2)

        def send(
            formats: str,
            answers: dict[str, Any] = answers,
            key: str = key,
            start: threading.Barrier = start,
        ) -> None:
            start.wait()
            answers[formats] = _upload(live_api, key, content, formats)

        threads = [threading.Thread(target=send, args=(f,)) for f in ("srt", "vtt")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in answers.values())
        assert codes == [202, 409], {f: r.text for f, r in answers.items()}
        winner = next(r for r in answers.values() if r.status_code == 202)
        job = live_api.state.store.get(UUID(winner.json()["id"]))
        stored = job.source[len(UPLOAD_SCHEME) :]
        assert live_api.state.storage.get_bytes(stored) == content, f"round {round_}"
    # Every refused request removed its own copy: one object per job.
    media = Path(live_api.state.settings.media.storage_url)
    assert len([p for p in media.rglob("source")]) == 12
