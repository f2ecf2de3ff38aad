"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rag.api.deps import MetricsDep, ServiceDep
from rag.api.errors import error_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The index is loaded and answers can be served",
    responses={503: {"description": "still loading"}},
)
def readyz(service: ServiceDep) -> Response:
    if not service.ready:
        return error_response(503, "the index is still loading", "not_ready")
    manifest = service.answerer.engine.index.manifest
    return Response(
        content=(
            f'{{"status":"ready","chunks":{manifest.chunk_count},"built_at":"{manifest.built_at}"}}'
        ),
        media_type="application/json",
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(registry: MetricsDep) -> Response:
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
