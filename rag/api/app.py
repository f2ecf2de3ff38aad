"""The FastAPI application factory: wiring only; the work lives in plain modules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from rag import __version__
from rag.api.admission import Slots
from rag.api.errors import install_error_handlers
from rag.api.metrics import Metrics
from rag.api.middleware import AccessMiddleware, GuardMiddleware, flat_routes
from rag.api.routes import api, documents, openai, ops, web
from rag.api.routes.documents import UPLOAD_ROUTE
from rag.api.schemas import ERROR_RESPONSES
from rag.engine import Engine
from rag.llm import ChatClient
from rag.service import Service
from rag.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, llm: ChatClient | None = None, engine: Engine | None = None
) -> FastAPI:
    """Build the app; the index loads in the lifespan (``/readyz`` says when it is done),
    unless ``engine`` is one already loaded for ``settings``, which is served as it is."""
    settings = settings or get_settings()
    metrics = Metrics()
    service = Service(settings, llm, on_swap=metrics.index_swaps.inc, engine=engine)
    metrics.watch_query_batcher(
        lambda: service.answerer.engine.retriever.batcher if service.ready else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("starting", extra={"index_dir": str(settings.index_dir)})
        await asyncio.to_thread(service.load)
        service.start_watching()
        log.info("ready", extra={"chunks": len(service.answerer.engine.index.chunks)})
        yield
        service.stop()

    app = FastAPI(
        title="qianwen-rag",
        version=__version__,
        summary="Cited answers from Chinese articles about Alibaba Cloud and Qwen",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.openapi = partial(_openapi_without_422, app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.service = service
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(api.router)
    app.include_router(documents.router)
    app.include_router(openai.router)
    app.include_router(web.router)
    # Added innermost first: Access wraps CORS, which wraps the guard (see middleware.py).
    # Admin keys read too; with no API keys reading stays open (the routes check changes).
    readers = settings.api_key_list + settings.admin_key_list if settings.api_key_list else []
    app.add_middleware(
        GuardMiddleware,
        api_keys=readers,
        max_body=settings.max_body_bytes,
        body_limits={UPLOAD_ROUTE: settings.max_upload_bytes},
        max_url=settings.max_url_bytes,
        read_timeout=settings.read_timeout,
        rate_limit=settings.rate_limit,
        slots=Slots(settings.answer_slots, settings.long_question_chars),
    )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(AccessMiddleware, metrics=metrics, routes=flat_routes(app.router.routes))
    return app


def _openapi_without_422(app: FastAPI) -> dict[str, Any]:
    """The schema, minus FastAPI's default 422 entries: validation errors are sent as 400
    with the ``{"error": ...}`` body that ERROR_RESPONSES documents."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory rag.api.app:app_from_env``."""
    from rag.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
