"""Prometheus metrics, in a registry per app so tests can run several apps in one process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from rag.citations import Answer
from rag.embedding import QueryBatcher

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "rag_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "rag_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retrieval = Histogram(
            "rag_retrieval_seconds",
            "Retrieval time per question",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.llm = Histogram(
            "rag_llm_seconds", "LLM time per answer", buckets=LATENCY_BUCKETS, registry=r
        )
        self.answers = Counter(
            "rag_answers_total",
            "Answers by mode and answerability",
            ["mode", "answerable"],
            registry=r,
        )
        self.fallbacks = Counter(
            "rag_llm_fallbacks_total", "LLM answers that fell back to extraction", registry=r
        )
        self.index_swaps = Counter(
            "rag_index_swaps_total", "Hot swaps to a new index build", registry=r
        )

    def observe_answer(self, answer: Answer) -> None:
        self.answers.labels(answer.mode, str(answer.answerable).lower()).inc()
        self.retrieval.observe(answer.timings.get("retrieve", 0.0))
        if "llm" in answer.timings:
            self.llm.observe(answer.timings["llm"])
        if answer.fallback_reason:
            self.fallbacks.inc()

    def watch_query_batcher(self, current: Callable[[], QueryBatcher | None]) -> None:
        """Export the query batcher's counts: embeddings / passes is the mean batch size.

        Read at scrape time from the batcher of the index being served (``current`` returns
        None while it loads), so they restart from zero when a new build is swapped in."""
        self.registry.register(_BatcherCollector(current))


class _BatcherCollector(Collector):
    def __init__(self, current: Callable[[], QueryBatcher | None]) -> None:
        self.current = current

    def collect(self) -> Iterator[Metric]:
        batcher = self.current()
        embedded, passes = (batcher.embedded, batcher.passes) if batcher else (0, 0)
        yield CounterMetricFamily(
            "rag_query_embeddings", "Queries embedded (query-cache misses)", value=embedded
        )
        yield CounterMetricFamily(
            "rag_query_embedding_passes", "Model passes that embedded them", value=passes
        )
