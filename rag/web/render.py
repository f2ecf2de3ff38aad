"""Fill in the page template, with the answer rendered on the server for the no-JS form.

Every value that comes from a question, an answer or an article passes through :func:`_e`
(``html.escape``) here; the template holds fixed markup only. The markup mirrors what
``app.js`` builds, so one stylesheet serves both.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Template

from rag.citations import MARKER, Answer, Citation, Outcome, ShortAnswer
from rag.index import StoredDocument
from rag.web.assets import asset, template

REPLY_STATES: dict[Outcome, str] = {
    "answered": "",
    "related": " is-related",
    "none": " is-unanswerable",
}
MODE_LABELS = {"auto": "自动", "extractive": "摘录原文", "llm": "大模型生成"}
# Said under the answer text when the articles do not answer; "related" lists passages after it.
NOTICES: dict[Outcome, str] = {
    "related": "以下是文章里与问题最相关的段落，仅供参考，它们并不直接回答这个问题：",
    "none": "收录的文章里没有找到能回答这个问题的内容。",
}
SOURCE_HEADINGS: dict[Outcome, str] = {"answered": "来源", "related": "相关段落"}
# Articles listed on the start page (newest first); app.js INTRO_ARTICLES says the same.
INTRO_ARTICLES = 10
# Characters of article text shown on each side of a quote in the no-JS page.
CONTEXT_CHARS = 80


@dataclass(frozen=True)
class ArticleRow:
    """One article as the start page lists it."""

    id: str
    title: str
    date: str | None
    chunks: int
    format: str | None = None
    encoding: str | None = None
    author: str | None = None


@dataclass(frozen=True)
class PageContext:
    """What the page needs to know about the server."""

    keys_required: bool
    llm: bool
    default_mode: str
    documents: int | None  # None while the index is still loading
    max_question_chars: int
    articles: tuple[ArticleRow, ...] = ()
    examples: tuple[str, ...] = ()
    admin_keys: bool = False  # changes need a key even when asking does not


@dataclass(frozen=True)
class Source:
    """A citation with the article's date and the words around the quote.

    ``short`` marks the short answer inside the quote (offsets into ``citation.quote``).
    """

    citation: Citation
    date: str | None
    before: str
    after: str
    short: tuple[int, int] | None = None


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def outcome_of(answer: Answer) -> Outcome:
    """The answer's outcome; an abstaining answer from a mode that predates outcomes is "none"."""
    if answer.outcome == "answered" and not answer.answerable:
        return "none"
    return answer.outcome


def sources_for(answer: Answer, documents: Mapping[str, StoredDocument]) -> list[Source]:
    """What the page without JavaScript lists under the answer, each quote in its context.

    Answered: the citations, the one holding the short answer marking it (or, should no
    citation hold it, a source of its own numbered 0). Related: the related passages.
    """
    outcome = outcome_of(answer)
    if outcome == "none":
        return []
    if outcome == "related":
        return [_source(c, documents) for c in answer.related]
    short = answer.short_answer
    holder = _holder(answer.citations, short) if short else None
    sources = [_source(c, documents, short if c is holder else None) for c in answer.citations]
    if short is not None and holder is None:
        title = documents[short.doc].title if short.doc in documents else short.doc
        own = Citation(0, short.doc, title, short.text, short.start, short.end)
        sources.append(_source(own, documents, short))
    return sources


def _holder(citations: Sequence[Citation], short: ShortAnswer) -> Citation | None:
    """The citation whose quote contains the short answer."""
    for c in citations:
        if c.doc == short.doc and c.start <= short.start and short.end <= c.end:
            return c
    return None


def _source(
    c: Citation, documents: Mapping[str, StoredDocument], short: ShortAnswer | None = None
) -> Source:
    span = (short.start - c.start, short.end - c.start) if short else None
    doc = documents.get(c.doc)
    if doc is None:
        return Source(c, None, "", "", span)
    return Source(c, doc.date, *_context(doc.text, c.start, c.end), span)


