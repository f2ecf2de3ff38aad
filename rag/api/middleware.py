"""Request ids, body-size limit, optional bearer keys, access log and metrics (pure ASGI)."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from rag.api.metrics import Metrics
from rag.api.routes.web import FORM_ROUTE, form_error_page

log = logging.getLogger("rag.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = ("/healthz", "/readyz")
# The no-JavaScript form cannot send a header: that route checks a `key` form field itself.
SELF_CHECKED = (("POST", "/ask"),)
# The page itself must load without a key: it asks the user for one.
OPEN_GET_PATHS = ("/", "/static/", "/favicon.ico")


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(status: int, message: str, code: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


class GuardMiddleware:
    """Everything that must happen before routing, in one small ASGI layer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: list[str],
        max_body: int,
        metrics: Metrics,
        body_limits: dict[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.keys = [k.encode() for k in api_keys]
        self.max_body = max_body
        self.metrics = metrics
        self.body_limits = body_limits or {}  # (method, path) -> its own limit (uploads)

    def _authorised(self, scope: Scope) -> bool:
        if not self.keys:
            return True
        path: str = scope["path"]
        if path in OPEN_PATHS or (scope["method"], path) in SELF_CHECKED:
            return True
        if scope["method"] == "OPTIONS":
            return True  # CORS preflights never carry credentials; the real request will
        if scope["method"] in ("GET", "HEAD") and (
            path == "/" or any(path.startswith(p) for p in OPEN_GET_PATHS[1:])
        ):
            return True
        headers = dict(scope.get("headers", []))
        value = headers.get(b"authorization", b"")
        token = value[7:].strip() if value[:7].lower() == b"bearer " else b""
        # Compare against every key in constant time (no early exit on the first match).
        matches = [hmac.compare_digest(token, key) for key in self.keys]
        return any(matches)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        extra = [(b"x-request-id", request_id.encode("latin-1"))]
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            if not self._authorised(scope):
                status_holder["status"] = 401
                await _send_json(
                    send,
                    401,
                    _error(
                        401,
                        "missing or invalid API key: send 'Authorization: Bearer <key>'",
                        "invalid_api_key",
                        "authentication_error",
                    ),
                    [*extra, (b"www-authenticate", b"Bearer")],
                )
                return
            declared = headers.get(b"content-length")
            limit = self.body_limits.get((scope["method"], scope["path"]), self.max_body)
            replay = None
            if declared is None or not declared.isdigit() or int(declared) <= limit:
                replay = await self._buffered(receive, limit)
            if replay is None:
                await self._refuse_too_large(scope, receive, send_with_id, limit)
                return
            await self.app(scope, replay, send_with_id)
        finally:
            route = self._route_label(scope)
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, scope["method"], str(status_holder["status"])).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_holder["status"],
                    "ms": round(elapsed * 1000, 1),
                },
            )

    async def _refuse_too_large(
        self, scope: Scope, receive: Receive, send: Send, limit: int
    ) -> None:
        message = f"request body over {limit} bytes"
        if (scope["method"], scope["path"]) == FORM_ROUTE and "app" in scope:
            # The form's browser shows the page, not JSON (the body is not read: no question).
            await form_error_page(scope["app"], 413, message)(scope, receive, send)
            return
        await _send_json(
            send, 413, _error(413, message, "body_too_large", "invalid_request_error"), []
        )

    async def _buffered(self, receive: Receive, limit: int) -> Receive | None:
        """Read the whole body (bounded), then replay it; None when it is too large.

        Bodies here are small JSON documents, so buffering costs nothing and lets an
        oversized body be refused before any route sees it.
        """
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away; let the app see the disconnect
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return None
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    def _route_label(scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        return str(path) if path else "unmatched"
