"""The Serve policy shell, driven with Ray Serve's own AutoscalingContext (no cluster)."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from aisubs.autoscale import BacklogPoller
from serve_app.autoscaling import BacklogAutoscalingPolicy

serve_config = pytest.importorskip("ray.serve.config")
from ray.serve._private.autoscaling_state import _resolve_policy_callable  # noqa: E402
from ray.serve._private.common import DeploymentID  # noqa: E402
from ray.serve.autoscaling_policy import _apply_autoscaling_config  # noqa: E402
from ray.serve.config import (  # noqa: E402
    AutoscalingConfig,
    AutoscalingContext,
    AutoscalingPolicy,
)


def make_ctx(
    *,
    target: int,
    state: dict[str, Any] | None = None,
    requests: float = 0.0,
    min_r: int = 0,
    max_r: int = 5,
    config: AutoscalingConfig | None = None,
    now: float = 0.0,
) -> AutoscalingContext:
    return AutoscalingContext(
        deployment_id=DeploymentID(name="Transcriber", app_name="aisubs"),
        deployment_name="Transcriber",
        app_name="aisubs",
        current_num_replicas=target,
        target_num_replicas=target,
        running_replicas=[],
        total_num_requests=lambda: requests,
        total_queued_requests=0.0,
        aggregated_metrics={},
        raw_metrics={},
        capacity_adjusted_min_replicas=min_r,
        capacity_adjusted_max_replicas=max_r,
        policy_state=state or {},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=now,
        config=config or AutoscalingConfig(min_replicas=min_r, max_replicas=max_r),
    )


class FakeQueue:
    """A backlog source standing in for the job store; it can be made to block."""

    def __init__(self, queued: int = 0, running: int = 0) -> None:
        self.queued = queued
        self.running = running
        self.open = threading.Event()
        self.open.set()
        self.calls = 0

    def __call__(self) -> tuple[int, int]:
        self.open.wait(10)
        self.calls += 1
        return self.queued, self.running


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_policy(
    queue: FakeQueue, clock: Clock, **kwargs: Any
) -> tuple[BacklogAutoscalingPolicy, BacklogPoller]:
    poller = BacklogPoller(queue, interval_s=1.0, clock=clock)
    return BacklogAutoscalingPolicy(poller=poller, clock=clock, **kwargs), poller


def step(
    policy: BacklogAutoscalingPolicy, poller: BacklogPoller, target: int, state: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """One controller tick with the poll finished (as if enough time passed for it)."""
    policy(make_ctx(target=target, state=state))
    poller.wait_idle(5)
    return policy(make_ctx(target=target, state=state))


def test_scales_from_backlog_and_down_to_zero_after_the_delay() -> None:
    queue, clock = FakeQueue(queued=7), Clock()
    policy, poller = make_policy(queue, clock, jobs_per_replica=2, downscale_delay_s=60)
    decision, state = step(policy, poller, 0, {})
    assert decision == 4
    assert state["aisubs_backlog"] == [7, 0]

    queue.queued, queue.running = 0, 0
    clock.t += 2
    decision, state = step(policy, poller, 4, state)
    assert decision == 4  # backlog gone, but within the downscale delay
    clock.t += 61
    decision, state = step(policy, poller, 4, state)
    assert decision == 0


def test_never_blocks_on_a_slow_source_and_holds_until_first_reading() -> None:
    queue, clock = FakeQueue(queued=10), Clock()
    queue.open.clear()  # the "database" hangs
    policy, poller = make_policy(queue, clock)
    for _ in range(20):  # returns every time although the source is stuck
        decision, state = policy(make_ctx(target=2, state={}))
        assert decision == 2
        assert state["aisubs_backlog_stale"] is True
    assert queue.calls == 0
    queue.open.set()
    poller.wait_idle(5)
    decision, state = policy(make_ctx(target=2, state={}))
    assert decision == 5
    assert state["aisubs_backlog_stale"] is False


def test_stale_backlog_holds_current_size() -> None:
    queue, clock = FakeQueue(queued=0), Clock()
    policy, poller = make_policy(queue, clock, stale_after_s=30, downscale_delay_s=0)
    decision, state = step(policy, poller, 3, {})
    assert decision == 0
    queue.open.clear()  # polls now hang; the last reading ages
    clock.t += 31
    decision, state = policy(make_ctx(target=3, state=state))
    assert decision == 3
    assert state["aisubs_backlog_stale"] is True
    queue.open.set()
    poller.wait_idle(5)


def test_ongoing_requests_keep_one_replica() -> None:
    queue, clock = FakeQueue(), Clock()
    policy, poller = make_policy(queue, clock, downscale_delay_s=0)
    policy(make_ctx(target=1))
    poller.wait_idle(5)
    assert policy(make_ctx(target=1, requests=3.0))[0] == 1
    assert policy(make_ctx(target=1, requests=0.0))[0] == 0


def test_bounds_come_from_serve() -> None:
    queue, clock = FakeQueue(queued=100), Clock()
    policy, poller = make_policy(queue, clock)
    policy(make_ctx(target=0))
    poller.wait_idle(5)
    assert policy(make_ctx(target=0, min_r=1, max_r=3))[0] == 3
    queue.queued = 0
    clock.t += 5
    policy(make_ctx(target=1, min_r=1, max_r=3))
    poller.wait_idle(5)
    assert policy(make_ctx(target=1, min_r=1, max_r=3))[0] == 1


def test_resource_requests_follow_decisions_clamped_and_deduplicated() -> None:
    sent: list[list[dict[str, float]]] = []
    queue, clock = FakeQueue(queued=40), Clock()
    policy, poller = make_policy(
        queue,
        clock,
        downscale_delay_s=0,
        resource_request={
            "per_replica": {"GPU": 0.5, "CPU": 2},
            "node": {"GPU": 1, "CPU": 8},
            "max_nodes": 2,
        },
        request_resources=sent.append,
    )
    assert policy._requester is not None
    decision, state = step(policy, poller, 0, {})
    policy._requester.wait_idle(5)
    assert decision == 5
    # 5 replicas want 2.5 GPUs, but two L4 nodes hold only 4 half-GPU replicas.
    assert sent == [[{"GPU": 0.5, "CPU": 2.0}] * 4]
    policy(make_ctx(target=5, state=state))
    policy._requester.wait_idle(5)
    assert len(sent) == 1  # unchanged request is not sent again
    queue.queued = 0
    clock.t += 5
    decision, state = step(policy, poller, 5, state)
    policy._requester.wait_idle(5)
    assert decision == 0
    assert sent[-1] == []  # idle: the request is cleared so nodes can go


# ---------------------------------------------------------------- through Serve's own code
@pytest.fixture
def fake_source_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeQueue]:
    queue = FakeQueue(queued=5, running=1)
    module = types.ModuleType("aisubs_test_backlog")
    module.factory = lambda **kwargs: queue  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aisubs_test_backlog", module)
    yield queue


def test_policy_loads_and_runs_through_serve(fake_source_module: FakeQueue) -> None:
    """Serve pickles the policy by value, builds it from JSON kwargs and wraps it."""
    policy_cfg = AutoscalingPolicy(
        policy_function="serve_app.autoscaling:BacklogAutoscalingPolicy",
        policy_kwargs={
            "jobs_per_replica": 2,
            "downscale_delay_s": 300,
            "poll_interval_s": 0.01,
            "source": "aisubs_test_backlog:factory",
            "source_kwargs": {"settings": {"store": {"backend": "sqlite"}}},
        },
    )
    config = AutoscalingConfig(
        min_replicas=0,
        max_replicas=5,
        upscale_delay_s=0,
        downscale_delay_s=0,
        policy=policy_cfg,
    )
    instance = _resolve_policy_callable(config.policy)
    assert type(instance).__name__ == "BacklogAutoscalingPolicy"
    wrapped = _apply_autoscaling_config(instance)

    decision, state = wrapped(make_ctx(target=1, config=config))
    assert decision == 1  # no reading yet: hold
    instance._poller.wait_idle(5)
    decision, state = wrapped(make_ctx(target=1, state=state, config=config))
    assert decision == 3  # ceil((5 + 1) / 2)
    assert state["aisubs_backlog"] == [5, 1]


def test_store_backlog_source_reads_queue_stats(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter opens the store from plain settings data and reads stats()."""
    opened: list[Any] = []

    class Stats:
        queued, running = 4, 2

    class Store:
        def stats(self) -> Stats:
            return Stats()

    factory = types.ModuleType("aisubs.queue.factory")

    def open_store(settings: Any) -> Store:
        opened.append(settings)
        return Store()

    factory.open_store = open_store  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aisubs.queue.factory", factory)
    monkeypatch.setenv("AISUBS_STORE__POSTGRES_DSN", "postgresql://u@db.internal:5432/aisubs")

    from aisubs.autoscale import store_backlog_source

    source = store_backlog_source({"store": {"backend": "postgres"}})
    assert source() == (4, 2)
    assert source() == (4, 2)
    assert len(opened) == 1  # opened once, reused
    assert opened[0].store.backend == "postgres"
    assert opened[0].store.postgres_dsn == "postgresql://u@db.internal:5432/aisubs"  # from env


def test_store_backlog_source_on_a_real_sqlite_queue(tmp_path: Any) -> None:
    from aisubs.autoscale import store_backlog_source
    from aisubs.queue.factory import open_store
    from aisubs.settings import load_settings

    plain = {"store": {"backend": "sqlite", "sqlite_path": str(tmp_path / "q.sqlite3")}}
    store = open_store(load_settings(**plain))
    try:
        for i in range(3):
            store.submit(f"owner{i}", f"media/job{i}/source")
        assert len(store.claim("worker-1", limit=1)) == 1
        source = store_backlog_source(plain)
        assert source() == (2, 1)
    finally:
        store.close()
