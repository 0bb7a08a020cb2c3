"""Queue statistics shared by every scrape for a few seconds, fetched by one call at a time.

``GET /metrics`` reads the job store, and Prometheus servers, dashboards and curious users
may all scrape at once. Each scrape holding a store connection (and a thread) would starve
the API of both, so the statistics are cached for ``ttl_s`` and refreshed by a single
in-flight call that every waiting scrape shares. A failure is remembered for a short while
too, so a down store is not hammered by a scrape flood either.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# How long a failed refresh is remembered before the next scrape tries again.
FAILURE_TTL_S = 1.0


class SharedRefresh(Generic[T]):
    """An async cache of one value produced by a blocking ``fetch`` (run in a thread)."""

    def __init__(
        self, fetch: Callable[[], T], ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fetch = fetch
        self.ttl_s = ttl_s
        self.clock = clock
        self.fetches = 0  # how many times the store was asked (for tests and diagnostics)
        self._value: T | None = None
        self._error: BaseException | None = None
        self._until = 0.0
        self._inflight: asyncio.Future[T] | None = None

    async def get(self) -> T:
        """The cached value, or the shared refresh's result; raises the fetch's error."""
        if self.clock() < self._until:
            if self._error is not None:
                raise self._error
            assert self._value is not None
            return self._value
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._inflight)

    async def _refresh(self) -> T:
        self.fetches += 1
        try:
            value = await asyncio.to_thread(self.fetch)
        except Exception as exc:
            self._value, self._error = None, exc
            self._until = self.clock() + min(self.ttl_s, FAILURE_TTL_S)
            raise
        self._value, self._error = value, None
        self._until = self.clock() + self.ttl_s
        return value
