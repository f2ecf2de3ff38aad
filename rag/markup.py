"""Turn what a model writes into plain text before anything checks or shows it.

Answers are plain text with ``[n]`` markers; a client may render them as HTML or markdown, so
markup the model adds must not survive. Removed: HTML comments, ``<script>``/``<style>``
elements with their content, every other tag (its text kept), any ``<`` or ``>`` left over,
markdown images, link targets (the link text kept; ``[1](url)`` stays the marker ``[1]``),
square brackets that are not ``[n]`` markers, a link or tag left open at the end,
emphasis, inline code ticks, heading, quote and list prefixes, horizontal rules, and control
and zero-width characters.
"""

from __future__ import annotations

import re

_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_SCRIPT = re.compile(r"<\s*(script|style|iframe|object)\b.*?(?:<\s*/\s*\1\s*>|$)", re.S | re.I)
_TAG = re.compile(r"</?\s*[A-Za-z!?/][^<>]*>?")
_TARGET = r"\((?:[^()]|\([^()]*\))*\)"  # (url), allowing one level of (parentheses) inside
_IMAGE = re.compile(rf"!\[[^\]]*\]{_TARGET}")
_LINK = re.compile(rf"\[([^\]]*)\]{_TARGET}")
# A link or image still arriving (or never closed): held back until it is whole.
_OPEN_LINK = re.compile(r"!?\[[^\]]*(?:\]\(.*)?$", re.S)
_MARKER = re.compile(r"(\[\s*\d{1,2}(?:\s*[,，、]\s*\d{1,2})*\s*\])")
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3}|~~|`+)(?=\S)(.+?)(?<=\S)\1")
_LINE_PREFIX = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+][ \t]+|\d{1,2}[.)][ \t]+)", re.M)
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$", re.M)
_INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060\ufeff]")


def strip_markup(text: str) -> str:
    """``text`` without HTML or markdown (see the module docstring for exactly what goes)."""
    text = _INVISIBLE.sub("", text)
    text = _COMMENT.sub("", text)
    text = _SCRIPT.sub("", text)
    text = _TAG.sub("", text)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(_link_text, text)
    text = _OPEN_LINK.sub("", text)
    # Brackets that are not citation markers are markup (or would be taken for it).
    text = "".join(
        part if _MARKER.fullmatch(part) else part.replace("[", "").replace("]", "")
        for part in _MARKER.split(text)
    )
    text = _RULE.sub("", text)
    text = _LINE_PREFIX.sub("", text)
    text = text.replace("<", "").replace(">", "")
    previous = None
    while previous != text:  # nested emphasis: ***x*** or **`x`**
        previous, text = text, _EMPHASIS.sub(r"\2", text)
    return text


def _link_text(match: re.Match[str]) -> str:
    label = match.group(1)
    return f"[{label}]" if label.strip().isdigit() else label
