"""Answer a question with cited evidence: extractive, through an LLM, or routed between them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from rag.answering.parts import Judged, judge
from rag.citations import Answer, not_found
from rag.engine import Engine
from rag.errors import InvalidInputError, LLMError
from rag.evidence import ScoredSentence, score_sentences
from rag.extractive import answer_by_extraction
from rag.llm import ChatClient, build_messages
from rag.question import QuestionInfo, analyse, sub_questions
from rag.retrieval import Hit, Retrieval
from rag.routing import route
from rag.verify import Verifier, is_abstention, joiner_for, split_reply

log = logging.getLogger(__name__)

Mode = Literal["auto", "extractive", "llm"]
MODES: tuple[str, ...] = ("auto", "extractive", "llm")
# Chunks whose sentences compete as evidence (more than the k shown: cheap, and recall matters).
EVIDENCE_CHUNKS = 8


@dataclass
class Prepared:
    """Everything computed before the answer is written; shared by the streaming path."""

    info: QuestionInfo
    retrieval: Retrieval
    scored: list[ScoredSentence]
    started: float
    per_part: list[list[ScoredSentence]]  # for "A?B?" questions: evidence per sub-question
    pool: list[Hit]  # every chunk whose sentences compete as evidence (more than the k shown)


@dataclass(frozen=True)
class Delta:
    """A piece of answer text, streamed as soon as it is final."""

    text: str


class Answerer:
    """Turns a question into an :class:`Answer`; holds the engine and the optional LLM."""

    def __init__(self, engine: Engine, llm: ChatClient | None = None) -> None:
        self.engine = engine
        self.llm = llm

    @property
    def default_mode(self) -> Mode:
        return "auto" if self.llm is not None else "extractive"

    def prepare(self, question: str, k: int | None = None) -> Prepared:
        started = time.perf_counter()
        question = question.strip()
        if not question:
            raise InvalidInputError("the question is empty")
        info = analyse(question)
        k = k or self.engine.settings.top_k
        retrieval = self.engine.retriever.search(question, max(k, EVIDENCE_CHUNKS))
        t0 = time.perf_counter()
        rows = [h.row for h in retrieval.hits]
        index = self.engine.index
        scored = score_sentences(index, info, retrieval.query_vector, rows)
        per_part = []
        parts = sub_questions(question)
        if len(parts) > 1:
            for part in parts:
                part_vector = self.engine.retriever.query_vector(part)
                per_part.append(score_sentences(index, analyse(part), part_vector, rows))
        retrieval.timings["evidence"] = time.perf_counter() - t0
        pool = retrieval.hits
        retrieval.hits = retrieval.hits[:k]
        return Prepared(info, retrieval, scored, started, per_part, pool)

    def answer(self, question: str, mode: Mode | None = None, k: int | None = None) -> Answer:
        """The full answer object (non-streaming)."""
        result: Answer | None = None
        for event in self.stream(question, mode, k):
            if isinstance(event, Answer):
                result = event
        assert result is not None
        return result

    def stream(
        self, question: str, mode: Mode | None = None, k: int | None = None
    ) -> Iterator[Delta | Answer]:
        """Text deltas as they become final, then the complete verified :class:`Answer`."""
        mode = mode or self.default_mode
        if mode not in MODES:
            raise InvalidInputError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        prepared = self.prepare(question, k)
        chosen: str = mode
        route_reason: str | None = None
        judged: Judged | None = None
        if mode == "auto":
            decision = route(prepared.info, prepared.scored)
            chosen, route_reason = decision.mode, decision.reason
            if chosen == "llm":
                # Nothing for the LLM to write from: say so by extraction, without a round trip.
                judged = self._judge(prepared)
                if judged.assessment.outcome != "answered":
                    reason = judged.assessment.reason
                    chosen, route_reason = "extractive", f"not answerable: {reason}"
            if self.llm is None and chosen == "llm":
                chosen, route_reason = "extractive", f"{decision.reason}; no LLM configured"
        fallback = None
        if chosen == "llm":
            if self.llm is None:
                fallback = "no LLM configured (set RAG_LLM_BASE_URL and RAG_LLM_MODEL)"
            else:
                try:
                    yield from self._llm(prepared, mode, route_reason)
                    return
                except LLMError as exc:
                    fallback = exc.message
                    log.warning("llm fallback", extra={"reason": fallback})
        answer = self._extractive(prepared, mode, route_reason, fallback, judged)
        if mode == "auto":
            answer.route = chosen  # the route taken, even when it fell back
        for piece in _pieces(answer.answer):
            yield Delta(piece)
        yield answer

    def _judge(self, p: Prepared) -> Judged:
        second_look = self.engine.settings.second_look
        return judge(
            self.engine.index, p.info, p.scored, p.pool, p.per_part, second_look=second_look
        )

    def _extractive(
        self,
        p: Prepared,
        mode: str,
        route_reason: str | None,
        fallback: str | None,
        judged: Judged | None = None,
    ) -> Answer:
        t0 = time.perf_counter()
        judged = judged or self._judge(p)
        answer = answer_by_extraction(self.engine.index, p.info, judged.assessment, judged.parts)
        answer.route = "extractive" if mode == "auto" else None
        answer.route_reason = route_reason
        answer.fallback_reason = fallback
        answer.timings = dict(p.retrieval.timings)
        answer.timings["compose"] = time.perf_counter() - t0
        answer.timings["total"] = time.perf_counter() - p.started
        return answer

    def _llm(self, p: Prepared, mode: str, route_reason: str | None) -> Iterator[Delta | Answer]:
        """Stream the LLM reply sentence by sentence, each verified before it is sent."""
        assert self.llm is not None
        hits = p.retrieval.hits
        messages = build_messages(p.info.text, hits, self.engine.index, not_found(p.info.language))
        verifier = Verifier(hits, self.engine.index, self.engine.embedder, p.info.text)
        t0 = time.perf_counter()
        reply = ""
        done = 0  # reply sentences already verified
        sent = ""
        interrupted = None
        try:
            for delta in self.llm.stream(messages):
                reply += delta
                sentences = split_reply(reply)
                # All but the last sentence are complete (a marker may still follow the last).
                for text, cited in sentences[done : len(sentences) - 1]:
                    piece = verifier.check(text, cited)
                    if piece and not is_abstention(reply):
                        piece = (joiner_for(reply) if sent else "") + piece
                        sent += piece
                        yield Delta(piece)
                done = max(done, len(sentences) - 1)
        except LLMError as exc:
            if not sent:
                raise  # nothing shown yet: the caller answers extractively instead
            # Text already streamed cannot be taken back: end with the verified part.
            interrupted = f"the LLM stopped mid-answer ({exc.message}); kept the verified part"
            reply = ""
        t1 = time.perf_counter()
        timings = dict(p.retrieval.timings)
        timings["llm"] = t1 - t0
        if is_abstention(reply) and not sent:
            answer = self._abstained(p, mode, route_reason, timings)
        else:
            for text, cited in split_reply(reply)[done:]:
                piece = verifier.check(text, cited)
                if piece:
                    piece = (joiner_for(reply) if sent else "") + piece
                    sent += piece
                    yield Delta(piece)
            checked = verifier.result(joiner_for(reply))
            if not checked.citations:
                raise LLMError("the LLM reply had no sentence supported by the passages")
            answer = Answer(
                question=p.info.text,
                answer=sent,
                citations=checked.citations,
                answerable=True,
                mode="llm",
                route="llm" if mode == "auto" else None,
                route_reason=route_reason,
                unsupported=checked.unsupported,
                faithfulness=checked.faithfulness,
                fallback_reason=interrupted,
                timings=timings,
            )
        timings["verify"] = time.perf_counter() - t1
        answer.timings["total"] = time.perf_counter() - p.started
        if not sent:
            yield Delta(answer.answer)
        yield answer

    def _abstained(
        self, p: Prepared, mode: str, route_reason: str | None, timings: dict[str, float]
    ) -> Answer:
        return Answer(
            question=p.info.text,
            answer=not_found(p.info.language),
            citations=[],
            answerable=False,
            mode="llm",
            route="llm" if mode == "auto" else None,
            route_reason=route_reason,
            faithfulness=None,
            timings=timings,
        )


def _pieces(text: str) -> Iterator[str]:
    """Split an answer after each citation marker so clients can render it progressively."""
    start = 0
    for i, ch in enumerate(text):
        if ch == "]":
            yield text[start : i + 1]
            start = i + 1
    if start < len(text):
        yield text[start:]
