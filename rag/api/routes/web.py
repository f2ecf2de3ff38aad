"""The web page: ``GET /``, its static files, and ``POST /ask`` for the no-JavaScript form."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Header, Response
from fastapi.responses import HTMLResponse

from rag.api.deps import MetricsDep, ServiceDep, SettingsDep
from rag.errors import NotFoundError
from rag.web.assets import asset
from rag.web.page import answer_form, page_context
from rag.web.render import render_page

# The form's route: its errors, even those raised before it runs, come back as the page.
FORM_ROUTE = ("POST", "/ask")

router = APIRouter(include_in_schema=False)

# Defence in depth: data is escaped anyway, and this stops any script the page did not ship.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
FOREVER = "public, max-age=31536000, immutable"


def form_error_page(app: FastAPI, status: int, message: str) -> HTMLResponse:
    """The page with ``message`` where the answer would be: for errors before the form runs."""
    context = page_context(app.state.service, app.state.settings)
    html = render_page(context, asked="", error=f"出错了：{message}")
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
def page(service: ServiceDep, settings: SettingsDep) -> HTMLResponse:
    return HTMLResponse(render_page(page_context(service, settings)), headers=PAGE_HEADERS)


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
def static(
    name: str,
    v: str | None = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """A page asset; versioned URLs (``?v=<hash>``) are cacheable forever."""
    found = asset(name)
    if found is None:
        raise NotFoundError(f"no static file {name!r}")
    etag = f'"{found.version}"'
    headers = {
        "ETag": etag,
        "Cache-Control": FOREVER if v == found.version else "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if if_none_match == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


@router.post("/ask", response_class=HTMLResponse)
def ask_form(
    service: ServiceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    question: Annotated[str, Form()] = "",
    mode: Annotated[str, Form()] = "",
    key: Annotated[str, Form()] = "",
    authorization: Annotated[str, Header()] = "",
) -> HTMLResponse:
    result = answer_form(service, settings, question, mode, key, authorization)
    if result.answer is not None:
        metrics.observe_answer(result.answer)
    return HTMLResponse(result.html, status_code=result.status, headers=PAGE_HEADERS)
