"""One place that turns every failure into a JSON error body (never a stack trace).

Paths under ``/v1/`` get OpenAI's envelope ``{"error": {"message", "type", "code"}}`` so the
official clients show the message; other paths get ``{"error": {"message", "code"}}`` too.
The no-JavaScript form (``POST /ask``) is the exception: a browser shows its errors, so they
come back as the page with the message in it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.api.routes.web import FORM_ROUTE, form_error_page
from rag.errors import RagError

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    502: "api_error",
    500: "api_error",
}


def error_response(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": _TYPES.get(status, "api_error"), "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        loc = tuple(err.get("loc", ()))
        where = ".".join(str(p) for p in loc if p != "body")
        msg = err.get("msg", "invalid")
        if err.get("type") == "value_error":
            msg = msg.removeprefix("Value error, ")  # our own validators' words
        if err.get("type") == "json_invalid":
            msg = "the request body is not valid JSON"
            where = ""
        elif loc == ("body",) and err.get("type") == "missing":
            msg = "the request body is missing: send a JSON object"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


def _respond(
    request: Request, status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> Response:
    """The JSON error body, or the page for the form, which a browser shows as it is."""
    if (request.method, request.url.path) == FORM_ROUTE:
        return form_error_page(request.app, status, message)
    return error_response(status, message, code, headers)


def _unparsable(exc: StarletteHTTPException) -> str:
    """Why FastAPI could not parse a body: its exception names the cause only in the chain."""
    if isinstance(exc.__cause__, RecursionError):
        return "the body nests too deeply: JSON arrays and objects go at most a few levels down"
    return "the request body is not valid UTF-8 JSON"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> Response:
        return _respond(request, exc.status, exc.message, exc.code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _respond(request, 400, _describe(list(exc.errors())), "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:
            # FastAPI's words when the body cannot be decoded (bytes that are not UTF-8,
            # nesting deeper than the JSON parser's recursion limit).
            message, code = _unparsable(exc), "invalid_request"
        return _respond(request, exc.status_code, message, code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return _respond(request, 500, "internal error; see the server log", "internal_error")
