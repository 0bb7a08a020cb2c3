"""A synchronous client of a running AI-Subs service (its HTTP API, over httpx).

The end-to-end suites (tests/serve, tests/verification) build their ``Service`` objects on
:class:`ApiClient`; ``client`` is the underlying ``httpx.Client`` (base URL set, the
default key's ``Authorization`` header on every request) for requests of their own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

# States a job never leaves.
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
POLL_S = 0.3  # interval of wait()'s polls


class ApiClient:
    """Requests of one API key (``key``) to the service at ``base_url``; every call takes
    another ``key`` for that request only.

    ``timeout`` is httpx's per-request timeout; ``wait_timeout`` the default of
    :meth:`wait`.
    """

    def __init__(self, base_url: str, key: str, *, timeout: float = 30, wait_timeout: float = 180):
        self.base_url = base_url
        self.key = key
        self.wait_timeout = wait_timeout
        self.client = httpx.Client(base_url=base_url, headers=self.headers(), timeout=timeout)

    def headers(self, key: str | None = None) -> dict[str, str]:
        """The ``Authorization`` header of ``key`` (the default key when None)."""
        return {"Authorization": f"Bearer {key or self.key}"}

    def submit(self, path: Path, *, key: str | None = None, **fields: Any) -> dict[str, Any]:
        """Upload the file at ``path`` (form ``fields`` as strings); must be accepted (202)."""
        with path.open("rb") as f:
            r = self.client.post(
                "/v1/jobs",
                files={"file": (path.name, f)},
                data={k: str(v) for k, v in fields.items()},
                headers=self.headers(key),
            )
        assert r.status_code == 202, r.text
        return dict(r.json())

    def upload(
        self, name: str, content: bytes, key: str | None = None, **fields: Any
    ) -> httpx.Response:
        """Upload ``content`` as a file called ``name``; the answer, whatever it is."""
        return self.client.post(
            "/v1/jobs",
            files={"file": (name, content)},
            data={k: str(v) for k, v in fields.items()},
            headers=self.headers(key),
        )

    def submit_url(self, url: str, **options: Any) -> httpx.Response:
        """Submit a job fetching ``url`` with job ``options``; the answer, whatever it is."""
        return self.client.post("/v1/jobs", json={"url": url, "options": options})

    def job(self, job_id: str, key: str | None = None) -> dict[str, Any]:
        """The job as its owner reads it (must answer 200)."""
        r = self.client.get(f"/v1/jobs/{job_id}", headers=self.headers(key))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(
        self, job_id: str, timeout: float | None = None, key: str | None = None
    ) -> dict[str, Any]:
        """Poll the job until it is terminal; AssertionError after ``timeout`` seconds
        (``wait_timeout`` when None)."""
        timeout = self.wait_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id, key)
            if job["state"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")
            time.sleep(POLL_S)
