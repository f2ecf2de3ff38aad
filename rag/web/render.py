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

from rag.citations import MARKER, Answer, Citation
from rag.index import StoredDocument
from rag.web.assets import asset, template

MODE_LABELS = {"auto": "自动", "extractive": "摘录原文", "llm": "大模型生成"}
# Characters of article text shown on each side of a quote in the no-JS page.
CONTEXT_CHARS = 80


@dataclass(frozen=True)
class PageContext:
    """What the page needs to know about the server."""

    keys_required: bool
    llm: bool
    default_mode: str
    documents: int | None  # None while the index is still loading
    max_question_chars: int


@dataclass(frozen=True)
class Source:
    """A citation with the article's date and the words around the quote."""

    citation: Citation
    date: str | None
    before: str
    after: str


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def sources_for(answer: Answer, documents: Mapping[str, StoredDocument]) -> list[Source]:
    """The answer's citations with their context, for the page without JavaScript."""
    sources = []
    for c in answer.citations:
        doc = documents.get(c.doc)
        if doc is None:
            sources.append(Source(c, None, "", ""))
            continue
        sources.append(Source(c, doc.date, *_context(doc.text, c.start, c.end)))
    return sources


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
        conversation=turn,
        max_chars=context.max_question_chars,
        question=_e(question),
        mode_field=_mode_field(context),
        key_field=_key_field(context),
    )


def _library(documents: int | None) -> str:
    return "索引加载中…" if documents is None else f"已收录 {documents} 篇文章。"


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
        state = "" if answer.answerable else " is-unanswerable"
        parts.append(f'<div class="reply{state}">\n')
        if answer.rewritten_question:
            parts.append(f'<p class="rewrite">按“{_e(answer.rewritten_question)}”理解</p>\n')
        parts.append(f'<div class="answer">{_answer_html(answer, "t1")}</div>\n')
        if not answer.answerable:
            parts.append('<p class="notice">收录的文章里没有找到能回答这个问题的内容。</p>\n')
        if sources:
            parts.append(_sources_html(sources, "t1"))
        parts.append(f'<p class="meta">{_e(_meta(answer))}</p>\n</div>\n')
    parts.append("</article>\n")
    return "".join(parts)


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


def _sources_html(sources: Sequence[Source], turn: str) -> str:
    items = []
    for s in sources:
        c = s.citation
        date = f'<span class="date">{_e(s.date)}</span>' if s.date else ""
        before, after = _e(s.before), _e(s.after)
        items.append(
            f'<li id="{turn}-src-{c.id}"><span class="num">{c.id}</span><div>'
            f'<p class="source-head"><span class="source-title">{_e(c.title)}</span>{date}</p>'
            f'<blockquote class="quote">{before}<mark>{_e(c.quote)}</mark>{after}</blockquote>'
            "</div></li>"
        )
    return (
        '<section class="sources" aria-label="来源"><h2>来源</h2><ol>'
        + "".join(items)
        + "</ol></section>\n"
    )


def _meta(answer: Answer) -> str:
    parts = [MODE_LABELS.get(answer.mode, answer.mode)]
    if answer.fallback_reason:
        parts.append("大模型不可用，已改为摘录原文")
    total = answer.timings.get("total")
    if total is not None:
        parts.append(f"用时 {total:.2f} 秒")
    return " · ".join(parts)
