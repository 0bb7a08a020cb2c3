"""Backlog -> replicas decisions, stabilisation with an injected clock, request clamping."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisubs.autoscale import (
    Backlog,
    BacklogPoller,
    clamp_resource_request,
    desired_replicas,
    import_object,
    replica_bundles,
    replicas_for_backlog,
    shared_poller,
)


@pytest.mark.parametrize(
    ("queued", "running", "expected"),
    [(0, 0, 0), (1, 0, 1), (2, 0, 1), (3, 0, 2), (2, 2, 2), (9, 0, 5), (100, 10, 5)],
)
def test_replicas_for_backlog(queued: int, running: int, expected: int) -> None:
    assert replicas_for_backlog(queued, running, 2, 0, 5) == expected


def test_replicas_for_backlog_respects_min_and_rejects_bad_bounds() -> None:
    assert replicas_for_backlog(0, 0, 2, 1, 5) == 1
    with pytest.raises(ValueError):
        replicas_for_backlog(1, 0, 0, 0, 5)
    with pytest.raises(ValueError):
        replicas_for_backlog(1, 0, 2, 6, 5)


class Scaler:
    """Drives desired_replicas like Serve does: the decision becomes the next ``current``."""

    def __init__(self, delay: float = 300.0, min_r: int = 0, max_r: int = 5) -> None:
        self.state: dict[str, Any] = {}
        self.current = 0
        self.delay = delay
        self.min_r = min_r
        self.max_r = max_r

    def tick(self, now: float, queued: int, running: int = 0) -> int:
        self.current = desired_replicas(
            queued,
            running,
            2,
            self.min_r,
            self.max_r,
            self.current,
            state=self.state,
            now=now,
            downscale_delay_s=self.delay,
        )
        return self.current


def test_scale_up_is_immediate() -> None:
    s = Scaler()
    assert s.tick(0, queued=1) == 1
    assert s.tick(1, queued=7) == 4
    assert s.tick(2, queued=50) == 5


def test_scale_down_waits_for_a_quiet_window_then_goes_to_zero() -> None:
    s = Scaler(delay=300)
    assert s.tick(0, queued=8) == 4
    # Backlog drops: replicas stay for the whole delay...
    assert s.tick(10, queued=0, running=2) == 4
    assert s.tick(200, queued=0, running=2) == 4
    assert s.tick(309, queued=0, running=2) == 4
    # ...and go once the higher recommendation is older than the delay.
    assert s.tick(311, queued=0, running=2) == 1
    # Idle from t=400: down to zero only after another full delay of nothing.
    assert s.tick(400, queued=0) == 1
    assert s.tick(699, queued=0) == 1
    assert s.tick(701, queued=0) == 0


def test_a_short_lull_between_bursts_keeps_replicas() -> None:
    s = Scaler(delay=60)
    assert s.tick(0, queued=10) == 5
    for t in range(1, 50):
        assert s.tick(t, queued=0) == 5
    assert s.tick(50, queued=6) == 5  # a smaller burst (wants 3) inside the window
    assert s.tick(55, queued=0) == 5  # 5 was wanted until t=1: kept until t=61
    assert s.tick(62, queued=0) == 3  # then the highest left is the burst's 3 (until t=55)
    assert s.tick(114, queued=0) == 3
    assert s.tick(116, queued=0) == 0


def test_step_down_follows_the_highest_recent_recommendation() -> None:
    s = Scaler(delay=100)
    assert s.tick(0, queued=10) == 5
    assert s.tick(10, queued=4) == 5  # wants 2
    assert s.tick(20, queued=6) == 5  # wants 3
    assert s.tick(30, queued=2) == 5  # wants 1
    # 5 held until t=10, so at t=110 the highest recommendation left is 3 (held until t=30)
    assert s.tick(111, queued=2) == 3
    assert s.tick(131, queued=2) == 1


def test_restart_without_state_does_not_scale_down_at_once() -> None:
    state: dict[str, Any] = {}
    got = desired_replicas(0, 0, 2, 0, 5, 4, state=state, now=1000.0, downscale_delay_s=60)
    assert got == 4
    got = desired_replicas(0, 0, 2, 0, 5, 4, state=state, now=1061.0, downscale_delay_s=60)
    assert got == 0


def test_state_is_replaced_not_mutated() -> None:
    state: dict[str, Any] = {}
    desired_replicas(10, 0, 2, 0, 5, 0, state=state, now=0.0)
    snapshot = dict(state)  # what Serve keeps: a shallow copy
    frozen = [list(e) for e in snapshot["aisubs_backlog_window"]]
    desired_replicas(0, 0, 2, 0, 5, 5, state=state, now=1.0)
    assert snapshot["aisubs_backlog_window"] == frozen


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 10), st.floats(0.1, 100.0)),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 2),
    st.integers(2, 8),
)
def test_properties(steps: list[tuple[int, int, float]], min_r: int, max_r: int) -> None:
    """Always within bounds, never below the present need, never above need unless recent."""
    s = Scaler(delay=120, min_r=min_r, max_r=max_r)
    now = 0.0
    history: list[tuple[float, int]] = []
    for queued, running, dt in steps:
        now += dt
        before = s.current
        got = s.tick(now, queued, running)
        need = replicas_for_backlog(queued, running, 2, min_r, max_r)
        history.append((now, need))
        assert min_r <= got <= max_r
        assert got >= need
        if got > need:
            # Only kept because it is not more than what was there, nor what was needed lately.
            assert got <= max(before, need)
        if got < before:
            # Scaling down: nothing recommended in the last 120 s was above the result.
            later = [n for t, n in history if t > now - 120]
            assert all(n <= got for n in later)


# ---------------------------------------------------------------- clamping
GPU_NODE = {"CPU": 8.0, "GPU": 1.0, "memory": 32e9}


def test_clamp_keeps_what_fits_on_max_nodes() -> None:
    per_replica = {"GPU": 0.5, "CPU": 2.0}
    bundles = replica_bundles(20, per_replica)
    clamped = clamp_resource_request(bundles, GPU_NODE, max_nodes=5)
    assert len(clamped) == 10  # two half-GPU replicas per L4 node, five nodes
    assert clamped == replica_bundles(10, per_replica)


def test_clamp_passes_a_request_that_fits_unchanged() -> None:
    bundles = replica_bundles(3, {"GPU": 0.25, "CPU": 1})
    assert clamp_resource_request(bundles, GPU_NODE, max_nodes=1) == bundles


def test_clamp_drops_impossible_bundles() -> None:
    assert clamp_resource_request([{"GPU": 2.0}], GPU_NODE, max_nodes=5) == []
    assert clamp_resource_request([{"TPU": 1.0}], GPU_NODE, max_nodes=5) == []
    assert clamp_resource_request(replica_bundles(4, {"GPU": 0.5}), GPU_NODE, max_nodes=0) == []
    assert clamp_resource_request([], GPU_NODE, max_nodes=5) == []


def test_clamp_packs_first_fit_across_nodes() -> None:
    bundles = [{"GPU": 0.75}, {"GPU": 0.5}, {"GPU": 0.25}, {"GPU": 0.5}]
    # node1: 0.75 + 0.25; node2: 0.5 + 0.5
    assert clamp_resource_request(bundles, GPU_NODE, max_nodes=2) == bundles
    assert clamp_resource_request(bundles, GPU_NODE, max_nodes=1) == [{"GPU": 0.75}]


# ---------------------------------------------------------------- polling
class GatedSource:
    """A blocking source the test releases by hand."""

    def __init__(self, values: list[tuple[int, int]]) -> None:
        self.values = values
        self.calls = 0
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __call__(self) -> tuple[int, int]:
        self.entered.set()
        self.gate.wait(5)
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        if value == (-1, -1):
            raise ConnectionError("database down")
        return value


def test_poller_never_blocks_and_publishes_when_done() -> None:
    clock = [0.0]
    source = GatedSource([(3, 1), (0, 0)])
    poller = BacklogPoller(source, interval_s=5.0, clock=lambda: clock[0])
    assert poller.latest() is None  # starts a read, returns at once though the source blocks
    assert source.entered.wait(5)
    assert poller.latest() is None  # read still in flight: no second one
    source.gate.set()
    poller.wait_idle(5)
    assert poller.latest() == Backlog(queued=3, running=1, observed_at=0.0)
    assert source.calls == 1
    clock[0] = 4.0
    poller.latest()  # not due yet
    poller.wait_idle(5)
    assert source.calls == 1
    clock[0] = 5.0
    poller.latest()
    poller.wait_idle(5)
    assert poller.latest() == Backlog(queued=0, running=0, observed_at=5.0)


def test_poller_keeps_last_value_when_source_fails() -> None:
    clock = [0.0]
    source = GatedSource([(2, 2), (-1, -1)])
    source.gate.set()
    poller = BacklogPoller(source, interval_s=1.0, clock=lambda: clock[0])
    poller.latest()
    poller.wait_idle(5)
    clock[0] = 2.0
    poller.latest()
    poller.wait_idle(5)
    assert poller.errors == 1
    assert poller.latest() == Backlog(queued=2, running=2, observed_at=0.0)


def test_shared_poller_is_one_per_source_and_builds_lazily(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    built: list[dict[str, Any]] = []
    module = types.ModuleType("fake_backlog_sources")

    def factory(**kwargs: Any) -> Any:
        built.append(kwargs)
        return lambda: (kwargs["queued"], 0)

    module.factory = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_backlog_sources", module)

    a = shared_poller("fake_backlog_sources:factory", {"queued": 7}, interval_s=0.01)
    b = shared_poller("fake_backlog_sources:factory", {"queued": 7}, interval_s=0.01)
    c = shared_poller("fake_backlog_sources:factory", {"queued": 8}, interval_s=0.01)
    assert a is b and a is not c
    assert built == []  # nothing built until the first poll
    a.latest()
    a.wait_idle(5)
    reading = a.latest()
    assert reading is not None and reading.queued == 7
    assert built == [{"queued": 7}]


def test_import_object() -> None:
    assert import_object("aisubs.autoscale:desired_replicas") is desired_replicas
    with pytest.raises(ValueError):
        import_object("aisubs.autoscale.desired_replicas")
