"""Where to cut long audio into pieces without cutting a word.

Engines that cannot seek across a cut (openai-whisper run piece by piece so it can be
cancelled, faster-whisper's batched pipeline without VAD) need cut points in silence: a join
between VAD speech chunks when there is one, else the quietest 50 ms shortly before the
target length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aisubs.media.decode import SAMPLE_RATE

CUT_SEARCH_S = 5.0  # look this far back from the target length for a quiet frame
_FRAME = SAMPLE_RATE // 20  # 50 ms


def quiet_point(audio: np.ndarray, lo: int, hi: int) -> int:
    """Sample index in the middle of the quietest 50 ms frame in [lo, hi)."""
    n = (hi - lo) // _FRAME
    if n <= 1:
        return hi
    frames = audio[lo : lo + n * _FRAME].reshape(n, _FRAME)
    return lo + int(np.argmin(np.mean(frames**2, axis=1))) * _FRAME + _FRAME // 2


def plan_cuts(audio: np.ndarray, piece_s: float, boundaries: Sequence[int] = ()) -> list[int]:
    """End indices of consecutive pieces of at most ``piece_s`` (the last is ``audio.size``).

    ``boundaries`` are preferred cut points (sample indices), used when one lies in the
    second half of a piece.
    """
    total = audio.size
    target = int(piece_s * SAMPLE_RATE)
    if target <= 0:
        raise ValueError("piece_s must be positive")
    cuts: list[int] = []
    start = 0
    while total - start > target:
        limit = start + target
        usable = [b for b in boundaries if start + target // 2 <= b <= limit]
        if usable:
            cut = usable[-1]
        else:
            search_from = max(start + 1, limit - int(CUT_SEARCH_S * SAMPLE_RATE))
            cut = quiet_point(audio, search_from, limit)
        cuts.append(cut)
        start = cut
    cuts.append(total)
    return cuts
