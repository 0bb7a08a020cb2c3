"""``GET /metrics`` is cheap and safe: shared statistics, an optional bearer token, and a
scrape flood that never holds more than one store call at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aisubs.queue import open_store
from aisubs.queue.models import QueueStats
from aisubs.queue.store import JobStore
from serve_app.api import ApiState, create_api
from tests.support.settings import make_settings

TOKEN = "scrape-token-0123456789"


class CountingStore:
    """The real store, counting stats() calls and how many run at once."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def stats(self) -> QueueStats:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(0.05)  # a store under load
            return self._store.stats()
        finally:
            with self._lock:
                self.running -= 1


def _state(tmp_path: Path, **observability: Any) -> tuple[ApiState, CountingStore]:
    settings = make_settings(tmp_path, observability=observability)
    store = CountingStore(open_store(settings))
    store.submit("alice", "https://example.com/a.wav", priority=4)
    state = ApiState.create(settings, store=store)  # type: ignore[arg-type]
    return state, store


def test_a_scrape_flood_costs_one_store_call(tmp_path: Path) -> None:
    state, store = _state(tmp_path, metrics_cache_s=30)
    _, key = store.create_api_key("alice", 5)
    app = create_api(state)

    async def flood() -> tuple[list[int], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            scrapes = [client.get("/metrics") for _ in range(100)]
            read = client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})
            answers = await asyncio.gather(*scrapes, read)
        return [r.status_code for r in answers[:-1]], answers[-1].status_code

    codes, read = asyncio.run(flood())
    assert codes == [200] * 100 and read == 200
    assert store.calls == 1 and store.most_at_once == 1
    state.close()


def test_statistics_are_refreshed_after_the_cache_time(tmp_path: Path) -> None:
    state, store = _state(tmp_path, metrics_cache_s=2.0)
    app = create_api(state)

    async def scrape_twice() -> list[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = (await client.get("/metrics")).text
            store.submit("alice", "https://example.com/b.wav", priority=4)
            cached = (await client.get("/metrics")).text
            await asyncio.sleep(2.1)
            fresh = (await client.get("/metrics")).text
        return [first, cached, fresh]

    first, cached, fresh = asyncio.run(scrape_twice())
    depth = 'aisubs_queue_depth{priority="4"}'
    assert f"{depth} 1.0" in first and f"{depth} 1.0" in cached
    assert f"{depth} 2.0" in fresh
    assert store.calls == 2
    state.close()


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("Bearer wrong-token-xxxxxxxxxx", 401), (f"Bearer {TOKEN}", 200)],
)
def test_metrics_token(tmp_path: Path, header: str | None, status: int) -> None:
    state, _ = _state(tmp_path, metrics_token=TOKEN)
    app = create_api(state)

    async def scrape() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/metrics", headers={"Authorization": header} if header else {})

    r = asyncio.run(scrape())
    assert r.status_code == status
    if status == 401:
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    else:
        assert "aisubs_queue_depth" in r.text
    state.close()
