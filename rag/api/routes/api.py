"""Plain JSON endpoints: ask, search and the documents (for highlighting citations)."""

from __future__ import annotations

from fastapi import APIRouter

from rag.api.deps import AnswererDep, MetricsDep, SettingsDep, check_question
from rag.api.schemas import (
    AnswerOut,
    AskRequest,
    DocumentOut,
    DocumentSummary,
    HitOut,
    SearchOut,
    SearchRequest,
)
from rag.errors import NotFoundError

router = APIRouter(prefix="/api", tags=["api"])


@router.post("/ask", response_model=AnswerOut, summary="Answer a question with citations")
def ask(
    body: AskRequest, answerer: AnswererDep, settings: SettingsDep, metrics: MetricsDep
) -> AnswerOut:
    question = check_question(body.question, settings)
    answer = answerer.answer(question, body.mode, body.top_k)
    metrics.observe_answer(answer)
    return AnswerOut.model_validate(answer.as_dict())


@router.post("/search", response_model=SearchOut, summary="Retrieve passages")
def search(body: SearchRequest, answerer: AnswererDep, settings: SettingsDep) -> SearchOut:
    query = check_question(body.query, settings, "query")
    hits = answerer.engine.retriever.retrieve(query, body.top_k)
    return SearchOut(query=query, hits=[HitOut.model_validate(h.as_dict()) for h in hits])


@router.get("/documents", response_model=list[DocumentSummary], summary="List the articles")
def documents(answerer: AnswererDep) -> list[DocumentSummary]:
    index = answerer.engine.index
    counts = {d.id: d.chunks for d in index.manifest.documents}
    return [
        DocumentSummary(id=d.id, title=d.title, date=d.date, chunks=counts.get(d.id, 0))
        for d in index.documents.values()
    ]


@router.get(
    "/documents/{doc_id:path}",
    response_model=DocumentOut,
    summary="One article's original text (citation offsets index into it)",
    responses={404: {"description": "unknown document"}},
)
def document(doc_id: str, answerer: AnswererDep) -> DocumentOut:
    index = answerer.engine.index
    doc = index.documents.get(doc_id)
    if doc is None:
        raise NotFoundError(f"no document {doc_id!r}")
    chunks = next((d.chunks for d in index.manifest.documents if d.id == doc_id), 0)
    return DocumentOut(id=doc.id, title=doc.title, date=doc.date, chunks=chunks, text=doc.text)
