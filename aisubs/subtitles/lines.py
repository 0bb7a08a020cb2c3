"""Line breaking inside one cue.

Two questions, asked at different times. While choosing cue boundaries the builder only
needs to know whether a run of tokens *fits* in ``max_lines`` lines; filling lines greedily
uses the fewest lines possible, so :class:`LineFitter` answers that in O(1) per added token.
Once a cue is chosen, :func:`layout` picks the best break points among all layouts with that
fewest number of lines: after punctuation, before conjunctions and prepositions, never inside
a word, with balanced lengths (a slightly longer bottom line preferred), as the Netflix
timed-text guide asks. No library does this kind of cost-based subtitle line breaking, so it
is written here (a small dynamic programme over break points).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from aisubs.subtitles.text import (
    BREAK_BEFORE_EN,
    NO_BREAK_AFTER_EN,
    bare,
    ends_clause,
    ends_sentence,
)
from aisubs.subtitles.tokens import Token

BALANCE_WEIGHT = 0.05  # cost per squared character away from the mean line length
TOP_HEAVY_COST = 0.5  # an upper line longer than the average one


class LineFitter:
    """Greedy line filling: tracks how many lines a growing run of tokens needs."""

    __slots__ = ("current", "lines", "width")

    def __init__(self, width: int, first_offset: int = 0) -> None:
        self.width = width
        self.lines = 0
        self.current = first_offset  # characters already on the (future) first line

    def add(self, token: Token) -> int:
        """Add ``token`` and return the number of lines now needed."""
        size = len(token.text)
        if self.lines == 0:  # the caller makes sure a label fits beside the first token
            self.lines = 1
            self.current += size
            return self.lines
        extra = size if token.glue else size + 1
        if self.current + extra <= self.width:
            self.current += extra
        else:
            self.lines += 1
            self.current = size
        return self.lines


def line_break_cost(left: Token, right: Token, english: bool) -> float:
    """How bad it is to end a line (or a cue) after ``left`` when ``right`` follows."""
    if right.glue:
        return 30.0  # inside a word, number or a hard-wrapped token
    if ends_sentence(left.text):
        return 0.0
    if ends_clause(left.text):
        return 0.5
    if english:
        if bare(left.text) in NO_BREAK_AFTER_EN:
            return 12.0
        if bare(right.text) in BREAK_BEFORE_EN:
            return 3.0
    return 5.0


def two_line_cost(first: int, second: int, break_cost: float) -> float:
    """Cost of a two-line layout with these line lengths, broken at a place of this cost.

    The same terms :func:`layout` minimises, so the cue builder can price a cue's best
    layout while it chooses cue boundaries.
    """
    mean = (first + second) / 2
    cost = break_cost + BALANCE_WEIGHT * ((first - mean) ** 2 + (second - mean) ** 2)
    return cost + (TOP_HEAVY_COST if first > mean else 0.0)


def join_tokens(tokens: Sequence[Token]) -> str:
    """Tokens as one line of text."""
    parts: list[str] = []
    for k, t in enumerate(tokens):
        if k and not t.glue:
            parts.append(" ")
        parts.append(t.text)
    return "".join(parts)


def layout(
    tokens: Sequence[Token], width: int, max_lines: int, first_offset: int, english: bool
) -> list[str]:
    """Best lines for a cue's tokens, using the fewest lines that fit.

    ``first_offset`` is the room taken on the first line by a speaker label. Tokens are at
    most ``width`` long and the caller checked that they fit in ``max_lines`` lines.
    """
    if not tokens:
        return []
    fitter = LineFitter(width, first_offset)
    needed = 0
    for t in tokens:
        needed = fitter.add(t)
    if needed == 1:
        return [join_tokens(tokens)]
    n = len(tokens)
    # Display length of tokens[a:b] on one line, via prefix sums.
    pre_len = [0] * (n + 1)
    pre_sp = [0] * (n + 1)
    for k, t in enumerate(tokens):
        pre_len[k + 1] = pre_len[k] + len(t.text)
        pre_sp[k + 1] = pre_sp[k] + (0 if t.glue else 1)

    def length(a: int, b: int) -> int:
        return pre_len[b] - pre_len[a] + (pre_sp[b] - pre_sp[a + 1])

    total = length(0, n) + first_offset
    mean = total / needed
    # best[k][b]: cheapest way to put tokens[:b] on k lines; back[k][b] the last line's start.
    best = [[math.inf] * (n + 1) for _ in range(needed + 1)]
    back = [[0] * (n + 1) for _ in range(needed + 1)]
    best[0][0] = 0.0
    for k in range(1, needed + 1):
        for b in range(k, n + 1):
            for a in range(k - 1, b):
                if best[k - 1][a] == math.inf:
                    continue
                size = length(a, b) + (first_offset if a == 0 else 0)
                if size > width:
                    continue
                cost = best[k - 1][a] + BALANCE_WEIGHT * (size - mean) ** 2
                if b < n:
                    cost += line_break_cost(tokens[b - 1], tokens[b], english)
                    if size > mean:
                        cost += TOP_HEAVY_COST
                if cost < best[k][b]:
                    best[k][b] = cost
                    back[k][b] = a
    if best[needed][n] == math.inf:  # cannot happen when the caller checked the fit
        raise ValueError("tokens do not fit in the requested lines")
    cuts: list[int] = []
    b = n
    for k in range(needed, 0, -1):
        a = back[k][b]
        cuts.append(a)
        b = a
    cuts.reverse()
    bounds = [*cuts, n]
    return [join_tokens(tokens[bounds[k] : bounds[k + 1]]) for k in range(needed)]
