"""Settings shared by the pipeline and runner tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aisubs.settings import Settings
from tests.support.settings import TINY_ASR, make_settings


def pipeline_settings(tmp: Path, **sections: dict[str, Any]) -> Settings:
    """tests.support.settings.make_settings with tiny.en (TINY_ASR) under the given ``asr``
    fields."""
    return make_settings(tmp, **{**sections, "asr": TINY_ASR | sections.get("asr", {})})
