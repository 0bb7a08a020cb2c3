"""Property-based contract test: schemathesis drives every operation from /openapi.json.

Generated requests (valid and invalid) must never get a 5xx, and every answer must match
what the schema documents: status code, content type, headers and body schema. The
operations are driven with hypothesis directly (schemathesis' pytest fixture loader does
not run under pytest 9), each test over its own temporary store.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from aisubs.media.storage import result_key
from serve_app.api import ApiState, create_api
from tests.api.api_support import wav_bytes
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES_PER_MODE = 25
ARTIFACTS = {
    "srt": "1\n00:00:00,000 --> 00:00:01,000\nHello\n\n",
    "vtt": "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello\n\n",
    "json": json.dumps({"language": "en", "segments": []}),
    "txt": "Hello\n",
}


class Target:
    """An app with one key and one succeeded job (so reads can also answer 200)."""

    def __init__(self, tmp_path: Path) -> None:
        self.state = ApiState.create(
            make_settings(
                tmp_path, media={"max_upload_bytes": 256 * 1024}, queue={"max_queued_per_owner": 30}
            )
        )
        store = self.state.store
        _, key = store.create_api_key("fuzzer", 10)
        self.headers = {"Authorization": f"Bearer {key}"}
        self.state.storage.put_bytes("media/seed/source", wav_bytes())
        job = store.submit("fuzzer", "upload://media/seed/source", {"formats": list(ARTIFACTS)})
        [claimed] = store.claim("fuzz-worker")
        refs = {}
        for fmt, text in ARTIFACTS.items():
            refs[fmt] = result_key(str(job.id), f"subtitles.{fmt}")
            self.state.storage.put_bytes(refs[fmt], text.encode())
        assert claimed.lease_token is not None
        store.complete(job.id, claimed.lease_token, refs, compute_seconds=1.0)
        self.job_id = str(job.id)
        self.app = create_api(self.state)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    t = Target(tmp_path)
    yield t
    t.state.close()


def _drive(strategy: Any, headers: dict[str, str]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_every_operation_honours_its_schema(target: Target) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.app)
    # The key is sent with every request; negating it would only test the override.
    schema.config.generation.update(with_security_parameters=False)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the schema itself must be valid
        operations.append(result.ok())
    assert len(operations) >= 9
    for operation in operations:
        _drive(operation.as_strategy(), target.headers)
        # Operations without parameters or body (e.g. /healthz) have nothing to negate.
        with contextlib.suppress(Unsatisfiable):
            _drive(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), target.headers)
        if operation.method.upper() == "POST":
            # A real upload, so the 202 answer is checked as well as the refusals.
            _drive(
                operation.as_strategy(
                    media_type="multipart/form-data", body={"file": wav_bytes(), "priority": 3}
                ),
                target.headers,
            )
        if "{job_id}" in operation.path and operation.method.upper() != "DELETE":
            # Also against a job that exists and succeeded, so 200 answers are checked.
            _drive(operation.as_strategy(path_parameters={"job_id": target.job_id}), target.headers)
