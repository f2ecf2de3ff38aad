"""OpenAI-compatible ``/v1/models`` and ``/v1/chat/completions`` (plain and streaming).

The official ``openai`` client works unchanged: the answer is the message content with
``[n]`` markers, and a top-level ``citations`` array (in the last chunk when streaming)
carries the quotes and offsets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator, Iterator
from typing import Any

from fastapi import APIRouter

from rag.answer import Answerer, Delta
from rag.api.deps import AnswererDep, MetricsDep, ServiceDep, SettingsDep, check_question
from rag.api.metrics import Metrics
from rag.api.schemas import ChatRequest, ModelCard, ModelList
from rag.api.streaming import UpstreamStreamingResponse, sentence_pieces
from rag.citations import Answer
from rag.conversation import standalone_question
from rag.errors import InvalidInputError, NotFoundError, RagError
from rag.llm import Language, Upstream, reply_language, requested_language
from rag.service import Service

router = APIRouter(prefix="/v1", tags=["openai"])

BASE_MODEL = "qianwen-rag"
STARTED = int(time.time())


def model_modes(service: Service) -> dict[str, str | None]:
    """Model ids clients may send, and the answer mode each one selects."""
    models: dict[str, str | None] = {BASE_MODEL: None, f"{BASE_MODEL}-extractive": "extractive"}
    if service.llm is not None:
        models[f"{BASE_MODEL}-llm"] = "llm"
        models[f"{BASE_MODEL}-auto"] = "auto"
    return models


@router.get("/models", response_model=ModelList, summary="Models (answer modes) on offer")
def list_models(service: ServiceDep) -> ModelList:
    return ModelList(data=[ModelCard(id=m, created=STARTED) for m in model_modes(service)])


def _tokens(text: str) -> int:
    """A rough token count for ``usage`` (CJK characters count one each, words one each)."""
    cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    return cjk + len("".join(ch if ord(ch) < 0x3400 else " " for ch in text).split())


def _question(body: ChatRequest, service: Service, settings: Any) -> tuple[str, str | None, str]:
    """(question to answer, rewrite if any, mode) from the conversation."""
    modes = model_modes(service)
    if body.model not in modes:
        raise NotFoundError(
            f"model {body.model!r} does not exist; GET /v1/models lists: {', '.join(modes)}"
        )
    users = [m.text() for m in body.messages if m.role == "user"]
    if not users or body.messages[-1].role != "user":
        raise InvalidInputError("the last message must be a user message with the question")
    question = check_question(users[-1], settings)
    history = [u.strip() for u in users[:-1] if u.strip()]
    standalone, rewrite = standalone_question(history, question, service.llm)
    mode = body.mode or modes[body.model] or service.answerer.default_mode
    return standalone, rewrite, mode


def _language(body: ChatRequest) -> Language | None:
    """The answer language a system (or developer) message asks for, if any."""
    system = "\n".join(m.text() for m in body.messages if m.role in ("system", "developer"))
    return requested_language(system) if system else None


def _in_language(
    events: Iterator[Delta | Answer], language: Language | None
) -> Generator[Delta | Answer]:
    """``events``, each one produced with :func:`reply_language` set (workers pull them one by
    one in whatever thread is free, so the setting travels with every pull). Closing this
    closes ``events`` at once, as a disconnect needs."""
    try:
        while True:
            with reply_language(language):
                event = next(events, None)
            if event is None:
                return
            yield event
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _extras(answer: Answer) -> dict[str, Any]:
    data = answer.as_dict()
    return {
        "citations": data["citations"],
        "rag": {
            k: data[k]
            for k in (
                "answerable",
                "mode",
                "route",
                "route_reason",
                "fallback_reason",
                "unsupported",
                "faithfulness",
                "rewritten_question",
                "timings",
                "outcome",
                "confidence",
                "short_answer",
                "related",
            )
        },
    }


@router.post(
    "/chat/completions", summary="Chat Completions with cited answers", response_model=None
)
def chat_completions(
    body: ChatRequest,
    service: ServiceDep,
    answerer: AnswererDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> dict[str, Any] | UpstreamStreamingResponse:
    question, rewrite, mode = _question(body, service, settings)
    language = _language(body)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if body.stream:
        # The LLM requests this answer opens register here, so a disconnect can cut them off.
        upstream = Upstream()
        events = _in_language(
            answerer.stream(question, mode, body.top_k),  # type: ignore[arg-type]
            language,
        )
        with upstream.active():
            first = next(events)  # validation errors surface here, before any byte is sent
        return UpstreamStreamingResponse(
            _sse(first, events, body.model, completion_id, created, rewrite, metrics),
            upstream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    with reply_language(language):
        answer = answerer.answer(question, mode, body.top_k)  # type: ignore[arg-type]
    answer.rewritten_question = rewrite
    metrics.observe_answer(answer)
    prompt = _tokens(" ".join(m.text() for m in body.messages))
    completion = _tokens(answer.answer)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        **_extras(answer),
    }


def _chunk(
    cid: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
    **extra: Any,
) -> str:
    payload = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **extra,
    }
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _sse(
    first: Delta | Answer,
    events: Iterator[Delta | Answer],
    model: str,
    cid: str,
    created: int,
    rewrite: str | None,
    metrics: Metrics,
) -> Generator[str, None, None]:
    """Server-sent events in OpenAI's chunk format, ending with citations and [DONE]."""
    yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
    try:
        for event in _chain(first, events):
            if isinstance(event, Delta):
                for piece in sentence_pieces(event.text):
                    yield _chunk(cid, created, model, {"content": piece})
            else:
                event.rewritten_question = rewrite
                metrics.observe_answer(event)
                yield _chunk(cid, created, model, {}, "stop", **_extras(event))
    except RagError as exc:  # headers are gone: report in-band, the way OpenAI does
        error = {"error": {"message": exc.message, "type": "api_error", "code": exc.code}}
        yield f"data: {json.dumps(error, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


def _chain(first: Delta | Answer, rest: Iterator[Delta | Answer]) -> Iterator[Delta | Answer]:
    yield first
    yield from rest


__all__ = ["Answerer", "router"]
