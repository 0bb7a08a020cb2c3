"""HTTP API v1 as a plain FastAPI application (no Ray needed to build or test it).

The Ray Serve ingress builds an :class:`ApiState` in its constructor and hands it to
:func:`create_api`; tests do the same over a temporary SQLite store. Nothing is created at
import time: no app object, no store, no storage.

Where media goes: an upload is streamed into the media storage under
``media/<upload id>/source`` and the job's ``source`` is ``upload://<that key>`` (the job
runner opens it with the same :class:`~aisubs.media.storage.Storage`). A URL job keeps its
URL as ``source``; the runner downloads it. Results are read back from the storage keys the
runner records in ``job.result`` (``{"srt": "results/<job id>/subtitles.srt", ...}``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI

from aisubs.errors import StoreUnavailable
from aisubs.media.storage import Storage
from aisubs.observability.stats_cache import SharedRefresh
from aisubs.queue.models import QueueStats
from aisubs.queue.store import JobStore
from aisubs.settings import Settings

log = logging.getLogger(__name__)

API_TITLE = "AI-Subs"
API_VERSION = "1.0.0"


def _no_workers() -> int:
    return 0


def _no_replicas() -> Mapping[str, Mapping[str, int]]:
    return {}


def _models_able_to_start() -> dict[str, Any]:
    return {"status": "able_to_start", "detail": "models load when a worker replica starts"}


@dataclass
class ApiState:
    """Everything the routes need, built once per ingress replica.

    ``open_store`` is kept so that a store that could not be reached at start-up (database
    down) is opened on first use instead of failing the replica: ``/readyz`` then answers
    503 and job routes 503 with ``Retry-After`` until the database is back.
    """

    settings: Settings
    storage: Storage
    open_store: Callable[[], JobStore]
    # Live Transcriber replica count (for ETAs and /v1/queue/status).
    active_workers: Callable[[], int] = _no_workers
    # Model status for /readyz, shown as is. Not ready when it holds "status": "unavailable"
    # or a per-deployment entry with "can_start": False.
    models_ready: Callable[[], Mapping[str, Any]] = _models_able_to_start
    gpu_visible: bool = False
    # Model replicas per deployment, {"Transcriber": {"running": n, "pending": n}, ...},
    # for GET /metrics.
    replica_counts: Callable[[], Mapping[str, Mapping[str, int]]] = _no_replicas
    # After a failed connection attempt, answer StoreUnavailable for this long without
    # trying again (so a dead database is not hammered by every request).
    store_retry_s: float = 2.0
    # /metrics: statistics and replica counts shared by every scrape for a few seconds.
    queue_stats: SharedRefresh[QueueStats] = field(init=False, repr=False)
    replica_snapshot: SharedRefresh[Mapping[str, Mapping[str, int]]] = field(init=False, repr=False)
    _store: JobStore | None = field(default=None, init=False, repr=False)
    _store_failed_at: float | None = field(default=None, init=False, repr=False)
    _store_error: str = field(default="", init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        ttl = self.settings.observability.metrics_cache_s
        self.queue_stats = SharedRefresh(lambda: self.store.stats(), ttl)
        self.replica_snapshot = SharedRefresh(lambda: self.replica_counts(), ttl)

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        store: JobStore | None = None,
        storage: Storage | None = None,
        **overrides: Any,
    ) -> ApiState:
        """Open the job store (or take ``store``) and the media/results storage.

        ``overrides`` set the other fields (``active_workers``, ``models_ready``,
        ``gpu_visible``, ``store_retry_s``). An unreachable store is logged, not raised.
        """
        from aisubs.queue import open_store

        state = cls(
            settings=settings,
            storage=storage or Storage.from_settings(settings.media),
            open_store=lambda: open_store(settings),
            **overrides,
        )
        if store is not None:
            state._store = store
        else:
            try:
                state.store  # noqa: B018 - connect now so the first request is fast
            except StoreUnavailable as exc:
                log.warning("job store unreachable at start-up (will retry): %s", exc)
        return state

    @property
    def store(self) -> JobStore:
        """The job store, opened on first use; :class:`StoreUnavailable` while unreachable."""
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is not None:
                return self._store
            failed_at = self._store_failed_at
            if failed_at is not None and time.monotonic() - failed_at < self.store_retry_s:
                raise StoreUnavailable(self._store_error or "the job store is unavailable")
            try:
                self._store = self.open_store()
            except StoreUnavailable as exc:
                self._store_failed_at = time.monotonic()
                self._store_error = str(exc)
                raise
            self._store_failed_at = None
            return self._store

    def close(self) -> None:
        """Release the store's connections (the ingress calls this on shutdown)."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # shutdown must go on; the process is ending anyway
                log.warning("closing the job store failed", exc_info=True)


def create_api(state: ApiState) -> FastAPI:
    """Build the FastAPI application over ``state`` (routes, error handlers, OpenAPI)."""
    from serve_app.http_errors import install_error_handlers
    from serve_app.routes import health, jobs, metrics, queue
    from serve_app.routes.strict_query import reject_unknown_query_params
    from serve_app.routes.uploads import install_submit_openapi

    app = FastAPI(
        dependencies=[Depends(reject_unknown_query_params)],
        title=API_TITLE,
        version=API_VERSION,
        description=(
            "Subtitles from speech: submit media (upload or URL), follow the job through "
            "the durable queue, download SRT, WebVTT, JSON or plain text. Authenticate with "
            '`Authorization: Bearer <API key>`. Errors are `{"error": {"code", '
            '"message"}}`.'
        ),
    )
    app.state.api = state
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(queue.router)
    if state.settings.observability.metrics_route:
        app.include_router(metrics.router)
    install_submit_openapi(app)
    return app
