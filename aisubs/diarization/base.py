"""The contract every diarization backend keeps, and the checks they share.

Callers (the Diarizer deployment, the job runner, the evaluation script) only know
:class:`Diarizer`; which engine sits behind it is a settings choice made once in
:func:`aisubs.diarization.load_diarizer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from aisubs.audio import CancelCheck
from aisubs.errors import InvalidRequest
from aisubs.transcript import SpeakerTurn


@runtime_checkable
class Diarizer(Protocol):
    """Who spoke when, for 16 kHz mono float32 audio.

    Speakers are labelled ``SPEAKER_00``, ``SPEAKER_01``... in order of first appearance and
    turns come sorted by start. Invalid hints raise :class:`aisubs.errors.InvalidRequest`;
    ``should_cancel`` is polled between chunks of work and a true answer raises
    :class:`aisubs.errors.Cancelled`.
    """

    def diarize(
        self,
        audio: np.ndarray,
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> list[SpeakerTurn]: ...


@dataclass(frozen=True, slots=True)
class SpeakerBounds:
    """The resolved speaker-count range a clusterer must stay inside (inclusive)."""

    min_speakers: int
    max_speakers: int

    @property
    def fixed(self) -> int | None:
        return self.min_speakers if self.min_speakers == self.max_speakers else None


def resolve_speaker_bounds(
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    *,
    default_max: int,
) -> SpeakerBounds:
    """Turn the caller's hints into one inclusive range, rejecting contradictions.

    ``num_speakers`` wins when given but must lie inside any min/max also given, so a
    contradictory request is an error rather than a silent pick. Without ``max_speakers``
    the operator's ``default_max`` caps the search, never below the requested minimum.
    """
    for name, value in (
        ("num_speakers", num_speakers),
        ("min_speakers", min_speakers),
        ("max_speakers", max_speakers),
    ):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise InvalidRequest(f"{name} must be a positive integer, got {value!r}")
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise InvalidRequest(
            f"min_speakers ({min_speakers}) must not exceed max_speakers ({max_speakers})"
        )
    if num_speakers is not None:
        if (min_speakers is not None and num_speakers < min_speakers) or (
            max_speakers is not None and num_speakers > max_speakers
        ):
            raise InvalidRequest(
                f"num_speakers ({num_speakers}) is outside "
                f"[{min_speakers or 1}, {max_speakers or 'inf'}]"
            )
        return SpeakerBounds(int(num_speakers), int(num_speakers))
    low = int(min_speakers) if min_speakers is not None else 1
    high = int(max_speakers) if max_speakers is not None else max(default_max, low)
    return SpeakerBounds(low, high)


def validate_audio(audio: np.ndarray) -> np.ndarray:
    """Return ``audio`` as a contiguous 1-D float32 array, or raise InvalidRequest."""
    array = np.asarray(audio)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise InvalidRequest(f"audio must be mono (1-D), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidRequest(f"audio must be floating point, got {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    # Checked in blocks: a whole-array mask would cost one byte per sample (58 MB an hour).
    step = 1 << 20
    if not all(np.isfinite(array[i : i + step]).all() for i in range(0, len(array), step)):
        raise InvalidRequest("audio contains NaN or infinite samples")
    return array


def speaker_label(index: int) -> str:
    return f"SPEAKER_{index:02d}"


def canonical_turns(turns: Iterable[tuple[float, float, object]]) -> list[SpeakerTurn]:
    """Sort turns by start and rename speakers ``SPEAKER_00``... by first appearance.

    Every backend funnels through here so labels mean the same thing whichever engine ran.
    """
    ordered = sorted(
        ((float(s), float(e), k) for s, e, k in turns if e > s), key=lambda t: (t[0], t[1])
    )
    names: dict[object, str] = {}
    result = []
    for start, end, key in ordered:
        if key not in names:
            names[key] = speaker_label(len(names))
        result.append(SpeakerTurn(start=round(start, 3), end=round(end, 3), speaker=names[key]))
    return result
