"""Whether the articles mention a word, settled without reading every article.

"Is this name anywhere in the articles?" used to search all their text, lower-cased and joined
once: seconds and gigabytes on the first such question at a million chunks. The index already
knows the passages' words, so, in order of cost:

1. a term of the lexical vocabulary that contains the word proves it is there;
2. the articles' titles and metadata fields (author, source ...) are searched in the mapped
   file that holds them;
3. otherwise each passage holding the word holds, for each of its "clues", a vocabulary term
   containing that clue: jieba covers a text with words, so a Chinese character lies inside
   one (kept unless it is a stop word), and a run of Latin letters and digits lies inside one
   Latin term. Only articles with postings of every clue can hold the word; those are read.

What is neither in a passage nor a field (page furniture between them) is not searched. A word
with no clue (all its characters also occur in stop words) or with too many candidate articles
to read counts as mentioned: callers refuse to answer only on proof of absence.
"""

from __future__ import annotations

import re

import numpy as np

from rag.document_store import DocumentStore
from rag.lexical import LexicalIndex
from rag.tokens import _CJK, STOPWORDS  # the characters tokenize() keeps words of

# Most articles read to settle one word, and most postings read to find them.
CANDIDATE_ARTICLES = 2_000
POSTINGS_LIMIT = 1_000_000

_RUN = re.compile(r"[a-z0-9]+")  # a lower-cased Latin/digit run, inside one Latin term
_STOP_CHARS = frozenset("".join(STOPWORDS))


def mentioned(
    word: str, lexical: LexicalIndex, documents: DocumentStore, chunk_docs: np.ndarray
) -> bool:
    """Whether ``word`` occurs (case aside) in a passage, title or metadata field of an article.

    ``chunk_docs`` is each chunk row's article number (the chunk table's first column).
    """
    lowered = word.lower()
    if not lowered.strip():
        return True
    if lexical.document_frequency(lowered) or len(lexical.terms_containing(lowered)):
        return True
    if documents.fields_mention(lowered):
        return True
    articles = candidates(lowered, lexical, chunk_docs)
    if articles is None:
        return True
    return any(lowered in documents.document(int(n)).text.lower() for n in articles)


def clues(lowered: str) -> list[str]:
    """Parts of ``lowered`` that any passage holding it holds inside one vocabulary term."""
    found = [c for c in dict.fromkeys(lowered) if _CJK.match(c) and c not in _STOP_CHARS]
    runs = dict.fromkeys(_RUN.findall(lowered))
    return found + [r for r in runs if not any(r in stop for stop in STOPWORDS)]


def candidates(lowered: str, lexical: LexicalIndex, chunk_docs: np.ndarray) -> np.ndarray | None:
    """Numbers of the articles whose passages have terms holding every clue of ``lowered``:
    a superset of those whose passages hold it. None when that set is not small."""
    found: np.ndarray | None = None
    terms = [lexical.terms_containing(clue) for clue in clues(lowered)]
    for columns in sorted(terms, key=lexical.postings_count):
        if lexical.postings_count(columns) > POSTINGS_LIMIT:
            break
        articles = np.unique(chunk_docs[lexical.rows_with(columns)])
        found = articles if found is None else np.intersect1d(found, articles, assume_unique=True)
        if not len(found):
            break
    if found is None or len(found) > CANDIDATE_ARTICLES:
        return None
    return found
