"""Diarization error rate the way this project reports it.

pyannote.metrics, collar 0.25 s, overlapped speech scored (``skip_overlap=False``),
restricted to the UEM when one is given: the conventions in shared/data/README.md. RTTM and
UEM files are read with pyannote.database's own loaders so labels with non-ASCII names
(AMI's ``MÉO069``) and multi-file references work as the tools intend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pyannote.core import Annotation, Segment, Timeline

from aisubs.transcript import SpeakerTurn

DEFAULT_COLLAR = 0.25


def load_rttm(path: str | Path) -> dict[str, Annotation]:
    """``{uri: Annotation}`` from an RTTM file."""
    from pyannote.database.util import load_rttm as _load_rttm

    return dict(_load_rttm(str(path)))


def load_uem(path: str | Path) -> dict[str, Timeline]:
    """``{uri: Timeline}`` of scored regions from a UEM file."""
    from pyannote.database.util import load_uem as _load_uem

    return dict(_load_uem(str(path)))


def turns_to_annotation(turns: Iterable[SpeakerTurn], uri: str | None = None) -> Annotation:
    annotation = Annotation(uri=uri)
    for i, turn in enumerate(turns):
        if turn.end > turn.start:
            annotation[Segment(turn.start, turn.end), i] = turn.speaker
    return annotation


def _reference(reference: str | Path | Annotation, uri: str | None) -> Annotation:
    if isinstance(reference, Annotation):
        return reference
    annotations = load_rttm(reference)
    if uri is not None:
        return annotations[uri]
    if len(annotations) != 1:
        raise ValueError(f"{reference} holds {len(annotations)} files: pass uri=")
    return next(iter(annotations.values()))


def _uem(uem: Timeline | Segment | tuple[float, float] | None) -> Timeline | None:
    if uem is None or isinstance(uem, Timeline):
        return uem
    if isinstance(uem, Segment):
        return Timeline([uem])
    start, end = uem
    return Timeline([Segment(float(start), float(end))])


def der_components(
    reference: str | Path | Annotation,
    hypothesis_turns: Iterable[SpeakerTurn],
    uem: Timeline | Segment | tuple[float, float] | None = None,
    collar: float = DEFAULT_COLLAR,
    *,
    uri: str | None = None,
) -> dict[str, Any]:
    """Missed / false-alarm / confusion seconds and the total, as pyannote.metrics reports."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    ref = _reference(reference, uri)
    hyp = turns_to_annotation(hypothesis_turns, uri=ref.uri)
    return dict(metric(ref, hyp, uem=_uem(uem), detailed=True))


def der(
    reference: str | Path | Annotation,
    hypothesis_turns: Iterable[SpeakerTurn],
    uem: Timeline | Segment | tuple[float, float] | None = None,
    collar: float = DEFAULT_COLLAR,
    *,
    uri: str | None = None,
) -> float:
    """DER of ``hypothesis_turns`` against an RTTM path (or Annotation), as a fraction.

    ``uri`` picks the file inside a multi-file RTTM. ``uem`` restricts scoring to a
    Timeline (or one ``(start, end)`` span); without it pyannote scores the extent of
    reference and hypothesis together.
    """
    components = der_components(reference, hypothesis_turns, uem, collar, uri=uri)
    return float(components["diarization error rate"])


def pooled_der(
    items: Iterable[tuple[Annotation, Iterable[SpeakerTurn], Timeline | None]],
    collar: float = DEFAULT_COLLAR,
) -> tuple[float, list[float]]:
    """Pooled DER (errors summed over files / reference speech summed) and per-file DERs."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    per_file = []
    for reference, turns, uem in items:
        hyp = turns_to_annotation(turns, uri=reference.uri)
        per_file.append(float(metric(reference, hyp, uem=uem)))
    return float(abs(metric)), per_file


def references_for(rttm_paths: Iterable[str | Path]) -> Mapping[str, Annotation]:
    """Merge several RTTM files into one ``{uri: Annotation}`` map."""
    merged: dict[str, Annotation] = {}
    for path in rttm_paths:
        merged.update(load_rttm(path))
    return merged
