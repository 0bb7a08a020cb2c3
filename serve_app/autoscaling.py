"""Ray Serve autoscaling policy: size the GPU deployments from the durable queue's backlog.

Serve calls the policy on its controller's event loop about ten times a second, so the
policy must never block. The backlog (queued + running jobs) lives in the database; it is
read by a :class:`aisubs.autoscale.BacklogPoller` in a background thread (one per controller
process and source, shared by every deployment that scales from it) and the policy only reads
the last published value. The same pattern as Ray's ``AsyncInferenceAutoscalingPolicy``,
with a thread instead of an async task because the job store is synchronous.

Use it in a Serve config (policy_kwargs are plain JSON, as Serve requires)::

    autoscaling_config:
      min_replicas: 0
      max_replicas: 5
      upscale_delay_s: 0      # this policy scales up at once ...
      downscale_delay_s: 0    # ... and applies its own downscale stabilisation
      policy:
        policy_function: serve_app.autoscaling:BacklogAutoscalingPolicy
        policy_kwargs:
          jobs_per_replica: 2
          downscale_delay_s: 300
          source_kwargs: {settings: {store: {backend: postgres}}}

Bounds come from Serve (``capacity_adjusted_min/max_replicas``), so ``min_replicas`` and
``max_replicas`` are set in one place. When the backlog has not been read for
``stale_after_s`` (database down), the policy holds the current size rather than guess.

Optionally (``resource_request``) the policy also asks the Ray autoscaler for the nodes its
decision needs through ``ray.autoscaler.sdk.request_resources``, clamped to what
``max_nodes`` nodes can hold (an unsatisfiable request is dropped whole by the v2
autoscaler). Each call replaces the previous request, so enable it on ONE deployment and
size ``per_replica`` for everything a replica of the pipeline needs (transcriber plus
diarizer). The request is sent from a background thread, and only when it changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aisubs.autoscale import (
    BacklogPoller,
    ResourceBundle,
    clamp_resource_request,
    desired_replicas,
    replica_bundles,
    shared_poller,
)

if TYPE_CHECKING:
    from ray.serve.config import AutoscalingContext

logger = logging.getLogger("ray.serve")

DEFAULT_SOURCE = "aisubs.autoscale:store_backlog_source"
STATE_BACKLOG = "aisubs_backlog"
STATE_STALE = "aisubs_backlog_stale"


class BacklogAutoscalingPolicy:
    """Class-based Serve policy: Serve builds it once with ``policy_kwargs`` and calls it."""

    def __init__(
        self,
        jobs_per_replica: int = 2,
        downscale_delay_s: float = 300.0,
        poll_interval_s: float = 5.0,
        stale_after_s: float = 60.0,
        source: str = DEFAULT_SOURCE,
        source_kwargs: Mapping[str, Any] | None = None,
        resource_request: Mapping[str, Any] | None = None,
        *,
        poller: BacklogPoller | None = None,
        request_resources: Callable[[list[ResourceBundle]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``poller``, ``request_resources`` and ``clock`` are for tests; Serve passes only
        the JSON keyword arguments."""
        if jobs_per_replica < 1:
            raise ValueError("jobs_per_replica must be at least 1")
        self.jobs_per_replica = jobs_per_replica
        self.downscale_delay_s = downscale_delay_s
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._poller = poller or shared_poller(source, source_kwargs, interval_s=poll_interval_s)
        self._requester = (
            _ResourceRequester(resource_request, request_resources or _ray_request_resources)
            if resource_request
            else None
        )

    def __call__(self, ctx: AutoscalingContext) -> tuple[int, dict[str, Any]]:
        state = dict(ctx.policy_state or {})
        current = int(ctx.target_num_replicas)
        backlog = self._poller.latest()
        now = self._clock()
        if backlog is None or now - backlog.observed_at > self.stale_after_s:
            state[STATE_STALE] = True
            decision = current
        else:
            state[STATE_STALE] = False
            state[STATE_BACKLOG] = [backlog.queued, backlog.running]
            decision = desired_replicas(
                backlog.queued,
                backlog.running,
                self.jobs_per_replica,
                int(ctx.capacity_adjusted_min_replicas),
                int(ctx.capacity_adjusted_max_replicas),
                current,
                state=state,
                now=now,
                downscale_delay_s=self.downscale_delay_s,
            )
        # Requests already in flight to this deployment must keep at least one replica.
        if decision == 0 and _ongoing_requests(ctx) > 0:
            decision = 1
        if self._requester is not None and not state[STATE_STALE]:
            self._requester.update(decision)  # without a reading, leave the request as it is
        return decision, state


def _ongoing_requests(ctx: AutoscalingContext) -> float:
    try:
        return float(ctx.total_num_requests or 0.0)
    except Exception:  # metrics not available yet
        return 0.0


class _ResourceRequester:
    """Turns a replica count into a clamped ``request_resources`` call, sent off-thread."""

    def __init__(
        self,
        config: Mapping[str, Any],
        send: Callable[[list[ResourceBundle]], None],
    ) -> None:
        self.per_replica = {k: float(v) for k, v in config["per_replica"].items()}
        self.node = {k: float(v) for k, v in config["node"].items()}
        self.max_nodes = int(config["max_nodes"])
        self._send = send
        self._lock = threading.Lock()
        self._sent: list[ResourceBundle] | None = None
        self._pending: list[ResourceBundle] | None = None
        self._thread: threading.Thread | None = None

    def bundles_for(self, replicas: int) -> list[ResourceBundle]:
        return clamp_resource_request(
            replica_bundles(replicas, self.per_replica), self.node, self.max_nodes
        )

    def update(self, replicas: int) -> None:
        bundles = self.bundles_for(replicas)
        with self._lock:
            if bundles == self._sent or bundles == self._pending:
                return
            self._pending = bundles
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._flush, name="aisubs-request-resources", daemon=True
                )
                self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _flush(self) -> None:
        while True:
            with self._lock:
                bundles = self._pending
                if bundles is None:
                    return
            try:
                self._send(bundles)
            except Exception:
                logger.exception("request_resources failed; will retry on the next change")
                with self._lock:
                    self._pending = None
                    self._sent = None
                return
            with self._lock:
                self._sent = bundles
                if self._pending is bundles:
                    self._pending = None


def _ray_request_resources(bundles: list[ResourceBundle]) -> None:
    from ray.autoscaler.sdk import request_resources

    # An empty list clears the previous request so idle nodes can go.
    request_resources(bundles=bundles)
