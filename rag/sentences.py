"""Sentence segmentation for Chinese (and mixed Latin) text that returns offsets.

Spans point into the caller's string instead of copying it, so chunks built from them can
always be traced back to the original article text.
"""

from __future__ import annotations

import re

TERMINATORS = "。！？；!?;…"
# Closing quotes and brackets that belong to the sentence they follow: 他说:“好。”
CLOSERS = "”’」』)）》】〉］]\"'"
LINE_BREAKS = "\n\r\u2028\u2029\x0b\x0c\x85"

_CLOSE = f"[{re.escape(CLOSERS)}]*"
_BOUNDARY = re.compile(
    rf"[{re.escape(TERMINATORS)}]+{_CLOSE}"
    # A half-width period ends a sentence only before whitespace or the end, and never after a
    # digit, so 3.2T, Qwen2.5 and 0.3元 stay whole.
    rf"|(?<![0-9])\.+{_CLOSE}(?=\s|$)"
    rf"|[{LINE_BREAKS}]+"
)
# Where an over-long sentence may be cut; an ASCII comma before a digit is a thousands separator.
_CLAUSE = re.compile(r"[，、]+|,(?!\d)")


def split_sentences(
    text: str, start: int = 0, end: int | None = None, *, max_chars: int | None = None
) -> list[tuple[int, int]]:
    """Sentence spans ``(s, e)`` inside ``text[start:end]``, in order and non-overlapping.

    Each ``text[s:e]`` is non-empty and has no surrounding whitespace, and every
    non-whitespace character of the range lies in exactly one span. Line breaks always end a
    sentence. With ``max_chars``, a sentence longer than twice that is cut after clause commas
    into pieces of at most ``max_chars`` where the commas allow it.
    """
    stop = len(text) if end is None else end
    if not 0 <= start <= stop <= len(text):
        raise ValueError(f"span ({start}, {end}) is outside a text of length {len(text)}")
    if max_chars is not None and max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    spans: list[tuple[int, int]] = []
    cut = start
    for match in _BOUNDARY.finditer(text, start, stop):
        _add_sentence(spans, text, cut, match.end(), max_chars)
        cut = match.end()
    _add_sentence(spans, text, cut, stop, max_chars)
    return spans


def strip_span(text: str, start: int, end: int, also: str = "") -> tuple[int, int]:
    """Shrink ``(start, end)`` past whitespace (and any ``also`` characters) on both sides."""
    while start < end and (text[start].isspace() or text[start] in also):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in also):
        end -= 1
    return start, end


def _add_sentence(
    spans: list[tuple[int, int]], text: str, start: int, end: int, max_chars: int | None
) -> None:
    s, e = strip_span(text, start, end)
    if s == e:
        return
    if max_chars is None or e - s <= 2 * max_chars:
        spans.append((s, e))
        return
    for piece in _cut_clauses(text, s, e, max_chars):
        spans.append(strip_span(text, *piece))


def _cut_clauses(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Greedy pieces of ``text[start:end]`` ending at clause commas, each ≤ ``limit`` if possible.

    Every piece ends at a comma or at ``end``, so after stripping none is empty.
    """
    pieces: list[tuple[int, int]] = []
    begin = start
    last = start  # the latest comma end seen since ``begin``
    for cut in [m.end() for m in _CLAUSE.finditer(text, start, end)] + [end]:
        if cut - begin > limit and last > begin:
            pieces.append((begin, last))
            begin = last
        last = cut
    if begin < end:
        pieces.append((begin, end))
    return pieces
