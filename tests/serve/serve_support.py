"""Helpers for the Ray end-to-end tests (a client for the running service)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


class Service:
    def __init__(self, base_url: str, settings: dict[str, Any], key: str, other_key: str):
        self.base_url = base_url
        self.settings = settings
        self.key = key
        self.other_key = other_key
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def submit(self, path: Path, *, key: str | None = None, **fields: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else None
        with path.open("rb") as f:
            r = self.client.post(
                "/v1/jobs",
                files={"file": (path.name, f)},
                data={k: str(v) for k, v in fields.items()},
                headers=headers,
            )
        assert r.status_code == 202, r.text
        return dict(r.json())

    def job(self, job_id: str, key: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else None
        r = self.client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(self, job_id: str, timeout: float = 180, key: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id, key)
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")
            time.sleep(0.3)
