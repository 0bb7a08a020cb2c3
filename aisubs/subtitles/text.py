"""Small text facts the subtitle builder relies on: spacing conventions and punctuation.

Whisper emits each word with its own leading space (" Hello", " world,") and no space for
scripts written without spaces (Chinese, Japanese, Thai...). Hand-made or third-party
transcripts often carry bare words ("Hello", "world"). :func:`spacing_mode` picks one
convention per transcript so that joining words gives readable text in both cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

# Languages written without spaces between words: joined without separators.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "km", "yue", "bo"})

# Written with escapes so that lookalike characters stay visible in review:
# closing quotes and brackets, then sentence-final and clause punctuation (with CJK forms).
_CLOSERS = "\"')]}\u201d\u2019\u00bb\u300d\u300f"
SENTENCE_END = frozenset(".?!\u2026\u3002\uff1f\uff01\u203d")
CLAUSE_END = frozenset(",;:\u2013\u2014\u3001\uff0c\uff1b\uff1a")
_STRIP = " .,;:!?\"'()[]{}-\u00ab\u00bb\u201c\u201d\u2018\u2019\u2026\u2013\u2014"

# English words a line or cue is best broken *before* (Netflix: break before conjunctions
# and prepositions) and words a break should never directly follow (articles, determiners).
BREAK_BEFORE_EN = frozenset(
    {
        "and", "but", "or", "nor", "so", "yet", "because", "although", "though", "that",
        "which", "who", "whom", "whose", "when", "where", "while", "if", "unless", "until",
        "since", "as", "than", "to", "of", "in", "on", "at", "for", "with", "from", "into",
        "about",
    }
)  # fmt: skip
NO_BREAK_AFTER_EN = frozenset(
    {
        "a", "an", "the", "my", "your", "his", "her", "its", "our", "their", "this",
        "these", "those", "mr", "mrs", "ms", "dr",
    }
)  # fmt: skip

SpacingMode = Literal["literal", "spaced", "glued"]


def spacing_mode(words: Iterable[str], language: str | None) -> SpacingMode:
    """How to join words: ``literal`` (Whisper style, spaces already inside the words),
    ``spaced`` (bare words, join with one space) or ``glued`` (bare words of a language
    written without spaces)."""
    for w in words:
        if w[:1].isspace():
            return "literal"
    if language is not None and language.split("-")[0].lower() in NO_SPACE_LANGUAGES:
        return "glued"
    return "spaced"


def glues_to_previous(word: str, mode: SpacingMode) -> bool:
    """Whether ``word`` is written right after the previous word, with no space."""
    if mode == "glued":
        return True
    if mode == "spaced":
        return False
    return not word[:1].isspace()


def normalise_word(word: str) -> str:
    """The word as shown on screen: outer whitespace removed, inner runs collapsed."""
    return " ".join(word.split())


def join_words(words: Sequence[str], language: str | None = None) -> str:
    """Rebuild display text from word strings, honouring the spacing convention."""
    mode = spacing_mode(words, language)
    out: list[str] = []
    for w in words:
        text = normalise_word(w)
        if not text:
            continue
        if out and not glues_to_previous(w, mode):
            out.append(" ")
        out.append(text)
    return "".join(out)


def _last_mark(text: str) -> str:
    stripped = text.rstrip(_CLOSERS)
    return stripped[-1:] if stripped else ""


def ends_sentence(text: str) -> bool:
    """True when ``text`` ends with sentence-final punctuation (closing quotes allowed)."""
    return _last_mark(text) in SENTENCE_END


def ends_clause(text: str) -> bool:
    """True when ``text`` ends with clause punctuation (comma, semicolon, colon, dash)."""
    return _last_mark(text) in CLAUSE_END


def is_english(language: str | None) -> bool:
    """Language-specific break hints are only applied to English (or unknown) text."""
    return language is None or language.split("-")[0].lower() == "en"


def bare(text: str) -> str:
    """Lower-cased word without surrounding punctuation, for word-list lookups."""
    return text.strip(_STRIP).lower()
