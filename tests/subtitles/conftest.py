"""Subtitle tests load no models; every test builds its own transcript."""

from __future__ import annotations

import pytest

from aisubs.settings import SubtitleSettings


@pytest.fixture
def rules() -> SubtitleSettings:
    """The default (Netflix) cue rules."""
    return SubtitleSettings()
