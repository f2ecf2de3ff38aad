"""A real uvicorn server on 127.0.0.1 in a background thread, for the HTTP API tests.

Helpers only: the fixtures that use them live in ``tests/api_fixtures.py``. The server binds a
socket we opened on port 0, so the port is free by construction (no probe-then-bind race).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import uvicorn
from fastapi import FastAPI

from rag.api.app import create_app
from rag.api.protocol import protocol_for
from rag.embedding import Embedder
from rag.settings import BUNDLED_CORPUS, Settings

READY_TIMEOUT = 120.0  # seconds; loading is quick, but the machine may be busy


class ServerError(RuntimeError):
    """The server did not become ready (or did not stop) in time."""


class LiveServer:
    """Runs ``app`` with uvicorn in a thread; ``url`` is valid once :meth:`start` returns."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # Our HTTP protocol, as `rag serve` runs it: JSON for over-long URLs and slow headers.
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            http=protocol_for(app.state.settings),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self, timeout: float = READY_TIMEOUT) -> Self:
        """Start serving and wait until ``/readyz`` says 200 (the index is loaded)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if not self._thread.is_alive():
                    raise ServerError(f"the server thread died before it was ready ({last})")
                try:
                    response = client.get("/readyz")
                    if response.status_code == 200:
                        return self
                    last = f"/readyz said {response.status_code}: {response.text[:200]}"
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.05)
        self.stop()
        raise ServerError(f"the server was not ready within {timeout:.0f}s ({last})")

    def stop(self, timeout: float = 15.0) -> None:
        """Ask uvicorn to exit (it runs the lifespan shutdown) and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()
        if self._thread.is_alive():
            raise ServerError(f"the server on port {self.port} did not stop within {timeout}s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def api_settings(index_dir: Path, **overrides: object) -> Settings:
    """Settings for a server on ``index_dir``: the bundled corpus, no keys, no CORS, no LLM.

    Explicit values win over ``RAG_*`` variables, so a developer's environment cannot leak in.
    """
    values: dict[str, object] = {
        "corpus_dir": BUNDLED_CORPUS,
        "api_keys": "",
        "cors_origins": "",
        "llm_base_url": None,
        "llm_model": None,
        **overrides,
    }
    return Settings(index_dir=index_dir, **values)  # type: ignore[arg-type]


@contextmanager
def serve(settings: Settings, embedder: Embedder | None = None) -> Iterator[LiveServer]:
    """A live server for ``create_app(settings)``; pass ``embedder`` to share a loaded one."""
    app = create_app(settings)
    if embedder is not None:
        # The service loads its own embedder unless one is set; sharing saves memory and time.
        app.state.service.embedder = embedder
    with LiveServer(app) as server:
        yield server
