"""Schemathesis against the running Ray Serve ingress, over real HTTP.

tests/api/test_openapi_fuzz.py fuzzes the FastAPI app in-process; this drives the same
contract through Serve's HTTP proxy, the deployed ingress replica and its real store, with
a bounded number of examples per operation: no 5xx, and every answer matches the schema
(status code, content type, headers, body).
"""

from __future__ import annotations

import contextlib
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

from tests.support.paths import JFK
from tests.verification.verify_support import Service

pytestmark = [pytest.mark.slow, pytest.mark.ray]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = 6


def _drive(strategy: Any, base_url: str, headers: dict[str, str]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=60)

    run()


def test_running_ingress_honours_its_openapi_schema(verify_app: Service) -> None:
    svc = verify_app
    r = svc.upload(JFK.name, JFK.read_bytes(), diarize="false")
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert svc.wait(job_id)["state"] == "succeeded"  # so reads of it answer 200 too
    schema = schemathesis.openapi.from_url(f"{svc.base_url}/openapi.json")
    schema.config.generation.update(with_security_parameters=False)
    headers = svc.headers()
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 9
    for operation in operations:
        _drive(operation.as_strategy(), svc.base_url, headers)
        with contextlib.suppress(Unsatisfiable):
            _drive(
                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
                svc.base_url,
                headers,
            )
        if "{job_id}" in operation.path and operation.method.upper() != "DELETE":
            _drive(operation.as_strategy(path_parameters={"job_id": job_id}), svc.base_url, headers)
