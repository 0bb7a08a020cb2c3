"""How many GPU replicas the durable queue's backlog calls for (no Ray in here).

The Serve autoscaling policy in :mod:`serve_app.autoscaling` is a thin shell around these
pieces, so the decisions can be tested with plain numbers and an injected clock:

* :func:`desired_replicas` turns queued + running jobs into a replica count with
  *stabilisation*: it scales up at once (users are waiting) but scales down only to the
  highest count the backlog called for during the last ``downscale_delay_s`` seconds (a
  short lull between bursts must not tear down warm models), and idles down to
  ``min_replicas`` (zero by default) the same way.
* :class:`BacklogPoller` reads the backlog from a blocking source (the job store) in a
  background thread, so the Serve controller's event loop never waits on the database; the
  policy only ever reads the last published value.
* :func:`clamp_resource_request` trims a ``ray.autoscaler.sdk.request_resources`` request to
  what the cluster can actually reach: the v2 autoscaler drops an unsatisfiable request
  *whole*, so asking for too much would get us nothing at all.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

ResourceBundle = dict[str, float]

# Key of the stabilisation window inside the policy state dict.
_WINDOW_KEY = "aisubs_backlog_window"


@dataclass(frozen=True)
class Backlog:
    """Jobs waiting and jobs being worked on, as measured at ``observed_at`` (clock seconds)."""

    queued: int
    running: int
    observed_at: float

    @property
    def total(self) -> int:
        return self.queued + self.running


def replicas_for_backlog(
    queued: int, running: int, jobs_per_replica: int, min_replicas: int, max_replicas: int
) -> int:
    """Replicas needed so each serves at most ``jobs_per_replica`` jobs, within the bounds."""
    if jobs_per_replica < 1:
        raise ValueError("jobs_per_replica must be at least 1")
    if min_replicas > max_replicas:
        raise ValueError(f"min_replicas {min_replicas} > max_replicas {max_replicas}")
    needed = math.ceil(max(0, queued + running) / jobs_per_replica)
    return max(min_replicas, min(max_replicas, needed))


def desired_replicas(
    queued: int,
    running: int,
    jobs_per_replica: int,
    min_replicas: int,
    max_replicas: int,
    current: int,
    *,
    state: dict[str, Any],
    now: float,
    downscale_delay_s: float = 300.0,
) -> int:
    """Replica count for this backlog, scaling up at once and down only after a delay.

    ``current`` is the count the deployment is aiming at now. ``state`` is a dict owned by
    the caller and passed back on every call (Serve's ``policy_state``); it holds the
    recommendations of the last ``downscale_delay_s`` seconds as JSON-friendly lists and is
    replaced, never mutated in place, so a shallow copy of an older state stays valid.
    ``now`` is the caller's clock in seconds (monotonic or wall, but always the same one).

    The result is the highest recommendation still in the window, never above ``current``
    when scaling down, and never below the current recommendation. So after a burst the
    deployment keeps its replicas until the backlog has stayed low for the whole delay.
    """
    target = replicas_for_backlog(queued, running, jobs_per_replica, min_replicas, max_replicas)
    # Without history (first call, restarted controller) count the present size as just
    # recommended, so a restart never tears replicas down before the delay.
    previous = state.get(_WINDOW_KEY) or [[now, float(current), None]]
    window = _update_window(previous, target, now, downscale_delay_s)
    state[_WINDOW_KEY] = window
    if target >= current:
        return target
    highest_recent = int(window[0][1] or 0)
    return max(target, min(current, highest_recent))


def _update_window(
    window: Sequence[Sequence[float | None]], target: int, now: float, delay_s: float
) -> list[list[float | None]]:
    """A monotone window of recommendations: entries ``[since, replicas, until]``.

    Replica counts strictly decrease from front to back, so the front is the highest value
    seen recently. ``until`` is when that value was first followed by a lower one (``None``
    while it still holds); an entry leaves the window ``delay_s`` after its ``until``.
    """
    entries = [list(e) for e in window]
    # A newer, at-least-as-high recommendation makes older lower-or-equal ones irrelevant.
    while entries and float(entries[-1][1] or 0) <= target:
        entries.pop()
    if entries and entries[-1][2] is None:
        entries[-1][2] = now  # the previous (higher) value stopped holding now
    entries.append([now, float(target), None])
    horizon = now - delay_s
    while len(entries) > 1 and entries[0][2] is not None and float(entries[0][2]) <= horizon:
        entries.pop(0)
    return entries


# ---------------------------------------------------------------- resource requests
def clamp_resource_request(
    bundles: Sequence[Mapping[str, float]],
    node_resources: Mapping[str, float],
    max_nodes: int,
) -> list[ResourceBundle]:
    """The longest prefix of ``bundles`` that fits on ``max_nodes`` nodes of one type.

    ``request_resources`` replaces the previous request and the v2 autoscaler ignores a
    request it cannot satisfy as a whole, so we pack bundles first-fit onto at most
    ``max_nodes`` nodes with ``node_resources`` each and stop at the first that does not fit.
    A bundle asking for a resource the node type lacks can never fit and ends the request.
    """
    nodes: list[dict[str, float]] = []
    accepted: list[ResourceBundle] = []
    for bundle in bundles:
        wanted = {k: float(v) for k, v in bundle.items() if v > 0}
        if not _fits(wanted, node_resources):
            break
        for free in nodes:
            if _fits(wanted, free):
                break
        else:
            if len(nodes) >= max_nodes:
                break
            free = {k: float(v) for k, v in node_resources.items()}
            nodes.append(free)
        for k, v in wanted.items():
            free[k] -= v
        accepted.append(wanted)
    return accepted


def replica_bundles(replicas: int, per_replica: Mapping[str, float]) -> list[ResourceBundle]:
    """One resource bundle per replica (what ``request_resources(bundles=...)`` takes)."""
    return [{k: float(v) for k, v in per_replica.items()} for _ in range(max(0, replicas))]


def _fits(wanted: Mapping[str, float], free: Mapping[str, float]) -> bool:
    eps = 1e-9
    return all(free.get(k, 0.0) + eps >= v for k, v in wanted.items())


# ---------------------------------------------------------------- backlog polling
class BacklogSource(Protocol):
    """Anything that can be asked for the current (queued, running) job counts; may block."""

    def __call__(self) -> tuple[int, int]: ...


class BacklogPoller:
    """Reads a blocking :class:`BacklogSource` off the caller's thread.

    :meth:`latest` never blocks: when the last reading is older than ``interval_s`` and no
    read is in flight, it starts one in a short-lived daemon thread and returns the value it
    already has. A failing or hanging source therefore only makes the value stale; callers
    check :attr:`Backlog.observed_at` and decide what stale means to them.
    """

    def __init__(
        self,
        source: BacklogSource,
        *,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: Backlog | None = None
        self._started_at: float | None = None  # start time of the read in flight, if any
        self._last_start = -math.inf
        self._thread: threading.Thread | None = None
        self.errors = 0
        self._failing = False

    def latest(self) -> Backlog | None:
        """The newest reading (``None`` before the first succeeds); may start a new read."""
        now = self._clock()
        with self._lock:
            due = now - self._last_start >= self._interval_s
            if due and self._started_at is None:
                self._started_at = self._last_start = now
                self._thread = threading.Thread(
                    target=self._read, name="aisubs-backlog-poll", daemon=True
                )
                self._thread.start()
            return self._latest

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for the read in flight to finish (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _read(self) -> None:
        try:
            queued, running = self._source()
            reading: Backlog | None = Backlog(
                queued=int(queued), running=int(running), observed_at=self._clock()
            )
        except Exception as exc:
            # Full traceback for the first failure of a run, one line for the repeats.
            if self._failing:
                logger.warning("reading the job backlog still fails: %s", exc)
            else:
                logger.exception("reading the job backlog failed; keeping the previous value")
            reading = None
        with self._lock:
            self._started_at = None
            self._failing = reading is None
            if reading is not None:
                self._latest = reading
            else:
                self.errors += 1


_SHARED_POLLERS: dict[str, BacklogPoller] = {}
_SHARED_LOCK = threading.Lock()


def shared_poller(
    source_path: str, source_kwargs: Mapping[str, Any] | None, *, interval_s: float
) -> BacklogPoller:
    """One poller per (source, arguments, interval) in this process.

    Several deployments (transcriber, diarizer) scale from the same queue: they share one
    poller, so the database sees one cheap query per interval however many policies ask.
    ``source_path`` is ``"module:factory"``; ``factory(**source_kwargs)`` builds the source
    lazily, on first use, inside the process that polls (the Serve controller).
    """
    key = json.dumps([source_path, dict(source_kwargs or {}), interval_s], sort_keys=True)
    with _SHARED_LOCK:
        poller = _SHARED_POLLERS.get(key)
        if poller is None:
            poller = BacklogPoller(
                _LazySource(source_path, dict(source_kwargs or {})), interval_s=interval_s
            )
            _SHARED_POLLERS[key] = poller
        return poller


class _LazySource:
    """Imports and builds the real source on the poll thread, the first time it is read."""

    def __init__(self, path: str, kwargs: dict[str, Any]) -> None:
        self._path = path
        self._kwargs = kwargs
        self._source: BacklogSource | None = None

    def __call__(self) -> tuple[int, int]:
        if self._source is None:
            self._source = import_object(self._path)(**self._kwargs)
        return self._source()


def import_object(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute (how plain-data config names code)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'module:attribute', got {path!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def store_backlog_source(settings: Mapping[str, Any] | None = None) -> BacklogSource:
    """A backlog source reading the durable queue named by ``settings`` (plain data).

    ``settings`` is a partial :class:`aisubs.settings.Settings` as a dict (e.g.
    ``{"store": {"backend": "postgres"}}``); anything it leaves out comes from the
    environment of the process that polls (``AISUBS_STORE__POSTGRES_DSN`` on the head
    node), which keeps secrets out of the Serve config. The store is opened once and reused.
    """
    from aisubs.queue.factory import open_store
    from aisubs.settings import load_settings

    store = open_store(load_settings(**dict(settings or {})))

    def read() -> tuple[int, int]:
        stats = store.stats()
        return stats.queued, stats.running

    return read
