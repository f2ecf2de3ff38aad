"""Chat with any OpenAI-compatible server (vLLM, Ollama, SGLang, llama.cpp) via the openai SDK.

The server is outside our control, so nothing it sends may escape as anything but an
:class:`~rag.errors.LLMError` whose message we wrote: a status and a short cause, never the
server's own text (a 401 body may echo the key back) and never the exception chain. The
answer pipeline turns that error into the extractive answer.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import openai

from rag.citations import not_found as not_found_text
from rag.errors import LLMError
from rag.index import SearchIndex
from rag.question import Language, detect_language
from rag.retrieval import Hit
from rag.settings import Settings

# The SDK refuses to run without a key; local servers ignore this placeholder. A configured
# RAG_LLM_API_KEY replaces it.
PLACEHOLDER_KEY = "no-key-configured"
# The SDK's timeout bounds each network read; a server that drips a token every few seconds
# would pass that forever, so a whole reply gets this many timeouts' worth of time at most.
REPLY_BUDGET = 4

SYSTEM_PROMPT = (
    "You answer questions about news articles using ONLY the numbered passages given. "
    "Write 1-3 short sentences {language}. After every sentence put the "
    "number of the passage that supports it in square brackets, like [1] or [2]. "
    "{copy} "
    "If the passages do not contain the answer, reply only: {not_found}"
)
# (where, copy rule, reminder after the question) per reply language. The passages are Chinese;
# "in the language of the question" alone got Chinese replies to English questions from small
# models, so English is named and repeated after the question. A Chinese question answered in
# Chinese gets the prompt as it always was.
LANGUAGE_RULES = {
    "question": ("in the language of the question",
                 "Copy names and numbers exactly as the passages write them.", ""),
    "zh": ("in Chinese (简体中文)", "Copy names and numbers exactly as the passages write them.",
           "请用中文回答。"),
    "en": ("in English, translating what the passages say (do not reply in Chinese)",
           "Keep numbers exact; translate names, or keep them as the passages write them.",
           "Answer in English."),
}  # fmt: skip
# A system message asking for a language ("Answer in English", "请用中文回答").
_ASKS_EN = re.compile(
    r"\b(?:answer|reply|respond|write|speak)\w*\b[^.\n]{0,40}\bin english\b|英文|英语", re.I
)
_ASKS_ZH = re.compile(
    r"\b(?:answer|reply|respond|write|speak)\w*\b[^.\n]{0,40}\bin (?:chinese|mandarin)\b"
    r"|中文|汉语|普通话",
    re.I,
)

STATUS_CAUSES = {
    400: "request rejected",
    401: "authentication failed",
    403: "access denied",
    404: "model or endpoint not found",
    408: "server timed out",
    413: "request too large",
    422: "request rejected",
    429: "rate limited",
}


class ChatClient(Protocol):
    """The one call answer generation needs; lets tests and servers vary behind it."""

    model: str

    def complete(self, messages: Sequence[dict[str, str]]) -> str: ...

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]: ...


class Upstream:
    """The LLM responses one piece of work has open, so another thread can cut them off.

    A web client that disconnects mid-stream leaves the worker thread blocked on the LLM's
    socket; closing an httpx response from another thread does not wake that read, but
    shutting the socket down does, and the blocked read then fails as an LLMError.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self.cancelled = False

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """LLM requests made inside this block register here (thread- and task-local)."""
        token = _UPSTREAM.set(self)
        try:
            yield
        finally:
            _UPSTREAM.reset(token)

    def add(self, response: Any) -> None:
        with self._lock:
            self._open.append(response)
            cancelled = self.cancelled
        if cancelled:
            _shutdown(response)

    def discard(self, response: Any) -> None:
        with self._lock:
            if response in self._open:
                self._open.remove(response)

    def cancel(self) -> None:
        """Abort every open response now; later ones are aborted as they open."""
        with self._lock:
            self.cancelled = True
            responses = list(self._open)
        for response in responses:
            _shutdown(response)


_UPSTREAM: contextvars.ContextVar[Upstream | None] = contextvars.ContextVar(
    "rag_llm_upstream", default=None
)


def _shutdown(response: Any) -> None:
    """Shut an httpx(2) response's socket down (waking any thread blocked reading it)."""
    stream = getattr(response, "extensions", {}).get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def failure(exc: BaseException, action: str) -> LLMError:
    """Our own account of why an LLM call failed: a category and a status, nothing upstream."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        cause = "timed out"
    elif isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        kind = STATUS_CAUSES.get(status, "server error" if status >= 500 else "refused")
        cause = f"HTTP {status}, {kind}"
    elif isinstance(exc, openai.APIConnectionError | OSError):
        cause = "connection failed or closed"
    elif isinstance(exc, openai.APIError):
        cause = "error event in the reply"
    else:  # JSON, UnicodeDecodeError, unexpected shapes: whatever it sent was not a reply
        cause = "malformed reply"
    return LLMError(f"LLM {action} failed ({cause})")


class MalformedReply(Exception):
    """The server's reply is not shaped like a chat completion."""


