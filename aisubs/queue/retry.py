"""Retry backoff: attempt n waits ``min(max, min * 2**(n-1))`` seconds, with jitter.

Jitter spreads retries of jobs that failed together (a bad deploy, a lost GPU node) so they
do not come back as one burst.
"""

from __future__ import annotations

import random

from aisubs.settings import QueueSettings


def backoff_seconds(
    attempt: int, settings: QueueSettings, rng: random.Random | None = None
) -> float:
    """Seconds to wait before the retry that follows failed attempt number ``attempt`` (1-based).

    The jittered value stays within ``[0, retry_max_seconds]``.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    base = min(settings.retry_max_seconds, settings.retry_min_seconds * 2.0 ** (attempt - 1))
    if settings.retry_jitter:
        base *= 1.0 + (rng or random).uniform(-settings.retry_jitter, settings.retry_jitter)
    return max(0.0, min(settings.retry_max_seconds, base))
