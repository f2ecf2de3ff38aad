"""Pack whole sentences of each article's body into retrieval-sized chunks.

A chunk is always a slice of the original article text, so a citation can point at exact
offsets; it never crosses navigation or byline debris because it stays inside one body span.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.corpus import Corpus, Document
from rag.sentences import split_sentences, strip_span

# No chunk is longer than this many times the target length, whatever the text looks like: a
# 50 MB line without punctuation would otherwise become one chunk of millions of characters.
HARD_MAX_FACTOR = 2


@dataclass(frozen=True)
class Chunk:
    """A passage of one document; ``text == document.text[start:end]``."""

    doc: str
    ord: int
    start: int
    end: int
    text: str
    title: str


def chunk_document(doc: Document, max_chars: int = 200, overlap: int = 1) -> list[Chunk]:
    """Greedily pack the sentences of each body span into chunks of at most ``max_chars``.

    Adjacent chunks of one span share up to ``overlap`` trailing sentences, fewer when sharing
    them would leave no room for the next new sentence, so each chunk adds new text. A sentence
    longer than twice ``max_chars`` is first cut after clause commas (see ``split_sentences``),
    then at the hard maximum (see :func:`sentence_pieces`); a piece longer than ``max_chars``
    becomes a chunk of its own, over the target but never over the hard maximum.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    if overlap < 0:
        raise ValueError("overlap must not be negative")
    chunks: list[Chunk] = []
    for span_start, span_end in doc.body:
        sentences = sentence_pieces(doc.text, span_start, span_end, max_chars)
        for first, last in _pack(sentences, max_chars, overlap):
            start, end = sentences[first][0], sentences[last - 1][1]
            chunks.append(Chunk(doc.id, len(chunks), start, end, doc.text[start:end], doc.title))
    return chunks


def hard_max_chars(max_chars: int) -> int:
    """The longest chunk ``chunk_document`` makes for a target of ``max_chars``."""
    return HARD_MAX_FACTOR * max_chars


def sentence_pieces(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """The sentences of ``text[start:end]`` as chunking packs them: over-long sentences cut at
    clause commas, and what is still over the hard maximum cut into equal pieces under it (at
    the last space in the second half of a piece when there is one, so words stay whole)."""
    limit = hard_max_chars(max_chars)
    pieces: list[tuple[int, int]] = []
    for s, e in split_sentences(text, start, end, max_chars=max_chars):
        while e - s > limit:
            size = -(-(e - s) // -(-(e - s) // limit))  # equal pieces: no tiny tail
            window = s + size
            cut = next((i for i in range(window, s + size // 2, -1) if text[i].isspace()), window)
            pieces.append(strip_span(text, s, cut))
            s = strip_span(text, cut, e)[0]
        pieces.append((s, e))
    return pieces


def chunk_corpus(corpus: Corpus, max_chars: int = 200, overlap: int = 1) -> list[Chunk]:
    """Chunks of every document, in document order."""
    return [
        chunk
        for doc in corpus.documents
        for chunk in chunk_document(doc, max_chars=max_chars, overlap=overlap)
    ]


def _pack(spans: list[tuple[int, int]], max_chars: int, overlap: int) -> list[tuple[int, int]]:
    """Index ranges ``[first, last)`` of sentences per chunk; every sentence lands in one."""
    groups: list[tuple[int, int]] = []
    first = 0
    while first < len(spans):
        last = first + 1
        while last < len(spans) and spans[last][1] - spans[first][0] <= max_chars:
            last += 1
        groups.append((first, last))
        if last == len(spans):
            break
        # Start the next chunk as far back as the overlap allows while sentence ``last`` still
        # fits; starting at ``last`` itself always makes progress.
        first = next(
            (
                k
                for k in range(max(last - overlap, first + 1), last)
                if spans[last][1] - spans[k][0] <= max_chars
            ),
            last,
        )
    return groups