def _content(reply: Any, part: str) -> str | None:
    """``choices[0].<part>.content``: None when there is none, MalformedReply when the reply
    has another shape (the SDK builds its objects without validation, so anything goes)."""
    if not isinstance(reply, openai.BaseModel):
        raise MalformedReply
    choices = getattr(reply, "choices", None)
    if choices is None or choices == []:
        return None
    if not isinstance(choices, list):
        raise MalformedReply
    content = getattr(getattr(choices[0], part, None), "content", None)
    if content is not None and not isinstance(content, str):
        raise MalformedReply
    return content


class OpenAIChat:
    """Chat completions through the official SDK, with bounded timeouts and no retries."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_tokens: int = 512,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.timeout = timeout
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or PLACEHOLDER_KEY,
            timeout=timeout,
            max_retries=0,
        )

    def complete(self, messages: Sequence[dict[str, str]]) -> str:
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=list(messages),  # type: ignore[arg-type]
                max_tokens=self.max_tokens,
                temperature=0.1,
            )
            text = _content(response, "message")
        except Exception as exc:  # the boundary: every failure becomes our own LLMError
            raise failure(exc, "request") from None
        if not text or not text.strip():
            raise LLMError("LLM request failed (empty reply)")
        return text

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]:
        """Text deltas; a broken event, a stalled server or a reset ends in an LLMError."""
        upstream = _UPSTREAM.get()
        deadline = time.monotonic() + REPLY_BUDGET * self.timeout
        events: Any = None
        sent = False
        try:
            try:
                events = self._client.chat.completions.create(
                    model=self.model,
                    messages=list(messages),  # type: ignore[arg-type]
                    max_tokens=self.max_tokens,
                    temperature=0.1,
                    stream=True,
                )
                if upstream is not None:
                    upstream.add(events.response)
                kind = events.response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    raise MalformedReply  # a JSON or HTML body where events were asked for
                iterator = iter(events)
            except Exception as exc:
                raise failure(exc, "stream") from None
            while True:
                try:
                    event = next(iterator, None)
                    if event is None:
                        break
                    text = _content(event, "delta")
                except Exception as exc:
                    if upstream is not None and upstream.cancelled:
                        raise LLMError("LLM stream cancelled (the client went away)") from None
                    raise failure(exc, "stream") from None
                if time.monotonic() > deadline:
                    budget = REPLY_BUDGET * self.timeout
                    raise LLMError(f"LLM stream failed (no full reply in {budget:.0f} s)")
                if text:
                    sent = True
                    yield text
            if not sent:
                raise LLMError("LLM stream failed (empty reply)")
        finally:
            if events is not None:
                if upstream is not None:
                    upstream.discard(events.response)
                with contextlib.suppress(Exception):
                    events.close()


_REPLY_LANGUAGE: contextvars.ContextVar[Language | None] = contextvars.ContextVar(
    "rag_reply_language", default=None
)


@contextlib.contextmanager
def reply_language(language: Language | None) -> Iterator[None]:
    """Answers written inside this block are asked for in ``language`` (None: the question's).

    How the chat API honours a system message asking for a language without the answer
    pipeline carrying it through every call.
    """
    token = _REPLY_LANGUAGE.set(language)
    try:
        yield
    finally:
        _REPLY_LANGUAGE.reset(token)


def requested_language(system: str) -> Language | None:
    """The language a system message asks answers to be in, if it asks for one."""
    en, zh = _ASKS_EN.search(system), _ASKS_ZH.search(system)
    if en and zh:  # "answer in English, not Chinese": the language named first wins
        return "en" if en.end() < zh.end() else "zh"
    return "en" if en else "zh" if zh else None


def build_messages(
    question: str,
    hits: Sequence[Hit],
    index: SearchIndex,
    not_found: str,
    language: Language | None = None,
) -> list[dict[str, str]]:
    """System rules plus the numbered passages (with title and date) and the question.

    The reply language is ``language``, else the one :func:`reply_language` set, else the
    question's; when it is not the question's, ``not_found`` is replaced by that language's.
    """
    own = detect_language(question)
    language = language or _REPLY_LANGUAGE.get() or own
    if language != own:
        not_found = not_found_text(language)
    where, copy, reminder = LANGUAGE_RULES["question" if language == own == "zh" else language]
    lines = []
    for n, hit in enumerate(hits, 1):
        date = index.documents[hit.doc].date
        head = f"[{n}] {hit.title}" + (f" ({date})" if date else "")
        lines.append(f"{head}\n{hit.text.strip()}")
    user = "Passages:\n\n" + "\n\n".join(lines) + f"\n\nQuestion: {question}"
    if reminder:
        user += f"\n{reminder}"
    system = SYSTEM_PROMPT.format(language=where, copy=copy, not_found=not_found)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def chat_client(settings: Settings) -> ChatClient | None:
    """The configured LLM, or None when RAG_LLM_BASE_URL / RAG_LLM_MODEL are not both set."""
    if not (settings.llm_base_url and settings.llm_model):
        return None
    return OpenAIChat(
        settings.llm_base_url,
        settings.llm_model,
        settings.llm_api_key,
        timeout=settings.llm_timeout,
        max_tokens=settings.llm_max_tokens,
    )
