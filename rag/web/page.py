"""The page's two server-side jobs: describe the server to the page, and answer the plain form.

The form (``POST /ask``) is how the page works without JavaScript: the question arrives as a
form field, the answer comes back as a whole page with its citations and quoted passages.
A form cannot send an ``Authorization`` header, so when API keys are on it carries the key
in a ``key`` field, checked here in constant time like the header.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from rag.answer import MODES
from rag.api.deps import check_question
from rag.citations import Answer
from rag.errors import InvalidInputError, RagError
from rag.index import SearchIndex
from rag.service import Service
from rag.settings import Settings
from rag.web.render import INTRO_ARTICLES, ArticleRow, PageContext, render_page, sources_for

EXAMPLE_ARTICLES = 3  # the newest articles get an example question each


@dataclass(frozen=True)
class FormResult:
    status: int
    html: str
    answer: Answer | None = None


def page_context(service: Service, settings: Settings) -> PageContext:
    index = service.answerer.engine.index if service.ready else None
    articles = article_rows(index) if index is not None else ()
    return PageContext(
        keys_required=bool(settings.api_key_list),
        llm=service.llm is not None,
        default_mode="auto" if service.llm is not None else "extractive",
        documents=len(index.documents) if index is not None else None,
        max_question_chars=settings.max_question_chars,
        articles=articles,
        examples=example_questions(articles),
        admin_keys=bool(settings.admin_key_list),
    )


def article_rows(index: SearchIndex, count: int = INTRO_ARTICLES) -> tuple[ArticleRow, ...]:
    """The ``count`` newest served articles (undated last), read from their info lines: the
    page shows only these, so no article text is decoded."""
    infos = index.documents.infos()
    rows = (infos[int(n)] for n in index.documents.newest_first()[:count])
    return tuple(
        ArticleRow(
            id=info.id,
            title=info.title,
            date=info.date,
            chunks=info.chunks,
            format=info.format,
            encoding=info.encoding,
            author=info.author,
        )
        for info in rows
    )


def example_questions(articles: tuple[ArticleRow, ...]) -> tuple[str, ...]:
    """Questions any article answers, made from the newest titles (never written per article):
    what it says, and for the newest with a byline who wrote it."""
    newest = articles[:EXAMPLE_ARTICLES]
    questions = [f"《{a.title}》讲了什么？" for a in newest]
    signed = next((a for a in newest if a.author), None)
    if signed is not None:
        questions.append(f"《{signed.title}》这篇文章的作者是谁？")
    return tuple(questions)


def key_accepted(keys: list[str], form_key: str, authorization: str) -> bool:
    """True when the form's key or a bearer header matches one of ``keys``."""
    bearer = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
    candidates = [k.encode() for k in (form_key.strip(), bearer) if k]
    # Compare with every key (no early exit), as the middleware does.
    matches = [hmac.compare_digest(c, k.encode()) for c in candidates for k in keys]
    return any(matches)


def answer_form(
    service: Service,
    settings: Settings,
    question: str,
    mode: str = "",
    key: str = "",
    authorization: str = "",
) -> FormResult:
    """Answer one form submission; every outcome, errors included, is a whole page."""
    context = page_context(service, settings)
    asked = question.strip()
    keys = settings.api_key_list + settings.admin_key_list  # admins may ask too
    if settings.api_key_list and not key_accepted(keys, key, authorization):
        message = "需要有效的 API 密钥：请在表单里填写。"
        return FormResult(401, render_page(context, question=question, asked=asked, error=message))
    try:
        text = check_question(question, settings)
        if mode and mode not in MODES:
            raise InvalidInputError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        answerer = service.answerer
        answer = answerer.answer(text, mode or None)  # type: ignore[arg-type]
    except RagError as exc:
        message = f"出错了：{exc.message}"
        return FormResult(
            exc.status, render_page(context, question=question, asked=asked, error=message)
        )
    sources = sources_for(answer, answerer.engine.index.documents)
    html = render_page(context, asked=text, answer=answer, sources=sources)
    return FormResult(200, html, answer)
