"""uvicorn's HTTP/1.1 protocol (httptools) with our limits, so every reply is JSON.

Left to itself the parser answers a URL past its 65,535-byte limit with a ``text/plain`` 400,
and it waits for a request's headers for ever (a client that sends one byte a minute holds
a connection open). Here an over-long URL is cut short and flagged in the scope, so
:class:`~rag.api.middleware.GuardMiddleware` answers it with a JSON 414 (CORS and request id
included); headers that do not arrive within the read timeout get a JSON 408, a request head
over 1 MiB a JSON 431, and anything the parser cannot read a JSON 400.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rag.settings import Settings, get_settings

# Scope key: the length in bytes of a URL that was cut short here (the middleware says 414).
URL_BYTES = "rag.url_bytes"
# The request line and headers together; past this the parser would buffer without bound.
MAX_HEAD_BYTES = 1024 * 1024


def json_reply(status: int, reason: str, message: str, code: str) -> bytes:
    """A complete HTTP/1.1 response with a JSON error body that closes the connection."""
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class HttpProtocol(HttpToolsProtocol):
    """The httptools protocol with a URL cap, a header read timeout and JSON errors.

    ``uvicorn.run(..., http="rag.api.protocol:HttpProtocol")`` reads the limits from the
    process settings (workers included); :func:`protocol_for` binds other settings.
    """

    settings: Settings | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.settings or get_settings()
        self.max_url = settings.max_url_bytes
        self.read_timeout = settings.read_timeout
        self._url_bytes = 0
        self._head_bytes: int | None = 0  # None once the headers are complete
        self._header_timer: asyncio.TimerHandle | None = None

    # Headers must arrive within the read timeout, counted from the first byte of a request
    # (an idle keep-alive connection is uvicorn's own timeout_keep_alive).
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_bytes = 0
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._head_bytes is not None:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                message = f"the request line and headers are over {MAX_HEAD_BYTES} bytes"
                self._disarm()
                self.transport.write(
                    json_reply(431, "Request Header Fields Too Large", message, "head_too_large")
                )
                self.transport.close()
                return
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if len(self.url) < self.max_url:
            super().on_url(url[: self.max_url - len(self.url)])
        if self._url_bytes > self.max_url:
            # Keep a prefix (enough to name the route) and let the middleware say 414.
            self.scope[URL_BYTES] = self._url_bytes  # type: ignore[literal-required]

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0  # the next request on this connection starts with its head

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        message = "the request is not valid HTTP/1.1"
        self.transport.write(json_reply(400, "Bad Request", message, "bad_http"))
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.read_timeout, self._headers_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        message = f"the request headers did not arrive within {self.read_timeout:g} seconds"
        self.transport.write(json_reply(408, "Request Timeout", message, "request_timeout"))
        self.transport.close()


def protocol_for(settings: Settings) -> type[HttpProtocol]:
    """:class:`HttpProtocol` bound to ``settings`` (for servers run in this process)."""
    return type("BoundHttpProtocol", (HttpProtocol,), {"settings": settings})
