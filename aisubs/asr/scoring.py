"""Word error rate the way Whisper's papers score it, reusable by tests and evaluation.

References and hypotheses differ in case, punctuation and number style ("Mr." vs "mister",
"twenty" vs "20"); Whisper's English normaliser removes those differences so WER counts only
recognition errors. Other languages get Whisper's basic normaliser (lower case, no marks).
Languages written without spaces (Japanese, Chinese, Thai...) are scored per character, as
word splitting is meaningless there.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jiwer

# Scripts without spaces between words: score characters, not "words".
CHARACTER_LANGUAGES = frozenset({"ja", "zh", "th", "lo", "my", "km", "yue"})


@cache
def _english() -> Any:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


@cache
def _basic() -> Any:
    from whisper.normalizers import BasicTextNormalizer

    return BasicTextNormalizer()


def normalize(text: str, language: str | None = "en") -> str:
    """Whisper's EnglishTextNormalizer for English, BasicTextNormalizer otherwise."""
    lang = (language or "en").lower()
    english = lang == "en" or lang.startswith("en-")
    out = _english()(text) if english else _basic()(text)
    if lang in CHARACTER_LANGUAGES:
        out = " ".join(ch for ch in out if not ch.isspace())
    return " ".join(out.split())


def wer(reference: str, hypothesis: str, language: str | None = "en") -> float:
    """Word error rate after :func:`normalize` (character error rate for unspaced scripts)."""
    ref = normalize(reference, language)
    hyp = normalize(hypothesis, language)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))
