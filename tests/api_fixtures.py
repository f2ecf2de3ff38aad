"""Server fixtures for the HTTP API tests; test modules load them with ``pytest_plugins``.

The servers share conftest's session embedder (``e5``) and bundled index (``bundled_index``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.embedding import E5Embedder
from rag.index import SearchIndex, current_path
from tests.api_server import LiveServer, api_settings, serve


@pytest.fixture(scope="session")
def api_index_dir(bundled_index: SearchIndex) -> Path:
    """The index folder of conftest's bundled build (``<dir>/builds/<build>`` is its path)."""
    index_dir = bundled_index.path.parent.parent
    assert current_path(index_dir).resolve() == bundled_index.path.resolve()
    return index_dir


@pytest.fixture(scope="session")
def api_server(api_index_dir: Path, e5: E5Embedder) -> Iterator[LiveServer]:
    """The server with default settings: no API keys, no CORS origins."""
    with serve(api_settings(api_index_dir), e5) as server:
        yield server
