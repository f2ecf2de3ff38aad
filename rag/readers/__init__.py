"""Readers: one module per file format, each turning a file's bytes into the text that is
indexed, shown to the reader and cited (:class:`Extracted`), plus metadata located in it."""

from __future__ import annotations

from collections.abc import Callable

from rag.readers import docx, html, markdown, pdf, plain
from rag.readers.errors import Unreadable
from rag.readers.extracted import Extracted

Reader = Callable[[bytes, str | None], Extracted]

READERS: dict[str, Reader] = {
    ".txt": plain.read,
    ".md": markdown.read,
    ".markdown": markdown.read,
    ".html": html.read,
    ".htm": html.read,
    ".pdf": pdf.read,
    ".docx": docx.read,
}
SUFFIXES = tuple(READERS)

__all__ = ["READERS", "SUFFIXES", "Extracted", "Unreadable", "extract"]


def extract(name: str, raw: bytes, encoding: str | None = None) -> Extracted:
    """The article in a file called ``name`` (its suffix picks the reader); ``encoding``
    overrides detection for text formats. Raises :class:`Unreadable` with the reason."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    reader = READERS.get(suffix)
    if reader is None:
        raise Unreadable(f"has no reader for '{suffix or name}' files")
    try:
        return reader(raw, encoding)
    except Unreadable:
        raise
    except Exception as exc:
        # Parsers meet hostile files too: one that trips a library is skipped with the reason,
        # never the end of the whole load.
        raise Unreadable(f"could not be parsed ({type(exc).__name__}: {exc})"[:200]) from None
