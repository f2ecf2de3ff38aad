"""Chat with any OpenAI-compatible server (vLLM, Ollama, SGLang, llama.cpp) via the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import openai

from rag.errors import LLMError
from rag.index import SearchIndex
from rag.retrieval import Hit
from rag.settings import Settings

# The SDK refuses to run without a key; local servers ignore this placeholder. A configured
# RAG_LLM_API_KEY replaces it.
PLACEHOLDER_KEY = "no-key-configured"

SYSTEM_PROMPT = (
    "You answer questions about news articles using ONLY the numbered passages given. "
    "Write 1-3 short sentences in the language of the question. After every sentence put the "
    "number of the passage that supports it in square brackets, like [1] or [2]. "
    "Copy names and numbers exactly as the passages write them. "
    "If the passages do not contain the answer, reply only: {not_found}"
)


class ChatClient(Protocol):
    """The one call answer generation needs; lets tests and servers vary behind it."""

    model: str

    def complete(self, messages: Sequence[dict[str, str]]) -> str: ...

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]: ...


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
        except openai.OpenAIError as exc:
            raise LLMError(f"LLM request failed: {type(exc).__name__}: {exc}") from exc
        text = response.choices[0].message.content if response.choices else None
        if not text or not text.strip():
            raise LLMError("LLM returned an empty reply")
        return text

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]:
        try:
            events = self._client.chat.completions.create(
                model=self.model,
                messages=list(messages),  # type: ignore[arg-type]
                max_tokens=self.max_tokens,
                temperature=0.1,
                stream=True,
            )
            for event in events:
                choices = getattr(event, "choices", None)
                if choices and choices[0].delta.content:
                    yield choices[0].delta.content
        except openai.OpenAIError as exc:
            raise LLMError(f"LLM stream failed: {type(exc).__name__}: {exc}") from exc


def build_messages(
    question: str, hits: Sequence[Hit], index: SearchIndex, not_found: str
) -> list[dict[str, str]]:
    """System rules plus the numbered passages (with title and date) and the question."""
    lines = []
    for n, hit in enumerate(hits, 1):
        date = index.documents[hit.doc].date
        head = f"[{n}] {hit.title}" + (f" ({date})" if date else "")
        lines.append(f"{head}\n{hit.text.strip()}")
    user = "Passages:\n\n" + "\n\n".join(lines) + f"\n\nQuestion: {question}"
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(not_found=not_found)},
        {"role": "user", "content": user},
    ]


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
