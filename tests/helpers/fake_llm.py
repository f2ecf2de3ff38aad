"""A fake OpenAI-compatible chat server on 127.0.0.1: the one fake in the LLM tests.

It sits where a real server would (vLLM, llama.cpp), so our client, answer pipeline and API run
unchanged against it. Each request takes the next scripted :class:`Script` (the last one
repeats): an honest or altered reply, sent as JSON or as server-sent events depending on what
the request asked for, or any way a server can misbehave: raw bodies, error statuses, broken
events, silence, a reset connection, a slow trickle. It counts the connections it has open, so
tests can see whether our side closed them.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class _QuietServer(ThreadingHTTPServer):
    """Clients hanging up on purpose are part of the tests, not errors to print."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@dataclass
class Script:
    """One response. ``text`` is split into ``pieces`` deltas when streamed.

    ``raw`` replaces the body (and ``status``/``content_type`` its head); ``events`` replaces
    the SSE lines; ``delay`` waits before answering; ``reset`` closes with a TCP RST;
    ``drop_after`` cuts a stream after that many events; ``interval`` paces events.
    """

    text: str = ""
    pieces: int = 3
    status: int = 200
    content_type: str | None = None
    raw: bytes | None = None
    events: list[bytes] | None = None
    delay: float = 0.0
    reset: bool = False
    drop_after: int | None = None
    interval: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def completion(text: str, model: str = "fake") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


def chunk(text: str, model: str = "fake") -> bytes:
    payload = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def split_text(text: str, pieces: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class FakeLLM:
    """``with FakeLLM([Script(...), ...]) as llm:`` serves at ``llm.base_url``."""

    def __init__(self, scripts: list[Script] | None = None) -> None:
        self.scripts = list(scripts or [Script("文中未提及。")])
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._open = 0
        self._served = 0
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def script(self, *scripts: Script) -> None:
        """Replace the scripts; the next request takes the first."""
        with self._lock:
            self.scripts = list(scripts)
            self._served = 0

    def _next(self) -> Script:
        with self._lock:
            script = self.scripts[min(self._served, len(self.scripts) - 1)]
            self._served += 1
            return script

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._open += 1

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with fake._lock:
                        fake._open -= 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = json.loads(body or b"{}")
                fake.requests.append(request)
                fake.headers.append(dict(self.headers))
                script = fake._next()
                time.sleep(script.delay)
                try:
                    if script.reset:
                        self._reset()
                    elif script.raw is not None or not request.get("stream"):
                        self._plain(script)
                    else:
                        self._stream(script)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _reset(self) -> None:
                linger = struct.pack("ii", 1, 0)  # close with RST, not FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.close_connection = True

            def _plain(self, script: Script) -> None:
                raw = script.raw
                if raw is None:
                    raw = json.dumps(completion(script.text), ensure_ascii=False).encode()
                self.send_response(script.status)
                self.send_header("Content-Type", script.content_type or "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in script.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self, script: Script) -> None:
                self.send_response(script.status)
                self.send_header("Content-Type", script.content_type or "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                events = script.events
                if events is None:
                    events = [chunk(p) for p in split_text(script.text, script.pieces)]
                    events.append(b"data: [DONE]\n\n")
                for n, event in enumerate(events):
                    if script.drop_after is not None and n >= script.drop_after:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                    self.wfile.flush()
                    if not self._pause(script.interval):
                        self.close_connection = True
                        return
                self.wfile.write(b"0\r\n\r\n")

            def _pause(self, seconds: float) -> bool:
                """Wait between events; False as soon as the client has closed the connection
                (so open connections are counted right even while the fake is silent)."""
                deadline = time.monotonic() + seconds
                while (left := deadline - time.monotonic()) > 0:
                    readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        return False
                return True

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
