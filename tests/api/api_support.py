"""Helpers shared by the API tests: small media and a client wrapper (settings over
``tmp_path`` come from tests.support.settings)."""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from aisubs.queue.store import JobStore
from serve_app.api import ApiState


def wav_bytes(seconds: float = 0.5, rate: int = 16_000) -> bytes:
    """A small valid mono 16-bit WAV (a 440 Hz tone) built with the standard library."""
    frames = int(seconds * rate)
    samples = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(frames)
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    return buf.getvalue()


def stored_files(root: Path) -> list[Path]:
    """Every file under a storage root (temporary ``.part`` files included)."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@dataclass
class Api:
    """A running API for one test: client, state, and one key per owner."""

    client: TestClient
    state: ApiState
    tmp_path: Path
    keys: dict[str, str]

    @property
    def store(self) -> JobStore:
        return self.state.store

    def auth(self, owner: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[owner]}"}

    def media_files(self) -> list[Path]:
        return stored_files(self.tmp_path / "media")

    def upload(
        self,
        content: bytes | None = None,
        *,
        owner: str = "alice",
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        filename: str = "audio.wav",
    ) -> Any:
        body = wav_bytes() if content is None else content
        return self.client.post(
            "/v1/jobs",
            headers={**self.auth(owner), **(headers or {})},
            files={"file": (filename, body, "application/octet-stream")},
            data=data or {},
        )

    def submit_url(
        self, url: str, *, owner: str = "alice", headers: dict[str, str] | None = None, **body: Any
    ) -> Any:
        return self.client.post(
            "/v1/jobs", headers={**self.auth(owner), **(headers or {})}, json={"url": url, **body}
        )


ApiFactory = Callable[..., Api]
