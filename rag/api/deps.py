"""Dependencies: routes get the service, answerer and settings through these.

They are ``async``, so FastAPI calls them on the event loop: a plain ``def`` dependency costs
a hand-off to the thread pool and back per request, three of them for ``/api/search``, each
waiting for the loop while the cores are busy embedding (bench/README.md, "Throughput")."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.convertors import Convertor, register_url_convertor

from rag.answer import Answerer
from rag.api.metrics import Metrics
from rag.errors import InvalidInputError, check_text
from rag.service import Service
from rag.settings import Settings


class AnyPath(Convertor[str]):
    """Starlette's ``path`` convertor, line breaks included.

    Its own pattern is ``.*``, which stops at a newline, so a document whose file name holds
    one (``/api/documents/a%0Ab.txt``) could be cited but never opened. Registered under the
    same name, here, because every route module imports this one before declaring routes.
    """

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("path", AnyPath())


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def get_answerer(service: Annotated[Service, Depends(get_service)]) -> Answerer:
    return service.answerer  # raises IndexMissingError (503) while loading


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


ServiceDep = Annotated[Service, Depends(get_service)]
AnswererDep = Annotated[Answerer, Depends(get_answerer)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def check_question(text: str, settings: Settings, what: str = "question") -> str:
    """Reject empty, over-long and unencodable questions with a clear message."""
    text = check_text(text, what).strip()
    if not text:
        raise InvalidInputError(f"the {what} is empty")
    if len(text) > settings.max_question_chars:
        raise InvalidInputError(
            f"the {what} is {len(text)} characters; the limit is {settings.max_question_chars}"
        )
    return text
