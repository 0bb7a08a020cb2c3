"""Bits every deployment shares: device facts and the audio hand-off."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def gpu_facts() -> dict[str, Any]:
    """Whether this process sees a real GPU, and how much memory it holds on it."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return {"gpu_visible": False}
    if not torch.cuda.is_available():
        return {
            "gpu_visible": False,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
    free, total = torch.cuda.mem_get_info()
    return {
        "gpu_visible": True,
        "gpu_name": torch.cuda.get_device_name(),
        "torch_allocated_mb": torch.cuda.memory_allocated() / 2**20,
        "torch_reserved_mb": torch.cuda.memory_reserved() / 2**20,
        "device_used_mb": (total - free) / 2**20,
        "device_total_mb": total / 2**20,
    }


def process_rss_mb() -> float:
    """Resident memory of this replica's process."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def fetch_audio(shared: Any) -> np.ndarray:
    """Audio handed over by the runner: ``[ObjectRef]`` (boxed so Serve does not resolve it
    early) or a plain array (local testing mode)."""
    if isinstance(shared, np.ndarray):
        return shared
    (ref,) = shared
    audio: np.ndarray = await ref
    return audio


def lower_priority(niceness: int) -> int:
    """Run this replica's process at OS niceness ``niceness`` (0 leaves it as it is).

    Model inference is throughput work that can take every core; the ingress, the proxy,
    the dispatcher and the runner answer people and renew leases. At a higher niceness the
    scheduler hands the models only the CPU time those latency-bound processes leave, so
    the API stays responsive on a saturated machine (a GPU node loses nothing: inference
    there waits on the GPU, not the CPU). Returns the niceness now in effect.

    On Linux niceness belongs to each thread, so every thread of the process is lowered
    (threads started later inherit it from the thread that starts them). Ray itself starts
    worker processes at niceness 15 (its ``worker_niceness``): the service starts its
    clusters with ``worker_niceness`` 0 (scripts/serve.py, cluster.yaml), so that only the
    model replicas run below normal priority.
    """
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process as a whole
        tids = [0]
    for tid in tids:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except (ProcessLookupError, PermissionError) as exc:  # a thread that just ended
            log.debug("cannot lower the priority of thread %d: %s", tid, exc)
    return os.getpriority(os.PRIO_PROCESS, 0)