def _context(text: str, start: int, end: int) -> tuple[str, str]:
    """The words before and after a quote, within its paragraph and ``CONTEXT_CHARS``."""
    before = text[max(0, start - CONTEXT_CHARS) : start]
    after = text[end : end + CONTEXT_CHARS]
    cut_before, cut_after = before.rfind("\n"), after.find("\n")
    if cut_before >= 0:
        before = before[cut_before + 1 :]
    elif start > CONTEXT_CHARS:
        before = "…" + before
    if cut_after >= 0:
        after = after[:cut_after]
    elif end + CONTEXT_CHARS < len(text):
        after += "…"
    return before.lstrip(), after.rstrip()


def render_page(
    context: PageContext,
    *,
    question: str = "",
    asked: str | None = None,
    answer: Answer | None = None,
    sources: Sequence[Source] = (),
    error: str | None = None,
) -> str:
    """The whole page; with ``asked`` it shows that question's answer (or ``error``)."""
    turn = _turn(asked, answer, sources, error) if asked is not None else ""
    css, js = asset("app.css"), asset("app.js")
    assert css is not None and js is not None
    return Template(template()).substitute(
        css=_e(css.url),
        js=_e(js.url),
        keys="on" if context.keys_required else "off",
        llm="on" if context.llm else "off",
        default_mode=_e(context.default_mode),
        intro_hidden=" hidden" if turn else "",
        library=_e(_library(context.documents)),
        articles=_articles_html(context.articles, context.documents),
        examples=_examples_html(context.examples),
        admin="on" if context.admin_keys else "off",
        conversation=turn,
        max_chars=context.max_question_chars,
        question=_e(question),
        mode_field=_mode_field(context),
        key_field=_key_field(context),
    )


def _library(documents: int | None) -> str:
    return "索引加载中…" if documents is None else f"已收录 {documents} 篇文章。"


def article_meta(row: ArticleRow) -> str:
    """Date, chunk count, format and encoding, as app.js ``articleMeta`` writes them."""
    parts = [row.date or "无日期", f"{row.chunks} 段"]
    parts += [value for value in (row.format, row.encoding) if value]
    return " · ".join(parts)


def _articles_html(articles: Sequence[ArticleRow], total: int | None = None) -> str:
    """The newest of the ``total`` articles (the articles view lists them all); the same
    markup as app.js."""
    items = "".join(
        f'<li data-id="{_e(a.id)}"><span class="article-title">{_e(a.title)}</span>'
        f'<span class="article-meta">{_e(article_meta(a))}</span></li>'
        for a in articles[:INTRO_ARTICLES]
    )
    more = (len(articles) if total is None else total) - INTRO_ARTICLES
    if more > 0:
        items += f'<li class="more">另有 {more} 篇</li>'
    return f'<ul class="article-list" id="article-list">{items}</ul>'


def _examples_html(examples: Sequence[str]) -> str:
    """Example questions as buttons of a form that posts to /ask: they work without JavaScript."""
    if not examples:
        return ""
    buttons = "".join(
        f'<button type="submit" class="example" name="question" value="{_e(q)}">{_e(q)}</button>'
        for q in examples
    )
    return (
        '<form class="examples" id="examples" method="post" action="/ask" accept-charset="utf-8">'
        f'<p class="examples-label">可以这样问：</p>{buttons}</form>'
    )


def _mode_field(context: PageContext) -> str:
    if not context.llm:
        return ""
    options = "".join(
        f'<option value="{mode}"{" selected" if mode == context.default_mode else ""}>'
        f"{label}</option>"
        for mode, label in MODE_LABELS.items()
    )
    return (
        '      <label class="mode">回答方式 '
        f'<select id="mode" name="mode">{options}</select></label>\n'
    )


def _key_field(context: PageContext) -> str:
    if not context.keys_required:
        return ""
    # Inside <noscript>: with JavaScript the page asks for the key in a dialog instead.
    return (
        '      <noscript><label class="key-field">API 密钥 <input type="password" name="key" '
        'autocomplete="off" required></label></noscript>\n'
    )


