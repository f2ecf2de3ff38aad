"""Request metrics name the route of every request, including those answered before routing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rag.embedding import E5Embedder
from tests.api_server import LiveServer, api_settings, serve

pytest_plugins = ["tests.api_fixtures"]

ORIGIN = "https://app.example"
KEY = {"Authorization": "Bearer k1"}


@pytest.fixture(scope="module")
def server(api_index_dir: Path, e5: E5Embedder) -> Iterator[LiveServer]:
    settings = api_settings(api_index_dir, api_keys="k1", cors_origins=ORIGIN)
    with serve(settings, e5) as live:
        yield live


def _requests(text: str) -> dict[tuple[str, str, str], float]:
    """rag_http_requests_total by (route, method, status)."""
    return {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "rag_http_requests_total"
    }


def test_requests_answered_before_routing_are_labelled_by_route(server: LiveServer) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    with httpx.Client(base_url=server.url, timeout=60) as c:
        sent = [
            c.options("/api/ask", headers=preflight),  # answered by the CORS layer
            c.head("/"),
            c.get("/static/app.js"),
            c.post("/api/search", json={"query": "阿里云"}),  # no key: 401 before routing
            c.post("/api/ask", content=b"x" * 70_000, headers=KEY),  # 413 before routing
            c.get(f"/api/documents/{'a' * 9000}", headers=KEY),  # 414 before routing
            c.get("/api/documents/line%0Abreak.txt", headers=KEY),
            c.get("/no/such/path", headers=KEY),
        ]
        counted = _requests(c.get("/metrics", headers=KEY).text)

    assert [r.status_code for r in sent] == [200, 200, 200, 401, 413, 414, 404, 404]
    assert counted[("/api/ask", "OPTIONS", "200")] == 1
    assert counted[("/", "HEAD", "200")] == 1
    assert counted[("/static/{name}", "GET", "200")] == 1
    assert counted[("/api/search", "POST", "401")] == 1
    assert counted[("/api/ask", "POST", "413")] == 1
    assert counted[("/api/documents/{doc_id:path}", "GET", "414")] == 1
    assert counted[("/api/documents/{doc_id:path}", "GET", "404")] == 1
    # Only a path no route knows is "unmatched".
    unmatched = {key: n for key, n in counted.items() if key[0] == "unmatched"}
    assert unmatched == {("unmatched", "GET", "404"): 1}
