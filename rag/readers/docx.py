"""Word (.docx) articles: paragraphs and table rows in document order, via python-docx.

A first paragraph styled Title (or Heading 1) is the title; the document properties give a
title and author when the text does not.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

from rag.metadata import FieldName, MetaField
from rag.readers.errors import Unreadable
from rag.readers.extracted import Extracted, TextBuilder, with_header

if TYPE_CHECKING:
    from docx.text.paragraph import Paragraph

_TITLE_STYLES = ("Title", "Heading 1")


def read(raw: bytes, encoding: str | None = None) -> Extracted:
    del encoding  # the XML inside says how it is encoded
    import docx  # loaded on the first Word file: most folders have none
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(raw))
        blocks = list(document.iter_inner_content())
        props = document.core_properties
        meta: list[tuple[FieldName, str]] = [
            ("title", props.title or ""),
            ("author", props.author or ""),
        ]
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise Unreadable(f"is not a readable .docx file ({type(exc).__name__})") from None
    body = TextBuilder()
    title: MetaField | None = None
    for block in blocks:
        if isinstance(block, Paragraph):
            text = block.text.strip()
            if not text:
                continue
            s, e = body.add(text)
            # Only the first paragraph's style matters: looking one up is slow in python-docx.
            if not s and "\n" not in text and _style(block) in _TITLE_STYLES:
                title = MetaField("title", text, s, e, s, e)
        elif isinstance(block, Table):
            rows = ["\t".join(cell.text.strip() for cell in row.cells) for row in block.rows]
            text = "\n".join(row for row in rows if row.strip())
            if text:
                body.add(text)
    return with_header(body.text(), meta, format="docx", fields=[title] if title else [])


def _style(paragraph: Paragraph) -> str:
    style = paragraph.style
    return style.name or "" if style is not None else ""
