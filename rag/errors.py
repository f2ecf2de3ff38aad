"""Domain errors. Each carries an HTTP status so one handler can map them all."""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


class RagError(Exception):
    """Base class: a problem the user can act on, reported without a stack trace."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CorpusError(RagError):
    """The corpus folder is missing or holds no readable article."""

    code = "corpus_error"


class IndexMissingError(RagError):
    """No index has been built yet where one was expected."""

    status = 503
    code = "index_missing"


class IndexMismatchError(RagError):
    """The index on disk was built with another embedder, settings or corpus."""

    status = 409
    code = "index_mismatch"


class IndexDamagedError(RagError):
    """An index file is truncated, altered or inconsistent with the others."""

    status = 503
    code = "index_damaged"


class IndexBusyError(RagError):
    """Another process kept the index folder's build lock for longer than we wait."""

    status = 503
    code = "index_busy"


class IndexWriteError(RagError):
    """A build cannot write its folder: read-only, not a folder, or the disk is full."""

    status = 503
    code = "index_not_writable"


class EmbedderError(RagError):
    """The configured embedding model cannot be loaded."""

    status = 500
    code = "embedder_error"


class InvalidInputError(RagError):
    """A question, query or parameter is empty, too long or out of range."""

    status = 400
    code = "invalid_request"


class NotFoundError(RagError):
    """A named document or resource does not exist."""

    status = 404
    code = "not_found"


class UnauthorizedError(RagError):
    """No key, or a key that is not one of the configured ones."""

    status = 401
    code = "invalid_api_key"


class ForbiddenError(RagError):
    """The key is valid but may not do this (reading keys cannot change the articles)."""

    status = 403
    code = "forbidden"


class ConflictError(RagError):
    """The request cannot be done in the current state (e.g. deleting the last article)."""

    status = 409
    code = "conflict"


class TooLargeError(RagError):
    """An uploaded file is over the size limit."""

    status = 413
    code = "too_large"


class UnsupportedFileError(RagError):
    """An uploaded file's type is not one the corpus reads."""

    status = 415
    code = "unsupported_file"


class LLMError(RagError):
    """The LLM server failed, timed out or returned nothing usable."""

    status = 502
    code = "llm_error"


def unicode_problem(text: str) -> str | None:
    """What makes ``text`` impossible to encode as UTF-8 (a lone surrogate), or None.

    Such characters arrive from a JSON ``\\ud800`` escape or from undecodable bytes (Python
    maps the bytes of a non-UTF-8 command line or file to U+DC80..U+DCFF); left alone they
    crash the embedder deep inside a request.
    """
    bad = _SURROGATE.search(text)
    if bad is None:
        return None
    return (
        f"character {bad.start() + 1} is U+{ord(bad.group()):04X}, a lone surrogate "
        "(undecodable bytes or a broken \\u escape); send UTF-8"
    )


def check_text(text: str, what: str = "question") -> str:
    """``text`` itself, or an :class:`InvalidInputError` naming its first unencodable character."""
    problem = unicode_problem(text)
    if problem is not None:
        raise InvalidInputError(f"the {what} is not valid Unicode: {problem}")
    return text