def _turn(asked: str, answer: Answer | None, sources: Sequence[Source], error: str | None) -> str:
    parts = ['<article class="turn" id="t1">\n']
    if asked:
        parts.append(f'<div class="question"><p>{_e(asked)}</p></div>\n')
    if answer is None:
        message = _e(error or "出错了。")
        parts.append(
            f'<div class="reply is-error"><p class="notice" role="alert">{message}</p></div>\n'
        )
    else:
        outcome = outcome_of(answer)
        parts.append(f'<div class="reply{REPLY_STATES[outcome]}">\n')
        if answer.rewritten_question:
            parts.append(f'<p class="rewrite">按“{_e(answer.rewritten_question)}”理解</p>\n')
        if outcome == "answered" and answer.short_answer is not None:
            parts.append(_short_html(answer.short_answer, sources, "t1"))
        parts.append(f'<div class="answer">{_answer_html(answer, "t1")}</div>\n')
        if outcome != "answered":
            parts.append(f'<p class="notice">{NOTICES[outcome]}</p>\n')
        if sources:
            parts.append(_sources_html(sources, "t1", outcome))
        parts.append(f'<p class="meta">{_e(_meta(answer))}</p>\n</div>\n')
    parts.append("</article>\n")
    return "".join(parts)


def _short_html(short: ShortAnswer, sources: Sequence[Source], turn: str) -> str:
    """The short answer in bold, linked to the source that holds it."""
    holder = next((s.citation.id for s in sources if s.short is not None), None)
    text = f"<strong>{_e(short.text)}</strong>"
    if holder is not None:
        text = f'<a class="short-link" href="#{turn}-src-{holder}">{text}</a>'
    resolved = ""
    if short.resolved:
        resolved = f' <span class="resolved">即 {_e(short.resolved)}</span>'
    return f'<p class="short-answer"><span class="short-label">答</span>{text}{resolved}</p>\n'


def _answer_html(answer: Answer, turn: str) -> str:
    """Escaped answer text with each known ``[n]`` marker linked to its source."""
    ids = {c.id for c in answer.citations}
    out, last = [], 0
    for match in MARKER.finditer(answer.answer):
        out.append(_e(answer.answer[last : match.start()]))
        n = int(match.group(1))
        if n in ids:
            out.append(f'<a class="cite" href="#{turn}-src-{n}">[{n}]</a>')
        else:
            out.append(_e(match.group(0)))
        last = match.end()
    out.append(_e(answer.answer[last:]))
    return "".join(out)


def _sources_html(sources: Sequence[Source], turn: str, outcome: Outcome) -> str:
    heading = SOURCE_HEADINGS.get(outcome, "来源")
    kind = "rel" if outcome == "related" else "src"
    items = []
    for s in sources:
        c = s.citation
        number = str(c.id) if c.id else "答"
        date = f'<span class="date">{_e(s.date)}</span>' if s.date else ""
        before, after = _e(s.before), _e(s.after)
        items.append(
            f'<li id="{turn}-{kind}-{c.id}"><span class="num">{number}</span><div>'
            f'<p class="source-head"><span class="source-title">{_e(c.title)}</span>{date}</p>'
            f'<blockquote class="quote">{before}<mark>{_quote_html(s)}</mark>{after}</blockquote>'
            "</div></li>"
        )
    css = "sources related" if outcome == "related" else "sources"
    return (
        f'<section class="{css}" aria-label="{heading}"><h2>{heading}</h2><ol>'
        + "".join(items)
        + "</ol></section>\n"
    )


def _quote_html(source: Source) -> str:
    """The escaped quote, with the short answer in it (if any) in bold."""
    quote = source.citation.quote
    if source.short is None:
        return _e(quote)
    start, end = source.short
    return (
        f'{_e(quote[:start])}<strong class="span">{_e(quote[start:end])}</strong>{_e(quote[end:])}'
    )


def _meta(answer: Answer) -> str:
    parts = [MODE_LABELS.get(answer.mode, answer.mode)]
    if answer.fallback_reason:
        parts.append("大模型不可用，已改为摘录原文")
    if answer.confidence is not None:
        parts.append(f"置信度 {answer.confidence:.2f}")
    total = answer.timings.get("total")
    if total is not None:
        parts.append(f"用时 {total:.2f} 秒")
    return " · ".join(parts)
