"""Lexical tokenisation for BM25: jieba search-mode words plus intact numbers and Latin terms.

Numbers with units and model names (``36%``, ``4000万``, ``3.2T``, ``Qwen2.5``, ``72B``) are kept
whole so a question about "3.2T" does not match every "3" in the corpus; their alphabetic and
numeric parts are added too, so "Qwen" still matches "Qwen2.5".
"""

from __future__ import annotations

import logging
import re
import threading

import jieba

jieba.setLogLevel(logging.WARNING)
_init_lock = threading.Lock()
_initialised = False

# A Latin/digit term: letters and digits joined by . - _ + /, an optional % or one CJK
# magnitude character (万, 亿 ...) glued to a number.
_TERM = re.compile(r"[A-Za-z0-9]+(?:[.\-_+][A-Za-z0-9]+)*(?:%|(?<=[0-9])[万亿千百])?")
_PARTS = re.compile(r"[A-Za-z]+|[0-9]+(?:\.[0-9]+)?")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

STOPWORDS = frozenset(
    """
    的 了 是 在 和 与 及 等 也 都 而 被 把 对 中 上 下 这 那 这个 那个 有 为 将 从 以 其 之 或 就
    并 又 还 但 让 给 向 于 由 至 个 着 过 吗 呢 啊 吧 呀 么 哪 哪个 哪些 哪家 哪里 什么 怎么
    怎样 如何 多少 几 谁 是否 是不是 为什么 请问 文章 文中 提到 一 不 我 我们 你 你们 他 她 它
    他们 自己 可以 能够 会 要 已 已经 该 此 所 各 每 即 则 因此 所以 如果 虽然 因为 以及
    a an the of in on at to for from by with and or is are was were be been being do does did
    what which who whom whose when where why how much many that this these those it its as
    into than then there their they he she his her we our you your i me my not no
    """.split()
)


def _ensure_jieba() -> None:
    """Load jieba's dictionary once, thread-safely (it is lazy and not lock-protected)."""
    global _initialised
    if not _initialised:
        with _init_lock:
            if not _initialised:
                jieba.initialize()
                _initialised = True


def _term_tokens(term: str) -> list[str]:
    term = term.lower()
    tokens = [term]
    parts = _PARTS.findall(term)
    if len(parts) > 1:
        tokens.extend(p for p in parts if len(p) > 1 or p.isdigit())
    return tokens


def tokenize(text: str) -> list[str]:
    """Tokens of ``text`` for BM25, stop-words and punctuation removed, Latin lower-cased."""
    _ensure_jieba()
    tokens: list[str] = []
    pos = 0
    for match in _TERM.finditer(text):
        tokens.extend(_cjk_tokens(text[pos : match.start()]))
        tokens.extend(_term_tokens(match.group()))
        pos = match.end()
    tokens.extend(_cjk_tokens(text[pos:]))
    return [t for t in tokens if t not in STOPWORDS]


def _cjk_tokens(segment: str) -> list[str]:
    if not _CJK.search(segment):
        return []
    return [w for w in jieba.cut_for_search(segment) if _CJK.search(w)]
