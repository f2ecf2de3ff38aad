"""The articles: list and read them, add and delete files, and see or start index builds.

Changes answer 202 at once: the build runs in the background and the server swaps to the new
index when it is done, answering questions from the old one meanwhile. Who may change the
articles: the holders of ``RAG_ADMIN_KEYS`` when any are set; otherwise, when ``RAG_API_KEYS``
are set, every API key holder; with no keys at all, anyone who can reach the server.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Header, Query, UploadFile

from rag.api.deps import AnswererDep, ServiceDep, SettingsDep
from rag.api.schemas import (
    AddedOut,
    BuildOut,
    DeleteOut,
    DocumentOut,
    DocumentPage,
    DocumentSummary,
    ErrorBody,
    IndexStatusOut,
    ProgressOut,
    SkippedOut,
    UploadOut,
)
from rag.errors import ForbiddenError, NotFoundError, UnauthorizedError
from rag.library import Upload, accepted_suffixes
from rag.manifest import DocumentInfo
from rag.service import Service

router = APIRouter(prefix="/api", tags=["documents"])
# Uploads are larger than other bodies: the middleware allows this route RAG_MAX_UPLOAD_BYTES.
UPLOAD_ROUTE = ("POST", "/api/documents")
PAGE, MAX_PAGE = 100, 1000  # articles per page of the list: by default, at most

CHANGE_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "an admin key is needed (when keys are set)"},
    403: {"model": ErrorBody, "description": "this key may read but not change the articles"},
    409: {"model": ErrorBody, "description": "the bundled or the last article cannot change"},
}


def _matches(token: str, keys: list[str]) -> bool:
    # Compare with every key (no early exit on the first match), as the middleware does.
    return any([hmac.compare_digest(token.encode(), k.encode()) for k in keys])


def require_admin(settings: SettingsDep, authorization: Annotated[str, Header()] = "") -> None:
    """Changes need an admin key when any is set, else an API key when any is set."""
    keys = settings.admin_key_list or settings.api_key_list
    if not keys:
        return
    token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
    if token and _matches(token, keys):
        return
    if token and _matches(token, settings.api_key_list):
        raise ForbiddenError("this key may ask questions but not change the articles")
    raise UnauthorizedError("changing the articles needs an admin key: 'Authorization: Bearer'")


AdminDep = Annotated[None, Depends(require_admin)]


def index_status(service: Service) -> IndexStatusOut:
    """The build state, the build being served and the files it skipped."""
    status = service.builder.status()
    last = skipped = None
    if service.ready:
        m = service.answerer.engine.index.manifest
        last = BuildOut(
            id=service.answerer.engine.index.path.name,
            built_at=m.built_at,
            documents=len(m.documents),
            chunks=m.chunk_count,
            embedded=m.embedded,
            reused=m.reused,
            seconds=m.build_seconds,
        )
        skipped = [
            SkippedOut(path=_relative(s.path, m.corpus_dir), reason=s.reason) for s in m.skipped
        ]
    return IndexStatusOut(
        state=status.state,
        progress=ProgressOut(done=status.done, total=status.total)
        if status.state == "building"
        else None,
        pending=status.pending,
        last_build=last,
        skipped=skipped or [],
        error=status.error,
        editable=service.library.editable,
        suffixes=list(accepted_suffixes()),
    )


def _relative(path: str, corpus_dir: str) -> str:
    """A skipped file's path as the user knows it: relative to the corpus folder."""
    try:
        return Path(path).relative_to(corpus_dir).as_posix()
    except ValueError:
        return Path(path).name


@router.get(
    "/documents",
    response_model=DocumentPage,
    summary="List the articles, newest first, a page at a time",
    responses={400: {"model": ErrorBody, "description": "limit or offset out of range"}},
)
def documents(
    answerer: AnswererDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="articles per page")] = PAGE,
    offset: Annotated[int, Query(ge=0, description="articles to skip")] = 0,
) -> DocumentPage:
    """Read from the articles' info lines only: no article text is decoded for the list."""
    store = answerer.engine.index.documents
    infos = store.infos()
    page = store.newest_first()[offset : offset + limit]
    return DocumentPage(
        documents=[DocumentSummary(**_summary(infos[int(n)])) for n in page],
        total=len(store),
        offset=offset,
        limit=limit,
    )


def _summary(info: DocumentInfo) -> dict[str, Any]:
    """What the article list and the reader both show of one article."""
    return {
        "id": info.id,
        "title": info.title,
        "date": info.date,
        "chunks": info.chunks,
        "format": info.format,
        "encoding": info.encoding,
    }


@router.get(
    "/documents/{doc_id:path}",
    response_model=DocumentOut,
    summary="One article's original text (citation offsets index into it)",
    responses={404: {"description": "unknown document"}},
)
def document(doc_id: str, answerer: AnswererDep) -> DocumentOut:
    store = answerer.engine.index.documents
    n = store.number.get(doc_id)
    if n is None:
        raise NotFoundError(f"no document {doc_id!r}")
    return DocumentOut(**_summary(store.infos()[n]), text=store.document(n).text)


@router.post(
    "/documents",
    status_code=202,
    response_model=UploadOut,
    summary="Add or replace articles (multipart, fields named 'file'); the index rebuilds",
    responses={
        **CHANGE_RESPONSES,
        413: {"model": ErrorBody, "description": "a file over the size limit"},
        415: {"model": ErrorBody, "description": "a file type the reader does not take"},
    },
)
def upload(
    file: Annotated[list[UploadFile], File(description="one or more article files")],
    service: ServiceDep,
    _answerer: AnswererDep,  # 503 while the index loads: a build then would race the load
    _admin: AdminDep,
) -> UploadOut:
    uploads = [Upload(f.filename or "", f.file.read(service.library.max_bytes + 1)) for f in file]
    added = service.library.add(uploads)
    service.builder.request()
    return UploadOut(
        ids=[a.id for a in added],
        documents=[AddedOut(id=a.id, bytes=a.bytes, replaced=a.replaced) for a in added],
        index=index_status(service),
    )


@router.delete(
    "/documents/{doc_id:path}",
    status_code=202,
    response_model=DeleteOut,
    summary="Delete an article file; the index rebuilds",
    responses={**CHANGE_RESPONSES, 404: {"model": ErrorBody, "description": "unknown document"}},
)
def delete(doc_id: str, service: ServiceDep, answerer: AnswererDep, _admin: AdminDep) -> DeleteOut:
    service.library.delete(doc_id, indexed=list(answerer.engine.index.documents))
    service.builder.request()
    return DeleteOut(id=doc_id, index=index_status(service))


@router.get("/index", response_model=IndexStatusOut, summary="Build state, progress, skipped files")
def status(service: ServiceDep) -> IndexStatusOut:
    return index_status(service)


@router.post(
    "/index",
    status_code=202,
    response_model=IndexStatusOut,
    summary="Rebuild the index now (in the background) if the folder changed",
    responses=CHANGE_RESPONSES,
)
def rebuild(service: ServiceDep, _answerer: AnswererDep, _admin: AdminDep) -> IndexStatusOut:
    """A folder that still holds what the index was built from builds nothing: that build
    would be the same index (the state returns to idle at once)."""
    service.builder.request()
    return index_status(service)
