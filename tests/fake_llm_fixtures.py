"""A fake OpenAI-compatible server on 127.0.0.1 and an answerer wired to it, per test module:
the boundary we do not own, scripted, in front of our real index, retriever and verifier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rag.answer import Answerer
from rag.embedding import E5Embedder
from rag.engine import Engine
from rag.index import SearchIndex
from rag.llm import OpenAIChat
from rag.retrieval import Retriever
from rag.settings import Settings
from tests.helpers.fake_llm import FakeLLM


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def answerer(
    fake: FakeLLM, bundled_index: SearchIndex, e5: E5Embedder, retriever: Retriever
) -> Answerer:
    engine = Engine(Settings.model_construct(), e5, bundled_index, retriever)
    return Answerer(engine, OpenAIChat(fake.base_url, "fake", timeout=10))
