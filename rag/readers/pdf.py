"""PDF articles: the text of each page as pypdf extracts it, page starts kept for citations.

A PDF has lines, not paragraphs: a line that fills most of the page's width and does not end
a sentence is joined to the next one, so a sentence broken by the layout is one sentence
again. Title and author come from the document properties; its dates describe the file, not
the article, and are not used.
"""

from __future__ import annotations

import io
import re

from rag.metadata import FieldName
from rag.readers.errors import Unreadable
from rag.readers.extracted import Extracted, TextBuilder, with_header

_ENDS = tuple("。！？；!?;:：…”’」』)）")
_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
_FULL = 0.8  # a line at least this share of the page's longest line is taken as wrapped


def read(raw: bytes, encoding: str | None = None) -> Extracted:
    del encoding  # a PDF says how its text is encoded
    from pypdf import PdfReader  # loaded on the first PDF: most folders have none
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("is an encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
    except Unreadable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise Unreadable(f"is not a readable PDF ({type(exc).__name__})") from None
    if not any(page.strip() for page in pages):
        raise Unreadable("has no text layer (scanned pages need OCR first)")
    body = TextBuilder()
    starts = []
    for page in pages:
        text = _unwrap(page)
        starts.append(len(body) + (2 if len(body) and text else 0))
        body.add(text)
    meta: list[tuple[FieldName, str]] = []
    if info is not None:
        meta = [("title", _text(info.title)), ("author", _text(info.author))]
    return with_header(body.text(), meta, format="pdf", pages=starts)


def _text(value: object) -> str:
    """A document property as text; an absent one may be a PDF null object, not None."""
    return value if isinstance(value, str) else ""


def _unwrap(page: str) -> str:
    lines = [line.strip() for line in page.splitlines()]
    width = max((len(line) for line in lines), default=0)
    out: list[str] = []
    for line in lines:
        if not line:
            if out and out[-1]:
                out.append("")
            continue
        previous = out[-1] if out else ""
        if previous and len(previous) >= _FULL * width and not previous.endswith(_ENDS):
            glue = "" if _CJK.match(line) or _CJK.search(previous[-1]) else " "
            out[-1] = previous + glue + line
        else:
            out.append(line)
    return "\n".join(out).strip()
