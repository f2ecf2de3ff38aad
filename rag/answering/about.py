"""Questions about the articles themselves: who wrote, edited or published one, when, and its title.

Their answers are not in the body text that retrieval searches but in each document's metadata
(:mod:`rag.metadata`), whose values carry offsets, so they are cited like any quote. Recognition
is narrow on purpose: the question must name an article (文章, 这篇, 第一篇, "the article") and
ask for a field with a clear phrase, and anything that reads like a question about what an
article says (提到, 文中, "according to") is left to retrieval.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.index import SearchIndex, StoredDocument
from rag.metadata import FieldName, MetaField, find_date, find_dates
from rag.tokens import tokenize

_I = re.IGNORECASE

# What follows a field's name when the question asks for it: 作者是, 作者和日期, 作者?
_IS = r"(?:是|为|叫|有|分别|都|各|和|与|及|、|\s*[?？]?$)"
# The phrases that ask for each field, Chinese then English.
_ASKS: dict[FieldName, re.Pattern[str]] = {
    "author": re.compile(
        rf"作者{_IS}|(?:由|是)?谁(?:所)?(?:写|撰写|执笔|采写|撰稿)"
        r"|哪位(?:作者|记者)|记者是谁|署名"
        r"|\bwho (?:wrote|authored|penned)\b|\bauthors?\b|\bwritten by\b|\bbyline\b|\bwriters?\b",
        _I,
    ),
    "editor": re.compile(rf"编辑{_IS}|谁编辑|责编|\beditors?\b|\bedited\b", _I),
    "publisher": re.compile(rf"出品(?:方|人|机构|单位)?{_IS}|谁出品"),
    "source": re.compile(
        rf"来自(?:哪|什么|何)|来源{_IS}|出处|出自(?:哪|什么|何)"
        r"|(?:发表|发布|刊登|刊发|刊载)(?:在|于)(?:哪(?!一?[天年日]|个月)|什么(?!时|日)|何(?![时日]))"
        r"|(?:哪个|哪家|哪些|什么)(?:媒体|网站|报纸|杂志|刊物|公众号)"
        r"|\b(?:source|outlet|publication|publisher|website|newspaper|magazine)s?\b(?!\s+dates?)"
        r"|\bwho published\b|\bcomes? from\b|\bcame from\b|\bpublished (?:in|by|on)\b(?!\s+\d)",
        _I,
    ),
    "date": re.compile(
        r"(?:发表|发布|刊登|刊发|刊出|出版|写)(?:于|在|的|是)?"
        r"(?:哪一?天|哪一?年|何时|什么时候|哪个月|几月|几号|什么日期|何日)"
        r"|(?:什么时候|何时|哪一?天|哪一?年|几月几[日号])(?:发表|发布|刊登|刊发|刊出|出版|写|发)"
        rf"|(?:发表|发布|刊发|刊登|出版)(?:日期|时间)|日期{_IS}"
        r"|\bwhen (?:was|were|did)\b.*\b(?:publish|post|writ|releas|print|appear|c[oa]me out)"
        r"|\bpublication dates?\b|\bpublished on\b|\b(?:what|which) (?:date|day)\b|\bdated?\b",
        _I,
    ),
    "title": re.compile(
        r"(?<![小副子])标题|题目|篇名|题为|(?:文章|篇)(?:的名字|的名称)?叫什么"
        r"|\btitled?\b|\bheadlines?\b|\bcalled\b",
        _I,
    ),
}
# When an article names no source, who produced it answers "where is it from" (and the other way
# round), and failing both the website it was taken from.
_STAND_INS: dict[FieldName, tuple[FieldName, ...]] = {
    "source": ("publisher", "site"),
    "publisher": ("source", "site"),
}
_ARTICLE = re.compile(
    r"文章|篇|本文|该文|此文|原文|稿件|报道|\b(?:article|story|stories|piece|post)s?\b", _I
)
_CONTENT = re.compile(
    r"提到|提及|谈到|说到|指出|认为|观点|看法|评价|引用|表示|(?<!名)称|说|文中"
    r"|(?:文章|报道|本文|原文|篇)[中里内]"
    r"|\b(?:say|says|said|mention\w*|according|discuss\w*|argu\w*|think\w*|believe\w*|claim\w*"
    r"|view\w*|opinion\w*|describ\w*|explain\w*|why|how)\b"
    r"|\bin (?:the|this|that|these|both|each)(?:\s+\w+)?\s+(?:article|story|piece|post)s?\b",
    _I,
)

_ALL = re.compile(
    r"两篇|二篇|几篇|各篇|每一?篇|所有|全部|分别|各自|各|这些|这两|那两"
    r"|\b(?:both|each|all|every|respectively|articles|stories|pieces|posts)\b",
    _I,
)
_NUMERALS = {**dict(zip("一二三四五六七八九", range(1, 10), strict=True)), "两": 2}
_ORDINAL_ZH = re.compile(r"第\s*([一二三四五六七八九\d]+)\s*篇|(首)篇|(最后|末)一?篇")
_ORDINALS_EN = {"first": 1, "1st": 1, "former": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3}
_ORDINAL_EN = re.compile(
    r"\b(first|1st|second|2nd|third|3rd|former|last|latter)\b"
    r"(?=(?:\s+\w+){0,2}?\s+(?:article|story|piece|post|one)s?\b)",
    _I,
)
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")
_MONTH = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月(?!\s*\d)")


@dataclass(frozen=True)
class MetaHit:
    """One answer: ``field`` of document ``doc``, which holds its offsets and its line's.

    ``asked`` is the field the question wants; ``field.name`` differs when a stand-in answers
    (the 出品 line for "来自哪个媒体" when the article names no source)."""

    asked: FieldName
    doc: str
    field: MetaField


def answer_about(question: str, index: SearchIndex) -> list[MetaHit] | None:
    """The metadata hits answering ``question``, or None when it is not about the articles'
    own metadata. An empty list means it is, but the chosen articles do not say."""
    asked = asked_fields(question)
    if not asked:
        return None
    docs = choose_documents(question, list(index.documents.values()))
    return [hit for name in asked for doc in docs for hit in _hits(doc, name)]


def asked_fields(question: str) -> list[FieldName]:
    """The fields a question about the articles asks for, in the order it names them; none
    when it names no article or reads like a question about their content."""
    if not _ARTICLE.search(question) or _CONTENT.search(question):
        return []
    found = {name: match.start() for name, cue in _ASKS.items() if (match := cue.search(question))}
    return sorted(found, key=found.__getitem__)


def choose_documents(question: str, docs: Sequence[StoredDocument]) -> list[StoredDocument]:
    """The articles a question points at, in document order: by date or year, by ordinal
    (第二篇, "the first article"), or else by a word of one title; all of them for 两篇/each
    or when nothing narrows the choice. Pointers that match nothing choose nothing."""
    chosen = set(range(len(docs)))
    dated = _by_date(question, docs)
    ordinal = _by_ordinal(question, len(docs))
    for pick in (dated, ordinal):
        if pick is not None:
            chosen &= pick
    if dated is None and ordinal is None and not _ALL.search(question):
        chosen &= _by_title(question, docs) or chosen
    return [doc for i, doc in enumerate(docs) if i in chosen]


def _by_date(question: str, docs: Sequence[StoredDocument]) -> set[int] | None:
    days = find_dates(question)
    months = [f"{year}-{int(month):02d}" for year, month in _MONTH.findall(question)]
    years = [y for y in _YEAR.findall(question) if not any(p.startswith(y) for p in days + months)]
    prefixes = (*days, *months, *years)
    if not prefixes:
        return None
    return {i for i, doc in enumerate(docs) if doc.date and doc.date.startswith(prefixes)}


def _by_ordinal(question: str, count: int) -> set[int] | None:
    picks: list[int] = []
    for number, first, last in _ORDINAL_ZH.findall(question):
        if last:
            picks.append(count)
        elif first:
            picks.append(1)
        else:
            picks.append(int(number) if number.isdigit() else _NUMERALS.get(number, 0))
    for word in _ORDINAL_EN.findall(question):
        picks.append(count if word.lower() in ("last", "latter") else _ORDINALS_EN[word.lower()])
    return {n - 1 for n in picks} if picks else None


def _by_title(question: str, docs: Sequence[StoredDocument]) -> set[int]:
    """Articles whose title holds a word of the question that not every title holds."""
    residue = question
    for cue in (*_ASKS.values(), _ARTICLE):
        residue = cue.sub(" ", residue)
    titles = [set(tokenize(doc.title)) for doc in docs]
    shared = set.intersection(*titles) if titles else set()
    words = {w for w in tokenize(residue) if len(w) > 1} - shared
    return {i for i, title in enumerate(titles) if words & title}


def _hits(doc: StoredDocument, asked: FieldName) -> list[MetaHit]:
    for name in (asked, *_STAND_INS.get(asked, ())):
        fields = _distinct(f for f in doc.meta if f.name == name)
        if fields:
            return [MetaHit(asked, doc.id, field) for field in fields]
    return []


def _distinct(fields: Iterable[MetaField]) -> list[MetaField]:
    """One field per value: a date given twice (dateline and byline) is one answer."""
    seen: dict[str, MetaField] = {}
    for field in fields:
        key = (find_date(field.value) if field.name == "date" else None) or field.value
        seen.setdefault(key, field)
    return list(seen.values())
