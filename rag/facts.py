"""The facts a sentence states, in a form two wordings of the same fact share.

Numbers are read as values with a kind (``三毛钱`` = 0.3 yuan, ``4000万`` = 40,000,000,
``十分之一`` = ``10%`` = 0.1), change words by direction (涨/降, 提高/降低 ...), and negations
counted, so a reply sentence can be compared with the source sentence it cites fact by fact:
:func:`check_clause` names the first fact the source does not state.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import jieba
import jieba.posseg

from rag.tokens import STOPWORDS

jieba.setLogLevel(logging.WARNING)

DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
          "七": 7, "八": 8, "九": 9}  # fmt: skip
UNITS = {"十": 10, "百": 100, "千": 1000}
BIG = {"万": 1e4, "亿": 1e8}
SCALE_EN = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
CN = "零〇一二两三四五六七八九十百千万亿"
_AR = r"\d+(?:,\d{3})*(?:\.\d+)?"
_CNNUM = rf"[{CN}]+(?:点[零〇一二三四五六七八九]+)?"
_NUM = rf"(?:{_AR}(?:\s?[十百千万亿]+)?|{_CNNUM})"
# One pass over the text, longest forms first; the groups say which form matched.
_QUANTITY = re.compile(
    rf"(?P<frac>(?P<den>{_NUM})分之(?P<num>{_NUM}))"
    rf"|(?P<pct>(?P<pv>{_NUM})\s*(?:%|％|个百分点|\s?percent\b|\s?per\s?cent\b))"
    rf"|(?P<money>(?P<mv>{_NUM})\s*(?P<mu>美元|元|块钱|块|毛钱|毛|角|分钱|\s?yuan\b|\s?RMB\b))"
    rf"|(?P<usd>\$\s?(?P<dv>{_AR})\s*(?P<ds>thousand|million|billion|trillion)?)"
    rf"|(?P<times>(?P<tv>{_NUM})\s*[余多]?(?:倍|\s?times\b|-fold\b))"
    rf"|(?P<tenth>(?P<cv>{_AR}|[一二两三四五六七八九十]{{1,2}})成(?![为立功员本果绩长熟变不]))"
    rf"|(?P<plain>(?P<v>{_NUM})\s*(?P<en>thousand|million|billion|trillion)?)",
    re.I,
)
MONEY = {"美元": 1.0, "元": 1.0, "块钱": 1.0, "块": 1.0, "毛钱": 0.1, "毛": 0.1, "角": 0.1,
         "分钱": 0.01, "yuan": 1.0, "rmb": 1.0}  # fmt: skip

# Change words by direction. Only verbs of change: comparisons (超过, 突破) are left out, as a
# faithful reply often words a threshold differently.
UP = re.compile(
    r"涨|提高|增加|上升|增长|提升|升高|扩大|加快|加速|上调|提价|攀升|走高|飙升|上扬"
    r"|激增|猛增|大增|剧增|暴增"
    r"|\b(?:increas|rise|rising|rose|rais|grow|grew|higher|up\b)",
    re.I,
)
DOWN = re.compile(
    r"降|减少|下滑|下跌|缩小|放缓|减缓|下调|削减|跌|锐减|大减|缩减|萎缩"
    r"|\b(?:decreas|fall|fell|drop|cut\b|lower|reduc|declin|slow|down\b)",
    re.I,
)
NEGATIONS = frozenset(
    "不 没 没有 未 无 非 并非 并未 并没有 并无 不是 不会 不能 不再 不要 无法 未能 尚未 从未 从不 "
    "从没 绝非 绝不 决不 毫不 并不 别 "
    "not no never cannot".split()
)
# Words that frame a statement without adding a fact of their own.
FRAMING = frozenset(
    "表示 认为 指出 称 说 提到 介绍 显示 强调 据 根据 文章 文中 报道 达到 达 为 约 大约 "
    "进行 实现 具有 拥有 包括 成为 主要 目前 其中 此外 同时 并且 而且 另外 因此 分别 相关 方面 "
    "通过 使用 采用 当时 现在 如今 还 更 最 非常 十分 已 已经 将 会 能 可 可以 能够 正在 则 "
    "the a an its it this that these those also has have had was were is are be been will "
    "said says according about".split()
)
PROPER = ("nr", "nrt", "nrfg", "ns", "nt", "nz", "eng")
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9.\-+]*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_QUOTE = re.compile(r"[“\"「『]([^”\"」』]{2,})[”\"」』]")
CLAUSE_BREAK = ",，;；:：\n"
# Claims of rank or extent a faithful reply only repeats: each must be in the source as written.
STRONG = re.compile(
    r"最\w|首个|首次|首家|唯一|全部|所有|永久|永远|全面|超越|领先|第一|绝对|一定|必然"
)
# The same extent in the source's words: "价格低至三毛钱" is the lowest price.
STRONG_SAME = {"最低": ("低至",), "最高": ("高达", "高至"), "最多": ("多达",), "首个": ("首家",)}
# A clause fails the word check when more than this share of its content words, and at least
# MISSING_WORDS of them, are in neither the source nor the question.
MISSING_SHARE = 0.5
MISSING_WORDS = 2


@dataclass(frozen=True)
class Quantity:
    """A number as stated: its value and kind ("" plain, "ratio", "yuan", "usd", "times")."""

    value: float
    kind: str
    text: str


def parse_number(text: str) -> float | None:
    """The value of ``36``, ``4,000``, ``1.2亿``, ``4000万``, ``三千万``, ``十五``, ``二〇二二``."""
    text = re.sub(r"[\s,]", "", text)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([十百千万亿]*)", text)
    if m:
        value = float(m.group(1))
        for ch in m.group(2):
            value *= UNITS.get(ch, 1) * BIG.get(ch, 1)
        return value
    if "点" in text:
        whole, _, frac = text.partition("点")
        head = parse_number(whole) if whole else 0.0
        digits = "".join(str(DIGITS[c]) for c in frac if c in DIGITS)
        return None if head is None or not digits else head + float("0." + digits)
    if not text or any(c not in DIGITS and c not in UNITS and c not in BIG for c in text):
        return None
    if all(c in DIGITS for c in text) and len(text) > 1:  # 二〇二二: read digit by digit
        return float("".join(str(DIGITS[c]) for c in text))
    total = section = digit = 0.0
    for ch in text:
        if ch in DIGITS:
            digit = DIGITS[ch]
        elif ch in UNITS:
            section += (digit or 1) * UNITS[ch]
            digit = 0
        elif ch == "万":
            total += (section + digit) * BIG[ch]
            section = digit = 0
        else:  # 亿 scales everything before it
            total = (total + section + digit) * BIG[ch]
            section = digit = 0
    return total + section + digit


def _idiomatic(number: str, text: str, start: int, end: int) -> bool:
    """Chinese numeral characters that are not a number here: 一直, 千问, 万一, 十分重要."""
    if number[0] in "百千万亿":
        # 百万 and 每千 are amounts; 千问, 万一 and 百度 are not.
        magnitudes_only = all(c in "百千万亿" for c in number)
        per = text[max(0, start - 1) : start] == "每"
        return not (magnitudes_only and (len(number) > 1 or per))
    if number in ("一", "两"):
        return True
    return number == "十" and text[end : end + 1] == "分"


def quantities(text: str) -> list[Quantity]:
    """Every number in ``text`` with its value normalised (see the module docstring)."""
    found: list[Quantity] = []
    for m in _QUANTITY.finditer(text):
        g = m.groupdict()
        if g["frac"]:
            den, num = parse_number(g["den"]), parse_number(g["num"])
            if den and num is not None:
                found.append(Quantity(num / den, "ratio", m.group()))
        elif g["pct"]:
            found.extend(_scaled(g["pv"], 0.01, "ratio", m.group()))
        elif g["money"]:
            unit = g["mu"].strip().lower()
            kind = "usd" if unit == "美元" else "yuan"
            found.extend(_scaled(g["mv"], MONEY[unit], kind, m.group()))
        elif g["usd"]:
            found.extend(_scaled(g["dv"], SCALE_EN.get((g["ds"] or "").lower(), 1), "usd", m[0]))
        elif g["times"]:
            found.extend(_scaled(g["tv"], 1, "times", m.group()))
        elif g["tenth"]:
            found.extend(_scaled(g["cv"], 0.1, "ratio", m.group()))
        else:
            number = g["v"]
            if not number[0].isdigit() and _idiomatic(number, text, m.start("v"), m.end("v")):
                continue
            found.extend(_scaled(number, SCALE_EN.get((g["en"] or "").lower(), 1), "", m[0]))
    return found


def _scaled(number: str, factor: float, kind: str, text: str) -> list[Quantity]:
    value = parse_number(number)
    return [] if value is None else [Quantity(value * factor, kind, text)]


def same_value(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def quantity_supported(q: Quantity, source: list[Quantity]) -> bool:
    """Whether ``source`` states ``q``: the same value and kind, or ``q`` is a bare number that
    equals a source value (``85`` for ``85%`` too)."""
    for s in source:
        if q.kind == s.kind and same_value(q.value, s.value):
            return True
        if not q.kind and (same_value(q.value, s.value) or same_value(q.value / 100, s.value)):
            return True
    return False


def directions(text: str) -> set[str]:
    """ "up" and/or "down" for the change words in ``text``."""
    found = set()
    if UP.search(text):
        found.add("up")
    if DOWN.search(text):
        found.add("down")
    return found


@lru_cache(maxsize=8192)
def words(text: str) -> tuple[tuple[str, str], ...]:
    """(word, part of speech) pairs by jieba, Latin terms kept whole."""
    return tuple((w.word, w.flag) for w in jieba.posseg.lcut(text) if w.word.strip())


def negated(text: str) -> bool:
    return any(w.lower() in NEGATIONS or w.lower().endswith("n't") for w, _ in words(text))


def content_words(text: str) -> list[tuple[str, bool]]:
    """(word, is a name) for the words of ``text`` that carry a fact."""
    out = []
    for word, flag in words(text):
        low = word.lower()
        if low in STOPWORDS or low in FRAMING or low in NEGATIONS or not _is_wordy(word):
            continue
        if re.fullmatch(rf"[\d.,%{CN}]+", word) or flag == "m":
            continue  # numbers are checked as quantities
        # A word jieba's dictionary lacks was found by its HMM: a name, mostly (仓剑, 吴泳铭).
        unknown = bool(_CJK.search(word)) and word not in jieba.dt.FREQ
        name = flag in PROPER or bool(_LATIN.fullmatch(word)) or unknown
        if not name and len(word) < 2:
            continue
        out.append((word, name))
    return out


def _is_wordy(word: str) -> bool:
    return bool(_CJK.search(word) or _LATIN.search(word))


def squash(text: str) -> str:
    """Lower-cased, without spaces and punctuation: for containment tests."""
    return re.sub(r"[\s\W_]+", "", text.lower())


def split_clauses(sentence: str) -> list[str]:
    """The clauses of a sentence, cut after , ; : and line breaks outside quotation marks
    (joined back together they give the sentence)."""
    clauses: list[str] = []
    start = 0
    depth = 0
    for i, ch in enumerate(sentence):
        if ch in "“「『":
            depth += 1
        elif ch in "”」』":
            depth = max(0, depth - 1)
        elif ch in CLAUSE_BREAK and depth == 0:
            clauses.append(sentence[start : i + 1])
            start = i + 1
    if start < len(sentence):
        clauses.append(sentence[start:])
    return [c for c in clauses if c.strip()]


@dataclass(frozen=True)
class Support:
    """What a reply clause may draw on: the cited source sentences and the question."""

    sources: tuple[str, ...]
    question: str
    extra_numbers: tuple[Quantity, ...] = ()

    @property
    def text(self) -> str:
        return squash("".join(self.sources) + self.question)

    @property
    def numbers(self) -> list[Quantity]:
        return [q for s in self.sources for q in quantities(s)] + list(self.extra_numbers)

    @property
    def source_clauses(self) -> list[str]:
        return [c for s in self.sources for c in split_clauses(s)]


def check_clause(clause: str, support: Support) -> str | None:
    """The first check ``clause`` fails against ``support``, or None when it states only what
    the support states. Numbers must be in the sources themselves: a question's premise may
    be false."""
    numbers = support.numbers
    for q in quantities(clause):
        if not quantity_supported(q, numbers):
            return f"number {q.text.strip()!r} not in the source"
    for quote in _QUOTE.findall(clause):
        if squash(quote) not in squash("".join(support.sources)):
            return "quotation not in the source"
    if not _CJK.search(clause) and _CJK.search("".join(support.sources)):
        # An English sentence about Chinese sources: words cannot be matched across the
        # languages, so numbers, quotes, direction and negation are what is checked.
        return _polarity(clause, "", support)
    text = support.text
    for strong in STRONG.findall(clause):
        if not any(w in text for w in (strong, *STRONG_SAME.get(strong, ()))):
            return f"claim {strong!r} not in the source"
    content = content_words(clause)
    missing = [w for w, _ in content if squash(w) not in text]
    names = [w for w, name in content if name and squash(w) not in text]
    if names:
        return f"name {names[0]!r} not in the source"
    if len(missing) >= MISSING_WORDS and len(missing) > MISSING_SHARE * len(content):
        return f"words {'、'.join(missing[:3])} not in the source"
    matched = _closest_clause(clause, support.source_clauses)
    return _polarity(clause, matched, support)


def coverage(clause: str, source: str) -> float:
    """Share of the clause's content words that ``source`` contains."""
    content = content_words(clause)
    if not content:
        return 0.0
    text = squash(source)
    return sum(1 for w, _ in content if squash(w) in text) / len(content)


def contradiction(problem: str | None) -> bool:
    """A failure where the source says the opposite (not merely less) than the clause."""
    return problem is not None and problem.startswith(("direction", "negation"))


def _closest_clause(clause: str, sources: list[str]) -> str:
    """The source clause sharing most content words with ``clause`` ('' when none shares)."""
    mine = {squash(w) for w, _ in content_words(clause)}
    best, best_shared = "", 0
    for source in sources:
        shared = sum(1 for w in mine if w and w in squash(source))
        if shared > best_shared:
            best, best_shared = source, shared
    return best


def _polarity(clause: str, matched: str, support: Support) -> str | None:
    """Direction and negation must agree with the source clause saying the same thing."""
    mine = directions(clause)
    if mine:
        theirs = directions(matched) or directions("".join(support.sources))
        if theirs and not mine & theirs:
            return "direction (up/down) reversed"
    if matched and negated(clause) != negated(matched):
        return "negation added" if negated(clause) else "negation dropped"
    return None
