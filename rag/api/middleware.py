"""The pure-ASGI layers around the routes, outermost first (wired in :mod:`rag.api.app`):

1. :class:`AccessMiddleware`: request id, access log and metrics for every response;
2. Starlette's CORS middleware (when origins are configured), so that every refusal below
   carries the CORS headers and a browser shows its status instead of a CORS failure;
3. :class:`GuardMiddleware`: URL length (414), API keys (401), rate limit (429), the body
   read with a size limit (413) and a deadline (408), then a slot for expensive work.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.routing import BaseRoute

from rag.api.admission import RateLimit, Slots
from rag.api.metrics import Metrics
from rag.api.protocol import URL_BYTES
from rag.api.routes.web import FORM_ROUTE, form_error_page

log = logging.getLogger("rag.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# status, message, code, error type, extra headers
Refusal = tuple[int, str, str, str, list[tuple[bytes, bytes]]]

OPEN_PATHS = ("/healthz", "/readyz")
# The no-JavaScript form cannot send a header: that route checks a `key` form field itself.
SELF_CHECKED = (("POST", "/ask"),)
# The page itself must load without a key: it asks the user for one.
OPEN_GET_PATHS = ("/", "/static/", "/favicon.ico")
# Not counted against a client's rate: probes, scrapes and CORS preflights.
UNLIMITED = (*OPEN_PATHS, "/metrics")


async def _send_json(
    send: Send,
    status: int,
    message: str,
    code: str,
    kind: str = "invalid_request_error",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    message: str,
    code: str,
    kind: str = "invalid_request_error",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """The JSON error, or for the no-JavaScript form the page, which its browser shows."""
    if (scope["method"], scope["path"]) == FORM_ROUTE and "app" in scope:
        page = form_error_page(scope["app"], status, message)
        page.headers.update({k.decode(): v.decode() for k, v in headers or []})
        await page(scope, receive, send)
        return
    await _send_json(send, status, message, code, kind, headers)


def flat_routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The routes inside included routers too (FastAPI includes them lazily)."""
    flat: list[BaseRoute] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        flat.extend(flat_routes(inner.routes) if inner is not None else [route])
    return flat


def route_label(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The route template that served (or would have served) this request, for metrics.

    Responses sent before routing (preflights, refusals) are labelled by the route their
    path matches, so only paths that no route knows are "unmatched".
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(scope["path"]):
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class AccessMiddleware:
    """Request ids, the access log and request metrics, around everything else."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

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
            await self.app(scope, receive, send_with_id)
        finally:
            route = route_label(scope, self.routes)
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, scope["method"], str(status_holder["status"])).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"][:200],
                    "status": status_holder["status"],
                    "ms": round(elapsed * 1000, 1),
                },
            )


class GuardMiddleware:
    """Everything that must happen before routing, in one small ASGI layer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: list[str],
        max_body: int,
        max_url: int = 8192,
        read_timeout: float = 30.0,
        rate_limit: str = "",
        slots: Slots | None = None,
        body_limits: dict[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.keys = [k.encode() for k in api_keys]
        self.max_body = max_body
        self.body_limits = body_limits or {}  # (method, path) -> its own limit (uploads)
        self.max_url = max_url
        self.read_timeout = read_timeout
        self.rate_limit = rate_limit
        self.rate = RateLimit(rate_limit) if rate_limit else None
        self.slots = slots

    def _token(self, scope: Scope) -> bytes:
        value = dict(scope.get("headers", [])).get(b"authorization", b"")
        return value[7:].strip() if value[:7].lower() == b"bearer " else b""

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
        token = self._token(scope)
        # Compare against every key in constant time (no early exit on the first match).
        matches = [hmac.compare_digest(token, key) for key in self.keys]
        return any(matches)

    def _url_bytes(self, scope: Scope) -> int:
        if URL_BYTES in scope:  # cut short by rag.api.protocol
            return int(scope[URL_BYTES])
        raw = scope.get("raw_path") or scope["path"].encode()
        return len(raw) + len(scope.get("query_string", b""))

    def _retry_after(self, scope: Scope) -> int | None:
        if self.rate is None or scope["method"] == "OPTIONS" or scope["path"] in UNLIMITED:
            return None
        token = self._token(scope) if self.keys else None
        client = scope.get("client") or ("unknown", 0)
        return self.rate.retry_after(RateLimit.client_key(client[0], token))

    def _refusal(self, scope: Scope) -> Refusal | None:
        """Why the request is refused before its body is read, if it is."""
        url_bytes = self._url_bytes(scope)
        if url_bytes > self.max_url:
            message = f"the URL is {url_bytes} bytes; the limit is {self.max_url}"
            return 414, message, "uri_too_long", "invalid_request_error", []
        if not self._authorised(scope):
            message = "missing or invalid API key: send 'Authorization: Bearer <key>'"
            bearer = [(b"www-authenticate", b"Bearer")]
            return 401, message, "invalid_api_key", "authentication_error", bearer
        retry = self._retry_after(scope)
        if retry is not None:
            message = f"too many requests: the limit is {self.rate_limit} per client"
            wait = [(b"retry-after", str(retry).encode())]
            return 429, message, "rate_limited", "rate_limit_error", wait
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _refuse(scope, receive, send, *refusal)
            return
        sent = dict(scope.get("headers", []))
        declared = sent.get(b"content-length")
        body: bytes | None = None
        limit = self.body_limits.get((scope["method"], scope["path"]), self.max_body)
        if declared is None or not declared.isdigit() or int(declared) <= limit:
            try:
                async with asyncio.timeout(self.read_timeout):
                    body = await self._read_body(receive, limit)
            except TimeoutError:
                message = f"the request body did not arrive within {self.read_timeout:g} seconds"
                close = [(b"connection", b"close")]
                await _refuse(scope, receive, send, 408, message, "request_timeout", headers=close)
                return
        if body is None:
            message = f"request body over {limit} bytes"
            await _refuse(scope, receive, send, 413, message, "body_too_large")
            return
        replay = _replay(body, receive)
        content_type = sent.get(b"content-type", b"")
        route = (scope["method"], scope["path"])
        if self.slots is not None and self.slots.needed(route, body, content_type):
            async with self.slots.slot(body, content_type):
                await self.app(scope, replay, send)
            return
        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive, limit: int) -> bytes | None:
        """The whole body (bounded); None when it is too large.

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
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then passes on to the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
