"""Plain JSON endpoints: ask and search (the articles are in :mod:`.documents`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from rag.api.deps import AnswererDep, MetricsDep, SettingsDep, check_question
from rag.api.schemas import (
    AnswerOut,
    AskRequest,
    HitOut,
    SearchOut,
    SearchRequest,
)

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
def search(body: SearchRequest, answerer: AnswererDep, settings: SettingsDep) -> Response:
    query = check_question(body.query, settings, "query")
    hits = answerer.engine.retriever.retrieve(query, body.top_k)
    out = SearchOut(query=query, hits=[HitOut.model_validate(h.as_dict()) for h in hits])
    # Serialised here, once: returned as the model, FastAPI would validate it again against
    # response_model and encode it through jsonable_encoder (the schema is still SearchOut).
    return Response(out.model_dump_json(), media_type="application/json")
