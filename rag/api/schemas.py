"""Request and response shapes. Chat follows the OpenAI Chat Completions API exactly."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from rag.errors import unicode_problem

ModeField = Literal["auto", "extractive", "llm"]


def _encodable(value: str) -> str:
    """Refuse a lone surrogate here, so every route gets a 400 and never the embedder's crash."""
    problem = unicode_problem(value)
    if problem is not None:
        raise ValueError(f"not valid Unicode: {problem}")
    return value


Text = Annotated[str, AfterValidator(_encodable)]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    # OpenAI also allows a list of content parts; we read their text.
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if isinstance(p, dict))
        return ""

    @model_validator(mode="after")
    def _encodable_text(self) -> ChatMessage:
        # Every message, not only the last: earlier turns rewrite a follow-up question.
        _encodable(self.text())
        return self


class ChatRequest(BaseModel):
    """The fields we use; other OpenAI fields (temperature, n, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    mode: ModeField | None = Field(None, description="answer mode (our extension)")
    top_k: int | None = Field(None, ge=1, le=20, description="passages to use (our extension)")


class CitationOut(BaseModel):
    id: int
    doc: str
    title: str
    quote: str
    start: int
    end: int


class ShortAnswerOut(BaseModel):
    """The words that answer a factoid question: ``document text[start:end] == text``."""

    text: str
    doc: str
    start: int
    end: int
    score: float
    resolved: str | None = None


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    question: Text
    mode: ModeField | None = None
    top_k: int | None = Field(None, ge=1, le=20)


class AnswerOut(BaseModel):
    question: str
    answer: str
    citations: list[CitationOut]
    answerable: bool
    mode: str
    route: str | None = None
    route_reason: str | None = None
    fallback_reason: str | None = None
    unsupported: list[str] = []
    faithfulness: float | None = None
    rewritten_question: str | None = None
    timings: dict[str, float] = {}
    outcome: Literal["answered", "related", "none"] = Field(
        "answered",
        description="answered; related (passages found, none answers: see 'related'); "
        "none (nothing relevant in the articles)",
    )
    confidence: float | None = Field(
        None, description="Probability that the cited evidence answers the question"
    )
    short_answer: ShortAnswerOut | None = None
    related: list[CitationOut] = Field(
        [], description="Nearest passages when the outcome is 'related' (sources, not an answer)"
    )


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: Text
    top_k: int = Field(5, ge=1, le=50)


class HitOut(BaseModel):
    doc: str
    title: str
    text: str
    start: int
    end: int
    score: float


class SearchOut(BaseModel):
    query: str
    hits: list[HitOut]


class DocumentSummary(BaseModel):
    id: str
    title: str
    date: str | None
    chunks: int
    # Given when the index records them (builds that read several formats); otherwise null.
    format: str | None = None
    encoding: str | None = None


class DocumentOut(DocumentSummary):
    text: str


class DocumentPage(BaseModel):
    """One page of the article list, newest first (undated last, then by title)."""

    documents: list[DocumentSummary]
    total: int = Field(description="articles in the index (all pages)")
    offset: int = Field(description="articles before this page")
    limit: int = Field(description="most articles on a page")


class AddedOut(BaseModel):
    id: str
    bytes: int
    replaced: bool = Field(description="an article of that name was replaced")


class SkippedOut(BaseModel):
    path: str = Field(description="relative to the corpus folder")
    reason: str


class ProgressOut(BaseModel):
    done: int = Field(description="texts embedded so far in this build")
    total: int = Field(description="texts this build embeds (unchanged text is reused)")


class BuildOut(BaseModel):
    """The build being served."""

    id: str = Field(description="the build's folder name: changes with every new build")
    built_at: str
    documents: int
    chunks: int
    embedded: int
    reused: int
    seconds: float


class IndexStatusOut(BaseModel):
    state: Literal["idle", "building"]
    progress: ProgressOut | None = Field(None, description="while building")
    pending: bool = Field(False, description="another build follows (changes came in)")
    last_build: BuildOut | None = None
    skipped: list[SkippedOut] = []
    error: str | None = Field(None, description="why the last build failed (old index served)")
    editable: bool = Field(description="articles can be added and deleted here")
    suffixes: list[str] = Field(description="file types accepted for upload")


class UploadOut(BaseModel):
    ids: list[str]
    documents: list[AddedOut]
    index: IndexStatusOut


class DeleteOut(BaseModel):
    id: str
    index: IndexStatusOut


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "qianwen-rag"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str


class ErrorBody(BaseModel):
    """Every error response: OpenAI's envelope, on every path."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input: the message says what is wrong"},
    401: {"model": ErrorBody, "description": "Missing or wrong API key (when keys are set)"},
    413: {"model": ErrorBody, "description": "Request body over the size limit"},
    503: {"model": ErrorBody, "description": "The index is still loading"},
}
