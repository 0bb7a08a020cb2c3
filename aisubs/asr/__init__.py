"""Speech recognition: one interface (:class:`ASREngine`), two engines, offline weights."""

from aisubs.asr.base import ASREngine, ASROptions
from aisubs.asr.bundled import BUNDLED_MODEL_NAMES, resolve_model
from aisubs.asr.factory import load_asr_engine

__all__ = ["BUNDLED_MODEL_NAMES", "ASREngine", "ASROptions", "load_asr_engine", "resolve_model"]
